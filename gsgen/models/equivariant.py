"""A rotation-equivariant CNN: group convolutions over the rotation group C4.

Synopsis::

  model = EquivariantCNN(num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  x = jax.random.uniform(jax.random.key(0), (8, 64, 64, 1))
  model(x).shape                             # (8, 5)

  # The symmetry every convolutional layer keeps (exactly, up to float rounding):
  feats = model.features(x)                  # [batch, h, w, 4, channels] per layer
  rotated = model.features(jnp.rot90(x, 1, axes=(1, 2)))
  # rotated[i] == rotate(feats[i]): spatial rot90 and a cyclic shift of the rotation axis.

Why C4 and not C8: a 90-degree rotation maps a square pixel grid and a square filter onto
themselves, so ``jnp.rot90`` of the filter is an exact permutation of its weights and the
network is exactly equivariant. A 45-degree rotation of a 3x3 or 4x4 filter has to interpolate
between pixels (and so does rotating the image by 45 degrees on a pixel grid), which smooths
the filter and makes equivariance approximate, with an error that is largest for exactly
such small, sharp filters; C8 also doubles the compute for equal parameter count (8x instead
of 4x that of the CNN, see below), which this CPU-bound benchmark can ill afford. C4 therefore
gives the benchmark a clean, testable inductive bias.

Feature maps of the group layers have shape ``[batch, height, width, 4, channels]``: axis 3
indexes the rotation r in {0, 90, 180, 270} degrees at which each filter was applied. The
group acts on them by ``rotate``: ``jnp.rot90`` over (height, width) and ``jnp.roll`` by +1
along the rotation axis. Concretely, with ``R`` = ``jnp.rot90(., 1, axes=(1, 2))``,

  layer(R x) == jnp.roll(R layer(x), 1, axis=3).

Layout, chosen to mirror ``cnn.CNN`` (the benchmark's 4x4/stride-2 encoder) layer for layer:
a lifting convolution and three group convolutions, all 4x4 with stride 2 and padding 1
(64 -> 32 -> 16 -> 8 -> 4 pixels), a 4x4 valid group convolution (4 -> 1 pixel), ReLU after
each, and a linear head. The stride-2 layers stay exactly equivariant on these even grids
because the filter windows' centres (at 2i + 0.5 in input pixels) form a grid that is
symmetric about the image centre (31.5 for 64 pixels), i.e. the sampling grid maps onto
itself under rot90; the same holds for every later even grid and for the final valid 4x4
window. (A 3x3 stride-2 filter on an even grid, or asymmetric 'SAME' padding, would not.)
Channels per rotation are those of the CNN divided by 2 = sqrt(|C4|): a group filter has
|C4| = 4 times the weights of an ordinary filter with the same channels, so the parameter
count matches the CNN's (about 0.38 M), at 3.9x its multiply-adds (31.5 M against 8.1 M per
1-channel image). ``channels=(8, 8, 16, 16), features=64`` is the compute-matched
alternative (about 0.1 M parameters, about the CNN's speed).

The head keeps orientation: after the last layer only the rotation axis (4) and channels are
left, and the head is a linear map from all ``4 * features`` numbers. Pooling over the
rotation axis would make the output rotation-invariant and erase what the targets need
(dSprites' orientation, and positions, which rotating the image exchanges rather than keeps).
Flattening the rotation axis keeps the equivariant encoder's bias while letting the head
read orientation from which rotation channel responds.

No batch normalisation, like ``cnn.CNN``; the bias of each layer is shared across the
rotation axis because a rotation-dependent bias would break equivariance.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

ORDER = 4  # |C4|: rotations by 0, 90, 180 and 270 degrees.
CHANNELS = (16, 16, 32, 32)
FEATURES = 128

Padding = str | Sequence[tuple[int, int]]


def rotate(features: jax.Array, k: int = 1) -> jax.Array:
  """The C4 action on group feature maps: the symmetry the group layers preserve.

  Args:
    features: ``[batch, height, width, 4, channels]``.
    k: number of 90-degree rotations, in the sense of ``jnp.rot90(., k, axes=(1, 2))``.

  Returns:
    The feature maps rotated spatially by ``k`` quarter turns, with the rotation axis
    cyclically shifted by ``k`` (``out[..., r, :] = rotated[..., r - k, :]``).
  """
  return jnp.roll(jnp.rot90(features, k, axes=(1, 2)), k, axis=3)


def _stack_rotations(kernel: jax.Array, lifting: bool) -> jax.Array:
  """Builds one ordinary HWIO kernel that applies ``kernel`` at all four rotations.

  Output rotation r uses the filter rotated by r quarter turns; for a group kernel
  ``[kh, kw, 4, in, out]`` its input rotation axis is also rolled by r, so that a rotated,
  shifted input yields a rotated, shifted output (see the module docstring for the law).

  Args:
    kernel: ``[kh, kw, in, out]`` (lifting) or ``[kh, kw, 4, in, out]`` (group).
    lifting: which of the two.

  Returns:
    ``[kh, kw, in_total, 4 * out]`` with output channels ordered (rotation, channel) and, for
    group kernels, input channels ordered (rotation, channel).
  """
  rotated = []
  for r in range(ORDER):
    k = kernel if lifting else jnp.roll(kernel, r, axis=2)
    rotated.append(jnp.rot90(k, r, axes=(0, 1)))
  stacked = jnp.stack(rotated, axis=-2)  # [..., in, 4, out]
  kh, kw = kernel.shape[:2]
  return jnp.reshape(stacked, (kh, kw, -1, ORDER * kernel.shape[-1]))


class GroupConv(nnx.Module):
  """A C4 lifting or group convolution.

  Lifting (``lifting=True``): images ``[batch, h, w, in]`` -> ``[batch, h', w', 4, out]``.
  Group: ``[batch, h, w, 4, in]`` -> ``[batch, h', w', 4, out]``. Both run as one ordinary
  convolution with the four rotated copies of the filter stacked along output channels, so
  XLA sees a single conv of ``in_total -> 4 * out`` channels.

  Equivariance is exact when the padded grid is symmetric about its centre and the stride
  grid maps onto itself under rot90: odd kernel with equal padding at stride 1, or
  (size + pad_lo + pad_hi - kernel) divisible by the stride with pad_lo == pad_hi.
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int, *,
               lifting: bool, rngs: nnx.Rngs, strides: int = 1,
               padding: Padding = "VALID"):
    """Args:
      in_features: channels per rotation of the input (image channels when lifting).
      out_features: channels per rotation of the output.
      kernel_size: square filter size.
      lifting: input is an image (no rotation axis) rather than group feature maps.
      rngs: parameter initialisation.
      strides: spatial stride.
      padding: 'VALID', 'SAME' or ((lo, hi), (lo, hi)) as for ``jax.lax.conv_general_dilated``.
    """
    self.lifting = lifting
    self.strides = strides
    self.padding = padding
    group_axes = () if lifting else (ORDER,)
    shape = (kernel_size, kernel_size) + group_axes + (in_features, out_features)
    # LeCun normal over the true fan-in (spatial x rotations x channels), as nnx.Conv does
    # for its own fan-in.
    init = nnx.initializers.lecun_normal(in_axis=tuple(range(len(shape) - 1)), out_axis=-1)
    self.kernel = nnx.Param(init(rngs.params(), shape, jnp.float32))
    self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    """Args:
      x: ``[batch, h, w, in]`` when lifting, else ``[batch, h, w, 4, in]``.

    Returns:
      ``[batch, h', w', 4, out]``.
    """
    if not self.lifting:
      x = jnp.reshape(x, x.shape[:3] + (-1,))
    kernel = _stack_rotations(self.kernel[...], self.lifting)
    padding = self.padding if isinstance(self.padding, str) else tuple(self.padding)
    y = jax.lax.conv_general_dilated(
        x, kernel, window_strides=(self.strides, self.strides), padding=padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = jnp.reshape(y, y.shape[:3] + (ORDER, -1))
    return y + self.bias[...]


class EquivariantCNN(nnx.Module):
  """C4 lifting conv + group convs 4x4/2 (16, 16, 32, 32 per rotation), 4x4 valid to 128,
  linear head over the flattened (rotation, channel) features."""

  def __init__(self, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs,
               channels: tuple[int, ...] = CHANNELS, features: int = FEATURES):
    """Args:
      num_outputs: factors to regress.
      in_channels: image channels (1 or 3).
      rngs: parameter initialisation.
      channels: channels per rotation of the strided layers; the first is the lifting
        convolution.
      features: channels per rotation of the last (valid) group convolution.
    """
    pad = ((1, 1), (1, 1))
    widths = (in_channels,) + tuple(channels)
    self.convs = nnx.List([
        GroupConv(a, b, 4, lifting=(i == 0), strides=2, padding=pad, rngs=rngs)
        for i, (a, b) in enumerate(zip(widths, widths[1:]))])
    self.last = GroupConv(widths[-1], features, 4, lifting=False, padding="VALID", rngs=rngs)
    self.head = nnx.Linear(ORDER * features, num_outputs, rngs=rngs)

  def features(self, x: jax.Array) -> list[jax.Array]:
    """The equivariant feature maps, for inspection and the equivariance tests.

    Args:
      x: images ``[batch, height, width, in_channels]``.

    Returns:
      For each group layer in order, its convolution output and then its ReLU output, each
      ``[batch, h, w, 4, channels]``; the last entry is what the head reads.
    """
    outputs = []
    for conv in tuple(self.convs) + (self.last,):
      x = conv(x)
      outputs.append(x)
      x = jax.nn.relu(x)
      outputs.append(x)
    return outputs

  def __call__(self, x: jax.Array) -> jax.Array:
    for conv in self.convs:
      x = jax.nn.relu(conv(x))
    x = jax.nn.relu(self.last(x))  # [batch, 1, 1, 4, features] for 64x64 input
    return self.head(jnp.reshape(x, (x.shape[0], -1)))
