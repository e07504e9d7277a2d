"""Tests for gsgen.models.preact_resnet: shapes, derived parameter counts, BiT names, norms."""

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
from gsgen.models import preact_resnet as resnet


# On CPU these tests cost XLA compiling each eager operation once per shape, initialisers
# included (about 10 s for each new family of shapes). So ResNet-18 is built for real, the
# deeper networks as shapes only (``nnx.eval_shape`` runs the real constructor without
# arithmetic), and one ResNet-101 forward runs on those shapes filled with numpy noise.
# Each configuration fixes its own num_outputs and in_channels, covering 5 and 6, 1 and 3.
CONFIGS = {
    "resnet18": (models.MODELS["preact_resnet18"], 5, 1),
    "resnet50": (models.MODELS["preact_resnet50"], 6, 3),
    "bit_resnet50": (models.MODELS["bit_resnet50"], 5, 1),
    "resnet101": (models.MODELS["preact_resnet101"], 5, 1),
    "bit_resnet101": (models.MODELS["bit_resnet101"], 6, 3),
}
DEPTH = {"resnet18": 18, "resnet50": 50, "bit_resnet50": 50, "resnet101": 101,
         "bit_resnet101": 101}


@functools.cache
def built(name: str) -> resnet.PreActResNet:
  make, num_outputs, in_channels = CONFIGS[name]

  def build():
    return make(num_outputs, in_channels=in_channels, rngs=nnx.Rngs(0))

  model = build() if name == "resnet18" else nnx.eval_shape(build)
  model.eval()
  return model


def filled(model: nnx.Module) -> nnx.Module:
  """A concrete copy of an abstract model: fan-in scaled noise kernels, identity norms."""
  graphdef, state = nnx.split(model)
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = path[-2].key  # the variable; path[-1] is its .value
    if name in ("scale", "var"):
      return jnp.ones(leaf.shape)
    if name in ("bias", "mean"):
      return jnp.zeros(leaf.shape)
    fan_in = np.prod(leaf.shape[:-1])
    return jnp.asarray(rng.standard_normal(leaf.shape, np.float32) / np.sqrt(fan_in))

  return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(fill, state))


def images(batch: int, channels: int, size: int = 64, seed: int = 0) -> jax.Array:
  return jax.random.uniform(jax.random.key(seed), (batch, size, size, channels))


# Backbone parameters (no head), for in_channels 3 and 1 alike (a gray image is repeated to
# RGB, so the root is always 7x7x3x64); every convolution is bias-free, every norm
# has a scale and a bias per channel (BatchNorm and GroupNorm alike).
#
# ResNet-18 (basic units, unit = norm_a 2*cin + 3x3 cin*c + norm_b 2c + 3x3 c*c [+ 1x1 proj]):
#   root 7*7*3*64                                                       =      9,408
#   stage 1: 2 x (128 + 36,864 + 128 + 36,864)                          =    147,968
#   stage 2: (128 + 73,728 + 256 + 147,456 + proj 8,192)
#            + (256 + 147,456 + 256 + 147,456)                          =    525,184
#   stage 3: (256 + 294,912 + 512 + 589,824 + 32,768)
#            + (512 + 589,824 + 512 + 589,824)                          =  2,098,944
#   stage 4: (512 + 1,179,648 + 1,024 + 2,359,296 + 131,072)
#            + (1,024 + 2,359,296 + 1,024 + 2,359,296)                  =  8,392,192
#   pre-head norm 2*512                                                 =      1,024
#   total 11,174,720. Cross-check: torchvision's v1 ResNet-18 has 11,689,512 with a
#   1000-class head (513,000), i.e. 11,176,512; v1 has 9,600 BatchNorm parameters (stem 128,
#   stages 512, 1,280, 2,560, 5,120) where v2 has 7,808 (512, 896, 1,792, 3,584, head 1,024):
#   11,176,512 - 1,792 = 11,174,720.
# ResNet-50 (bottleneck, unit = norm_a 2*cin + 1x1 cin*m + 2m + 3x3 9m^2 + 2m + 1x1 4m^2
#            [+ proj cin*4m]):
#   root 9,408
#   stage 1 (m 64):   74,112 + 2 x 70,400                                =    214,912
#   stage 2 (m 128):  377,856 + 3 x 280,064                              =  1,218,048
#   stage 3 (m 256):  1,509,376 + 5 x 1,117,184                          =  7,095,296
#   stage 4 (m 512):  6,033,408 + 2 x 4,462,592                          = 14,958,592
#   pre-head norm 2*2048 = 4,096;  total                                 = 23,500,352
#   Cross-check: torchvision v1 ResNet-50 has 25,557,032 - 2,049,000 = 23,508,032 without its
#   head; its BatchNorms hold 53,120 parameters against our 45,440: 23,508,032 - 7,680.
# ResNet-101: 17 more stage-3 units of 1,117,184: 23,500,352 + 18,992,128 = 42,492,480
#   (torchvision v1: 44,549,160 - 2,049,000 - 7,680, the same per-unit norm count).
BACKBONE = {18: 11_174_720, 50: 23_500_352, 101: 42_492_480}
FEATURES = {18: 512, 50: 2048, 101: 2048}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parameter_count(name):
  _, num_outputs, _ = CONFIGS[name]
  depth = DEPTH[name]
  head = FEATURES[depth] * num_outputs + num_outputs
  assert num_params(built(name)) == BACKBONE[depth] + head


def test_batch_statistics_count():
  # A running mean and variance per normalised channel, as many as the norms' scales and
  # biases: 1,920 + 5,632 + 17,408 + 16,384 + 4,096 (stages 1-4, pre-head; see BACKBONE).
  assert num_params(built("resnet50"), nnx.BatchStat) == 45_440
  assert num_params(built("bit_resnet50"), nnx.BatchStat) == 0


@pytest.mark.parametrize("name", list(CONFIGS))
def test_output_shape_and_final_feature_map(name):
  # 64 -> 32 (root) -> 16 (pool) -> 16, 8, 4, 2 (stages).
  _, num_outputs, in_channels = CONFIGS[name]
  shape = (2, 64, 64, in_channels)
  assert abstract_call(built(name), shape).shape == (2, num_outputs)
  assert abstract_call(built(name), shape, "feature_map").shape == (
      2, 2, 2, FEATURES[DEPTH[name]])
  assert built(name).encoding_size == FEATURES[DEPTH[name]]
  assert abstract_call(built(name), shape, "encode").shape == (2, FEATURES[DEPTH[name]])


@pytest.mark.parametrize("name", ["resnet18", "resnet101"])
def test_forward_is_finite(name):
  model = built(name) if name == "resnet18" else filled(built(name))
  _, num_outputs, in_channels = CONFIGS[name]
  out = model(images(2, in_channels))
  assert out.shape == (2, num_outputs)
  assert bool(jnp.all(jnp.isfinite(out)))


def test_no_stem_pool_doubles_the_final_map():
  model = nnx.eval_shape(
      lambda: models.MODELS["preact_resnet18"](5, in_channels=3, rngs=nnx.Rngs(0), stem_pool=False))
  model.eval()
  assert abstract_call(model, (1, 64, 64, 3), "feature_map").shape == (1, 4, 4, 512)


@pytest.mark.parametrize("name", ["bit_resnet50", "bit_resnet101"])
def test_bit_param_map_covers_every_backbone_variable_once(name):
  depth = DEPTH[name]
  names = resnet.bit_param_map(depth)
  paths = list(names.values())
  assert len(paths) == len(set(paths))
  model = built(name)
  ours = {path for path, _ in nnx.to_flat_state(nnx.state(model)) if path[0] != "head"}
  assert set(paths) == ours
  # root + 3 per unit (a, b, c), each a kernel and a norm scale and bias, 4 projections, and
  # the pre-head norm: 1 + 3 * 3 * units + 4 + 2.
  units = sum(resnet.LAYOUTS[depth][1])
  assert len(names) == 1 + 9 * units + 4 + 2
  assert not any("head/conv2d" in name for name in names)


def test_bit_param_map_shapes():
  # Shapes of BiT-M-R50x1.npz tensors (HWIO kernels, channel vectors), from BiT's layout.
  model = built("bit_resnet50")
  state = dict(nnx.to_flat_state(nnx.state(model)))
  names = resnet.bit_param_map(50)
  known = {
      "resnet/root_block/standardized_conv2d/kernel": (7, 7, 3, 64),
      "resnet/block1/unit01/a/proj/standardized_conv2d/kernel": (1, 1, 64, 256),
      "resnet/block2/unit01/b/standardized_conv2d/kernel": (3, 3, 128, 128),
      "resnet/block3/unit06/a/group_norm/gamma": (1024,),
      "resnet/block4/unit03/c/standardized_conv2d/kernel": (1, 1, 512, 2048),
      "resnet/group_norm/beta": (2048,),
  }
  for name, shape in known.items():
    assert state[names[name]].shape == shape, name


def test_bit_param_map_rejects_resnet18():
  with pytest.raises(ValueError):
    resnet.bit_param_map(18)


def test_weight_standardisation_ignores_filter_scale_and_offset():
  conv = resnet.Conv(3, 4, 3, standardize=True, rngs=nnx.Rngs(0))
  x = images(1, 3, size=8)
  before = conv(x)
  conv.kernel[...] = 3.0 * conv.kernel[...] + 0.5
  np.testing.assert_allclose(conv(x), before, rtol=1e-4, atol=1e-4)
  plain = resnet.Conv(3, 4, 3, rngs=nnx.Rngs(0))
  assert plain(x).shape == before.shape == (1, 8, 8, 4)


def test_strided_conv_pads_like_tensorflow_fixed_padding():
  # A stride-2 3x3 convolution pads (1, 1): on a 4x4 input the first output sees the
  # zero border and pixels [0:2, 0:2], so an all-ones kernel sums exactly those.
  conv = resnet.Conv(1, 1, 3, strides=2, rngs=nnx.Rngs(0))
  conv.kernel[...] = jnp.ones((3, 3, 1, 1))
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  expected = [[0 + 1 + 4 + 5, 1 + 2 + 3 + 5 + 6 + 7],
              [4 + 5 + 8 + 9 + 12 + 13, 5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15]]
  np.testing.assert_allclose(conv(x)[0, :, :, 0], expected)


def test_group_norm_matches_bit():
  # BiT standardises over height, width and the channels of each of 32 groups (eps 1e-5).
  norm = resnet._norm("group_ws", 64, nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 64)) * 3.0 + 1.0
  g = x.reshape(2, 4, 4, 32, 2)
  g = g - g.mean(axis=(1, 2, 4), keepdims=True)
  g = g / jnp.sqrt(jnp.mean(g**2, axis=(1, 2, 4), keepdims=True) + 1e-5)
  np.testing.assert_allclose(norm(x), g.reshape(x.shape), rtol=1e-4, atol=1e-4)


def test_eval_mode_is_per_sample_and_train_mode_updates_statistics():
  model = models.MODELS["preact_resnet18"](5, in_channels=1, rngs=nnx.Rngs(0))
  x = images(2, 1)
  other = images(2, 1, seed=1)
  mean_before = model.stages[0][0].norm_a.mean[...]
  model.train()
  train_out = model(x)
  mean_after = model.stages[0][0].norm_a.mean[...]
  assert not np.allclose(mean_before, mean_after)
  # Batch statistics couple the samples in train mode ...
  mixed = model(jnp.concatenate([x[:1], other[1:]]))
  assert not np.allclose(train_out[0], mixed[0], atol=1e-5)
  model.eval()
  frozen = jax.tree.map(jnp.copy, nnx.state(model, nnx.BatchStat))
  a = model(x)
  b = model(jnp.concatenate([x[:1], other[1:]]))
  # ... and not in eval mode, which leaves the running statistics alone.
  np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-5)
  jax.tree.map(np.testing.assert_array_equal, frozen, nnx.state(model, nnx.BatchStat))


@pytest.mark.parametrize("norm", ["batch", "group_ws"])
def test_jit_equals_eager_and_call_is_head_of_encode(norm):
  model = resnet.PreActResNet(5, in_channels=3, rngs=nnx.Rngs(0), depth=18, norm=norm)
  model.eval()
  x = images(2, 3)
  assert_jit_matches_eager(model, x, rtol=1e-4, atol=1e-5)
  encoding = assert_call_is_head_of_encode(model, x, rtol=1e-5, atol=1e-5)
  # The average of the rectified final map over its 2x2 positions.
  np.testing.assert_allclose(encoding, jnp.mean(model.feature_map(x), axis=(1, 2)), rtol=1e-6)
  assert np.min(encoding) >= 0 and np.max(encoding) > 0


def test_rejects_unknown_depth_and_norm():
  with pytest.raises(ValueError):
    resnet.PreActResNet(5, in_channels=1, rngs=nnx.Rngs(0), depth=34)
  with pytest.raises(ValueError):
    resnet.PreActResNet(5, in_channels=1, rngs=nnx.Rngs(0), norm="layer")


def test_gray_input_equals_the_rgb_network_on_repeated_channels():
  gray = built("resnet18")
  rgb = models.MODELS["preact_resnet18"](5, in_channels=3, rngs=nnx.Rngs(1))
  nnx.update(rgb, nnx.state(gray))
  gray.eval()
  rgb.eval()
  x = images(2, 1)
  np.testing.assert_allclose(gray(x), rgb(jnp.repeat(x, 3, axis=-1)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("depth", [50, 101])
def test_timm_bit_param_map_names_the_same_variables(depth):
  timm, bit = resnet.timm_bit_param_map(depth), resnet.bit_param_map(depth)
  assert len(timm) == len(bit) and set(timm.values()) == set(bit.values())
  assert timm["stem.conv.weight"] == ("root", "kernel")
  assert timm["stages.2.blocks.0.downsample.conv.weight"] == ("stages", 2, 0, "proj", "kernel")
  assert timm["stages.3.blocks.2.norm3.bias"] == ("stages", 3, 2, "norm_c", "bias")
  assert timm["norm.weight"] == ("norm", "scale")


def test_group_norm_variance_is_two_pass():
  # A channel group with mean 1e4 and spread 1: E[x^2] - E[x]^2 loses the spread in float32.
  norm = resnet._norm("group_ws", 64, nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (1, 4, 4, 64)) + 1e4
  g = np.asarray(x, np.float64).reshape(1, 4, 4, 32, 2)
  g = (g - g.mean(axis=(1, 2, 4), keepdims=True)) / np.sqrt(
      g.var(axis=(1, 2, 4), keepdims=True) + 1e-5)
  np.testing.assert_allclose(norm(x), g.reshape(x.shape), atol=2e-3)


def test_resolution_resizes_inside_the_model():
  model = nnx.eval_shape(lambda: models.MODELS["bit_resnet50"](
      5, in_channels=1, rngs=nnx.Rngs(0), resolution=128))
  assert abstract_call(model, (2, 64, 64, 1), "feature_map").shape == (2, 4, 4, 2048)
  with pytest.raises(ValueError, match="resolution must be 0 .* or an integer >= 32"):
    models.MODELS["bit_resnet50"](5, in_channels=1, rngs=nnx.Rngs(0), resolution=16)
