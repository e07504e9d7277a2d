"""Tests for gsgen.models.resnet (torchvision's v1.5 layout): parameter counts against
torchvision's, torchvision names, shapes, BatchNorm modes, the input preparation."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_checks import abstract_call, assert_call_is_head_of_encode, assert_jit_matches_eager

from gsgen import models
from gsgen.models import num_params
from gsgen.models import preprocess
from gsgen.models import resnet

# torchvision's totals less its 1000-class fc (2048 * 1000 + 1000, or 512 * 1000 + 1000):
#   resnet18 11,689,512 - 513,000;  resnet50 25,557,032 - 2,049,000;
#   resnet101 44,549,160 - 2,049,000.
BACKBONE = {18: 11_176_512, 50: 23_508_032, 101: 42_500_160}
FEATURES = {18: 512, 50: 2048, 101: 2048}
# Running mean and variance of every BatchNorm channel = its weight and bias count: stem 64;
# ResNet-50 stage s (m = 64 * 2**(s-1)) has per unit m + m + 4m channels and a projection 4m:
# (3*6 + 4)*64 + (4*6 + 4)*128 + (6*6 + 4)*256 + (3*6 + 4)*512 = 26,496; + 64 = 26,560.
BATCH_NORM_CHANNELS_50 = 26_560


@functools.cache
def abstract(depth: int, in_channels: int = 3, **kwargs) -> resnet.ResNet:
  model = nnx.eval_shape(lambda: models.MODELS[f"resnet{depth}"](
      5, in_channels=in_channels, rngs=nnx.Rngs(0), **kwargs))
  model.eval()
  return model


@pytest.mark.parametrize("depth", [18, 50, 101])
def test_parameter_count_is_torchvisions(depth):
  assert num_params(abstract(depth)) == BACKBONE[depth] + FEATURES[depth] * 5 + 5
  assert num_params(abstract(depth, 1)) == num_params(abstract(depth))  # grey is repeated


def test_batch_statistics_count():
  assert num_params(abstract(50), nnx.BatchStat) == 2 * BATCH_NORM_CHANNELS_50


@pytest.mark.parametrize("depth", [18, 50, 101])
def test_shapes_at_64_and_at_resolution_128(depth):
  model = abstract(depth)
  assert model.encoding_size == FEATURES[depth]
  assert abstract_call(model, (2, 64, 64, 3)).shape == (2, 5)
  # 64 -> 32 (stem) -> 16 (pool) -> 16, 8, 4, 2 (stages); twice that at 128.
  assert abstract_call(model, (2, 64, 64, 3), "feature_map").shape == (2, 2, 2, FEATURES[depth])
  big = abstract(depth, resolution=128)
  assert abstract_call(big, (2, 64, 64, 3), "feature_map").shape == (2, 4, 4, FEATURES[depth])
  assert abstract_call(big, (2, 64, 64, 3), "encode").shape == (2, FEATURES[depth])


@pytest.mark.parametrize("depth", [18, 50, 101])
def test_torchvision_param_map_covers_every_variable_once(depth):
  names = resnet.torchvision_param_map(depth)
  assert len(set(names.values())) == len(names)
  state = nnx.state(abstract(depth))
  assert set(names.values()) == {p for p, _ in nnx.to_flat_state(state) if p[0] != "head"}
  # torchvision's state dict: every entry but fc.* and the num_batches_tracked counters
  # (one per BatchNorm, i.e. one per four BatchNorm entries here).
  convs = sum(n.endswith(".weight") and ("conv" in n or "downsample.0" in n) for n in names)
  norms = (len(names) - convs) // 4
  assert len(names) == convs + 4 * norms and norms == convs  # a BatchNorm after each conv
  assert convs == {18: 20, 50: 53, 101: 104}[depth]  # depth - 1 plus 3 or 4 projections


def test_torchvision_param_map_known_names():
  names = resnet.torchvision_param_map(50)
  assert names["conv1.weight"] == ("conv1", "kernel")
  assert names["bn1.running_var"] == ("bn1", "var")
  assert names["layer1.0.downsample.0.weight"] == ("stages", 0, 0, "proj_conv", "kernel")
  assert names["layer4.2.bn3.weight"] == ("stages", 3, 2, "bn3", "scale")
  assert "layer1.0.downsample.0.weight" not in resnet.torchvision_param_map(18)
  assert resnet.torchvision_param_map(18)["layer2.0.downsample.1.bias"] == (
      "stages", 1, 0, "proj_bn", "bias")


@functools.cache
def small() -> resnet.ResNet:
  return models.create("resnet18", 5, in_channels=1, rngs=nnx.Rngs(0))


def images(batch, channels, seed=0):
  return jax.random.uniform(jax.random.key(seed), (batch, 64, 64, channels))


def test_jit_equals_eager_and_call_is_head_of_encode():
  model = small()
  model.eval()
  x = images(2, 1)
  assert_jit_matches_eager(model, x, rtol=1e-4, atol=1e-5)
  encoding = assert_call_is_head_of_encode(model, x, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(encoding, jnp.mean(model.feature_map(x), axis=(1, 2)), rtol=1e-6)
  assert np.min(encoding) >= 0 and np.max(encoding) > 0  # post-activation: ReLU last


def test_eval_mode_is_per_sample_and_train_mode_updates_statistics():
  model = models.create("resnet18", 5, in_channels=1, rngs=nnx.Rngs(0))
  x, other = images(2, 1), images(2, 1, seed=1)
  before = model.bn1.mean[...]
  model.train()
  out = model(x)
  assert not np.allclose(before, model.bn1.mean[...])
  assert not np.allclose(out[0], model(jnp.concatenate([x[:1], other[1:]]))[0], atol=1e-5)
  model.eval()
  np.testing.assert_allclose(model(x)[0], model(jnp.concatenate([x[:1], other[1:]]))[0],
                             rtol=1e-5, atol=1e-5)


def test_gray_input_equals_the_rgb_network_on_repeated_channels():
  gray = small()
  rgb = models.create("resnet18", 5, in_channels=3, rngs=nnx.Rngs(1))
  nnx.update(rgb, nnx.state(gray))
  gray.eval()
  rgb.eval()
  x = images(2, 1)
  np.testing.assert_allclose(gray(x), rgb(jnp.repeat(x, 3, axis=-1)), rtol=1e-5, atol=1e-5)


def test_rejects_unknown_depth_and_channels():
  with pytest.raises(ValueError, match="depth 34"):
    resnet.ResNet(5, in_channels=1, rngs=nnx.Rngs(0), depth=34)
  with pytest.raises(ValueError, match="in_channels must be 1 or 3"):
    resnet.ResNet(5, in_channels=2, rngs=nnx.Rngs(0), depth=18)


def test_prepare_resizes_repeats_and_normalises():
  x = jnp.full((1, 64, 64, 1), 0.5)
  bit = preprocess.prepare(x, resolution=128, normalization="bit")
  assert bit.shape == (1, 128, 128, 3)
  np.testing.assert_allclose(bit, 0.0, atol=1e-7)  # 0.5 -> 0 in [-1, 1]
  net = preprocess.prepare(x, resolution=0, normalization="imagenet")
  assert net.shape == (1, 64, 64, 3)
  np.testing.assert_allclose(net[0, 0, 0], (0.5 - np.array(preprocess.IMAGENET_MEAN))
                             / np.array(preprocess.IMAGENET_STD), rtol=1e-6)
  # Bilinear with half-pixel centres: a 2x upsampled ramp keeps its ends and its mean.
  ramp = jnp.linspace(0, 1, 64)[None, :, None, None] * jnp.ones((1, 64, 64, 1))
  up = preprocess.prepare(ramp, resolution=128, normalization="bit")
  assert float(up[0, 0, 0, 0]) == -1.0 and float(up[0, -1, 0, 0]) == 1.0
  np.testing.assert_allclose(jnp.mean(up), jnp.mean(2 * ramp - 1), atol=1e-6)
