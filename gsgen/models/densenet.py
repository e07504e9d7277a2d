"""DenseNet-121 in torchvision's layout, so torchvision's ImageNet-1k weights load unchanged.

DenseNet-BC (growth 32, blocks of 6, 12, 24 and 16 layers) with a linear regressor for its
classifier; images are resized, repeated to RGB and ImageNet-normalised inside the model.
``encode()`` is the global average of the final BatchNorm + ReLU map (1024 channels);
`torchvision_param_map` and `torchvision_to_flax` load a state dict (docs/models.md,
"DenseNet-121").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen.models import densenet
  model = nnx.eval_shape(lambda: densenet.DenseNet(5, in_channels=1, rngs=nnx.Rngs(0)))
  model.encoding_size                        # 1024
  small = densenet.DenseNet(5, in_channels=1, rngs=nnx.Rngs(0), blocks=(2, 2))
  small.eval()                               # BatchNorm uses its running statistics
  x = jnp.zeros((8, 64, 64, 1))
  small(x).shape                             # (8, 5)
  small.encode(x).shape                      # (8, 128) == (8, small.encoding_size)
  densenet.torchvision_param_map()["features.denseblock1.denselayer1.conv1.weight"]
  # -> ("blocks", 0, 0, "conv1", "kernel")
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gsgen.models import preprocess

BLOCKS = (6, 12, 24, 16)
# torchvision's init: kaiming_normal_ (fan_in, ReLU gain) for every convolution.
_CONV_INIT = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def _norm(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  # momentum 0.9 and epsilon 1e-5 are PyTorch's (momentum 0.1 there), so running
  # statistics loaded from torchvision keep their meaning.
  return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


def _conv(in_features: int, out_features: int, size: int, rngs: nnx.Rngs, strides: int = 1,
          padding: int = 0) -> nnx.Conv:
  return nnx.Conv(in_features, out_features, (size, size), strides=strides,
                  padding=((padding, padding),) * 2, use_bias=False, kernel_init=_CONV_INIT,
                  rngs=rngs)


class DenseLayer(nnx.Module):
  """BN-ReLU-1x1 conv (bottleneck) - BN-ReLU-3x3 conv, output appended to the input."""

  def __init__(self, in_features: int, growth: int, bn_size: int, *, rngs: nnx.Rngs):
    """Args:
      in_features: input channels.
      growth: channels the layer adds.
      bn_size: bottleneck width in multiples of ``growth``.
      rngs: parameter initialisation.
    """
    self.norm1 = _norm(in_features, rngs)
    self.conv1 = _conv(in_features, bn_size * growth, 1, rngs)
    self.norm2 = _norm(bn_size * growth, rngs)
    self.conv2 = _conv(bn_size * growth, growth, 3, rngs, padding=1)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.conv1(jax.nn.relu(self.norm1(x)))
    y = self.conv2(jax.nn.relu(self.norm2(y)))
    return jnp.concatenate([x, y], axis=-1)


class Transition(nnx.Module):
  """BN-ReLU-1x1 conv to fewer channels, 2x2 average pool."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    """Args:
      in_features: input channels.
      out_features: output channels.
      rngs: parameter initialisation.
    """
    self.norm = _norm(in_features, rngs)
    self.conv = _conv(in_features, out_features, 1, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.conv(jax.nn.relu(self.norm(x)))
    return nnx.avg_pool(x, (2, 2), strides=(2, 2))


class DenseNet(nnx.Module):
  """DenseNet-BC (121 by default): stem, dense blocks and transitions, BN-ReLU, mean, linear."""

  def __init__(self, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs,
               blocks: tuple[int, ...] = BLOCKS, growth: int = 32, bn_size: int = 4,
               compression: float = 0.5, init_features: int = 64, stem_pool: bool = True,
               resolution: int = 0):
    """Args:
      num_outputs: factors to regress.
      in_channels: image channels, 1 (repeated to RGB) or 3.
      rngs: parameter initialisation.
      blocks: dense layers per block.
      growth: channels each dense layer adds.
      bn_size: bottleneck width of a dense layer in multiples of ``growth``.
      compression: fraction of channels a transition keeps.
      init_features: channels of the stem convolution.
      stem_pool: keep the stem's 3x3 stride-2 max-pool (2x2 final map on 64x64 input).
      resolution: side images are resized to before the stem (0: as they come).
    """
    if in_channels not in (1, 3):
      raise ValueError(f"in_channels must be 1 or 3 (ImageNet normalisation), not {in_channels}.")
    preprocess.check_resolution(resolution)
    self.resolution = resolution
    self.stem_pool = stem_pool
    self.conv0 = _conv(3, init_features, 7, rngs, strides=2, padding=3)
    self.norm0 = _norm(init_features, rngs)
    dense_blocks, transitions, features = [], [], init_features
    for i, layers in enumerate(blocks):
      dense_blocks.append(nnx.List([
          DenseLayer(features + j * growth, growth, bn_size, rngs=rngs) for j in range(layers)]))
      features += layers * growth
      if i < len(blocks) - 1:
        transitions.append(Transition(features, int(features * compression), rngs=rngs))
        features = int(features * compression)
    self.blocks = nnx.List(dense_blocks)
    self.transitions = nnx.List(transitions)
    self.norm5 = _norm(features, rngs)
    self.head = nnx.Linear(features, num_outputs, rngs=rngs)
    self.encoding_size = features

  def feature_map(self, x: jax.Array) -> jax.Array:
    """The final feature map, after the last BatchNorm and ReLU (before pooling).

    Args:
      x: images ``[batch, height, width, in_channels]`` in [0, 1].

    Returns:
      ``[batch, s/32, s/32, encoding_size]`` for side ``s`` after the resize (``s/16``
      without the stem pool).
    """
    x = preprocess.prepare(x, resolution=self.resolution, normalization="imagenet")
    x = jax.nn.relu(self.norm0(self.conv0(x)))
    if self.stem_pool:
      x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, block in enumerate(self.blocks):
      for layer in block:
        x = layer(x)
      if i < len(self.transitions):
        x = self.transitions[i](x)
    return jax.nn.relu(self.norm5(x))

  def encode(self, x: jax.Array) -> jax.Array:
    """The globally averaged final feature map, which the head reads.

    Args:
      x: images ``[batch, height, width, in_channels]`` in [0, 1].

    Returns:
      ``[batch, encoding_size]``.
    """
    return jnp.mean(self.feature_map(x), axis=(1, 2))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.encode(x))


_BATCH_NORM = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def torchvision_param_map(blocks: tuple[int, ...] = BLOCKS) -> dict[str, tuple[str | int, ...]]:
  """torchvision DenseNet state-dict names -> paths in ``nnx.state(DenseNet(...))``.

  Args:
    blocks: dense layers per block (DenseNet-121's by default).

  Returns:
    One entry per backbone convolution weight and BatchNorm weight, bias, running_mean and
    running_var (``features.*``); ``num_batches_tracked`` and ``classifier.*`` are left out.
    Values are flat state paths such as ``("blocks", 0, 0, "norm1", "mean")``; convert the
    tensors with ``torchvision_to_flax``.
  """
  names = {"features.conv0.weight": ("conv0", "kernel")}

  def add_norm(name, path):
    for torch_name, ours in _BATCH_NORM.items():
      names[f"features.{name}.{torch_name}"] = path + (ours,)

  add_norm("norm0", ("norm0",))
  for i, layers in enumerate(blocks):
    for j in range(layers):
      name, path = f"denseblock{i + 1}.denselayer{j + 1}", ("blocks", i, j)
      for k in "12":
        add_norm(f"{name}.norm{k}", path + (f"norm{k}",))
        names[f"features.{name}.conv{k}.weight"] = path + (f"conv{k}", "kernel")
    if i < len(blocks) - 1:
      add_norm(f"transition{i + 1}.norm", ("transitions", i, "norm"))
      names[f"features.transition{i + 1}.conv.weight"] = ("transitions", i, "conv", "kernel")
  add_norm("norm5", ("norm5",))
  return names


def torchvision_to_flax(value: np.ndarray) -> np.ndarray:
  """Converts a torchvision tensor (as numpy) to our layout.

  Args:
    value: a convolution weight [out, in, height, width] or a BatchNorm vector.

  Returns:
    The convolution weight as [height, width, in, out]; vectors unchanged.
  """
  value = np.asarray(value)
  return np.transpose(value, (2, 3, 1, 0)) if value.ndim == 4 else value
