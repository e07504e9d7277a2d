"""Tests for gsgen.models.densenet: known parameter count, torchvision names, BatchNorm modes.

DenseNet-121's 58 dense layers each have their own channel count, so on CPU every eager
operation of a real forward compiles anew (minutes). The full network is therefore checked
with shapes only (``nnx.eval_shape`` / ``jax.eval_shape`` run the real module code without
arithmetic), and the numerics on a two-block DenseNet that uses the same classes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_checks import abstract_call, assert_call_is_head_of_encode, assert_jit_matches_eager

from gsgen.models import densenet
from gsgen.models import num_params

SMALL = (2, 2)  # dense layers per block of the small network: one transition


@functools.cache
def abstract(num_outputs: int, in_channels: int) -> densenet.DenseNet:
  model = nnx.eval_shape(lambda: densenet.DenseNet(
      num_outputs, in_channels=in_channels, rngs=nnx.Rngs(0)))
  model.eval()
  return model


def images(batch: int, channels: int, seed: int = 0) -> jax.Array:
  return jax.random.uniform(jax.random.key(seed), (batch, 64, 64, channels))


# Feature extractor (no classifier). A dense layer on c input channels holds
# norm1 2c + conv1 c*128 + norm2 2*128 + conv2 3*3*128*32 = 130c + 37,120.
#   conv0 7*7*3*64 = 9,408;  norm0 2*64 = 128
#   block 1: 6 layers on 64, 96, ..., 224 channels (sum 864): 130*864 + 6*37,120   =   335,040
#   transition 1: norm 2*256 + conv 256*128                                         =    33,280
#   block 2: 12 layers on 128..480 (sum 3,648): 130*3,648 + 12*37,120              =   919,680
#   transition 2: 2*512 + 512*256                                                   =   132,096
#   block 3: 24 layers on 256..992 (sum 14,976): 130*14,976 + 24*37,120            = 2,837,760
#   transition 3: 2*1024 + 1024*512                                                 =   526,336
#   block 4: 16 layers on 512..992 (sum 12,032): 130*12,032 + 16*37,120            = 2,158,080
#   norm5 2*1024 = 2,048
#   total 6,953,856: torchvision's 7,978,856 less its classifier 1024*1000 + 1000.
FEATURE_EXTRACTOR = 6_953_856
# Running mean and variance per BatchNorm channel: norm0 64; per layer c + 128; transitions
# 256, 512, 1024; norm5 1024: 64 + (864 + 768) + 256 + (3,648 + 1,536) + 512
# + (14,976 + 3,072) + 1,024 + (12,032 + 2,048) + 1,024 = 41,824 channels.
BATCH_STATS = 2 * 41_824


@pytest.mark.parametrize("num_outputs,in_channels", [(5, 3), (6, 1)])
def test_parameter_count(num_outputs, in_channels):
  # The gray image is repeated to RGB, so the stem has 3 input channels either way.
  model = abstract(num_outputs, in_channels)
  assert num_params(model) == FEATURE_EXTRACTOR + 1024 * num_outputs + num_outputs
  assert num_params(model, nnx.BatchStat) == BATCH_STATS


@pytest.mark.parametrize("num_outputs,in_channels", [(5, 3), (6, 1)])
def test_output_shape_and_final_feature_map(num_outputs, in_channels):
  # 64 -> 32 (conv0) -> 16 (pool0) -> 8, 4, 2 (transitions).
  model = abstract(num_outputs, in_channels)
  assert abstract_call(model, (2, 64, 64, in_channels)).shape == (2, num_outputs)
  assert abstract_call(model, (2, 64, 64, in_channels), "feature_map").shape == (2, 2, 2, 1024)
  assert model.encoding_size == 1024
  assert abstract_call(model, (2, 64, 64, in_channels), "encode").shape == (2, 1024)


def test_torchvision_param_map_covers_every_variable_once():
  names = densenet.torchvision_param_map()
  paths = list(names.values())
  assert len(paths) == len(set(paths))
  state = nnx.state(abstract(5, 3))
  assert set(paths) == {path for path, _ in nnx.to_flat_state(state) if path[0] != "head"}
  # 121 layers: conv0, 2 convolutions in each of 58 dense layers, 3 transition
  # convolutions, and the classifier, which is ours to replace.
  convs = [n for n in names if n.endswith(".weight") and ".conv" in n]
  assert len(convs) == 1 + 2 * 58 + 3 == 121 - 1
  # Each BatchNorm contributes weight, bias, running_mean, running_var: 4 * (1 + 2*58 + 3 + 1).
  assert len(names) - len(convs) == 4 * 121
  assert not any(n.startswith("classifier") or "num_batches_tracked" in n for n in names)


def test_torchvision_shapes_convert_to_ours():
  # torchvision shapes of DenseNet-121 (OIHW convolutions), known from its layout.
  state = dict(nnx.to_flat_state(nnx.state(abstract(5, 3))))
  names = densenet.torchvision_param_map()
  known = {
      "features.conv0.weight": (64, 3, 7, 7),
      "features.denseblock1.denselayer1.conv1.weight": (128, 64, 1, 1),
      "features.denseblock4.denselayer16.conv2.weight": (32, 128, 3, 3),
      "features.transition3.conv.weight": (512, 1024, 1, 1),
      "features.denseblock3.denselayer24.norm1.running_var": (992,),
      "features.norm5.weight": (1024,),
  }
  for name, shape in known.items():
    converted = densenet.torchvision_to_flax(np.zeros(shape, np.float32))
    assert state[names[name]].shape == converted.shape, name


def test_torchvision_to_flax_transposes_oihw_to_hwio():
  oihw = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
  hwio = densenet.torchvision_to_flax(oihw)
  assert hwio.shape == (4, 5, 3, 2)
  assert hwio[3, 1, 2, 1] == oihw[1, 2, 3, 1]
  vector = np.arange(4.0)
  np.testing.assert_array_equal(densenet.torchvision_to_flax(vector), vector)


@functools.cache
def small(in_channels: int = 1) -> densenet.DenseNet:
  return densenet.DenseNet(5, in_channels=in_channels, rngs=nnx.Rngs(0), blocks=SMALL)


def test_small_network_count_and_shapes():
  # conv0 9,408 + norm0 128; block 1 layers on 64, 96: 130*160 + 2*37,120 = 95,040;
  # transition 128 -> 64: 256 + 8,192; block 2 on 64, 96: 95,040; norm5 2*128; head 128*5 + 5.
  model = small()
  assert num_params(model) == 9_408 + 128 + 95_040 + 8_448 + 95_040 + 256 + 645
  model.eval()
  for in_channels in (1, 3):
    out = small(in_channels)(images(2, in_channels))
    assert out.shape == (2, 5)
    assert bool(jnp.all(jnp.isfinite(out)))
  # 16 (pool0) -> 8 (transition); without pool0 twice as large.
  assert jax.eval_shape(model.feature_map, images(2, 1)).shape == (2, 8, 8, 128)
  no_pool = densenet.DenseNet(5, in_channels=1, rngs=nnx.Rngs(0), blocks=SMALL,
                              stem_pool=False)
  no_pool.eval()
  assert jax.eval_shape(no_pool.feature_map, images(2, 1)).shape == (2, 16, 16, 128)


def test_gray_input_equals_the_rgb_network_on_repeated_channels():
  gray, rgb = small(1), densenet.DenseNet(5, in_channels=3, rngs=nnx.Rngs(1), blocks=SMALL)
  nnx.update(rgb, nnx.state(gray))
  gray.eval()
  rgb.eval()
  x = images(2, 1)
  np.testing.assert_allclose(gray(x), rgb(jnp.repeat(x, 3, axis=-1)), rtol=1e-5, atol=1e-5)


def test_eval_mode_is_per_sample_and_train_mode_updates_statistics():
  model = densenet.DenseNet(5, in_channels=1, rngs=nnx.Rngs(0), blocks=SMALL)
  x, other = images(2, 1), images(2, 1, seed=1)
  mixed_batch = jnp.concatenate([x[:1], other[1:]])
  before = model.norm5.mean[...]
  model.train()
  train_out = model(x)
  assert not np.allclose(before, model.norm5.mean[...])
  assert not np.allclose(train_out[0], model(mixed_batch)[0], atol=1e-5)
  model.eval()
  frozen = jax.tree.map(jnp.copy, nnx.state(model, nnx.BatchStat))
  np.testing.assert_allclose(model(x)[0], model(mixed_batch)[0], rtol=1e-5, atol=1e-5)
  jax.tree.map(np.testing.assert_array_equal, frozen, nnx.state(model, nnx.BatchStat))


def test_jit_equals_eager_and_call_is_head_of_encode():
  model = small()
  model.eval()
  x = images(2, 1)
  assert_jit_matches_eager(model, x, rtol=1e-4, atol=1e-5)
  encoding = assert_call_is_head_of_encode(model, x, rtol=1e-5, atol=1e-5)
  assert model.encoding_size == 128
  # The average of the rectified final map over its 8x8 positions.
  np.testing.assert_allclose(encoding, jnp.mean(model.feature_map(x), axis=(1, 2)), rtol=1e-6)
  assert np.min(encoding) >= 0 and np.max(encoding) > 0


def test_rejects_other_channel_counts():
  with pytest.raises(ValueError):
    densenet.DenseNet(5, in_channels=2, rngs=nnx.Rngs(0), blocks=SMALL)
