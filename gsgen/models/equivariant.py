"""A rotation-equivariant CNN: group convolutions over the four quarter turns (C4).

Laid out layer for layer as `cnn.CNN`: a lifting convolution, then group convolutions whose
feature maps are ``[batch, h, w, 4, channels]``; on 64x64 input every layer commutes exactly
with `rotate`. ``encode()`` is the last layer flattened over (rotation, channel), not pooled,
so the head can still read orientation (docs/models.md, "Rotation-equivariant CNN (C4)").

Synopsis::

  import jax
  import jax.numpy as jnp
  from flax import nnx
  from gsgen.models import equivariant
  model = equivariant.EquivariantCNN(num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  x = jax.random.uniform(jax.random.key(0), (8, 64, 64, 1))
  model(x).shape                             # (8, 5)
  model.encode(x).shape                      # (8, 512) == (8, model.encoding_size)
  outs = model.layer_outputs(x)              # [batch, h, w, 4, channels] per layer
  turned = model.layer_outputs(jnp.rot90(x, 1, axes=(1, 2)))
  # turned[i] == equivariant.rotate(outs[i]), up to float rounding
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
  """One HWIO kernel ``[kh, kw, in_total, 4 * out]`` that applies ``kernel`` (``[kh, kw, in,
  out]`` lifting, ``[kh, kw, 4, in, out]`` group) at the four rotations; channels are ordered
  (rotation, channel)."""
  rotated = []
  for r in range(ORDER):
    k = kernel if lifting else jnp.roll(kernel, r, axis=2)
    rotated.append(jnp.rot90(k, r, axes=(0, 1)))
  stacked = jnp.stack(rotated, axis=-2)  # [..., in, 4, out]
  kh, kw = kernel.shape[:2]
  return jnp.reshape(stacked, (kh, kw, -1, ORDER * kernel.shape[-1]))


class GroupConv(nnx.Module):
  """A C4 lifting convolution (images ``[batch, h, w, in]``) or group convolution
  (``[batch, h, w, 4, in]``) to ``[batch, h', w', 4, out]``, run as one ordinary convolution.

  Exactly equivariant only on grids that rot90 maps onto themselves (docs/models.md).
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
    # LeCun normal over the true fan-in (spatial x rotations x channels).
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
    self.encoding_size = ORDER * features
    self.head = nnx.Linear(self.encoding_size, num_outputs, rngs=rngs)

  def layer_outputs(self, x: jax.Array) -> list[jax.Array]:
    """The equivariant feature maps of every layer, for inspection and equivariance tests.

    Args:
      x: images ``[batch, height, width, in_channels]``.

    Returns:
      For each group layer in order, its convolution output and then its ReLU output, each
      ``[batch, h, w, 4, channels]``; the last entry, flattened, is `encode`.
    """
    outputs = []
    for conv in tuple(self.convs) + (self.last,):
      x = conv(x)
      outputs.append(x)
      x = jax.nn.relu(x)
      outputs.append(x)
    return outputs

  def encode(self, x: jax.Array) -> jax.Array:
    """The last layer's rectified output over all rotations, flattened: what the head reads.

    Args:
      x: images ``[batch, 64, 64, in_channels]``.

    Returns:
      ``[batch, encoding_size]``, ordered (rotation, channel); rotating the image by a quarter
      turn rolls the rotation blocks by one.

    Raises:
      ValueError: the images are not the size that the layers reduce to 1x1.
    """
    side = 4 * 2 ** len(self.convs)  # halved by each strided layer, 4 -> 1 by the last
    if x.shape[1:3] != (side, side):
      raise ValueError(f"EquivariantCNN reduces {side}x{side} images to 1x1, got "
                       f"{x.shape[1]}x{x.shape[2]}; resize the images to {side}x{side}.")
    for conv in self.convs:
      x = jax.nn.relu(conv(x))
    x = jax.nn.relu(self.last(x))
    return jnp.reshape(x, (x.shape[0], -1))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.encode(x))
