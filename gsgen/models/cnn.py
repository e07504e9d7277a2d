"""The benchmark's standard convolutional regressor.

Synopsis::

  model = CNN(num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  model(jnp.zeros((8, 64, 64, 1))).shape     # (8, 5)

Four 4x4 convolutions with stride 2 and padding 1 (32, 32, 64, 64 channels; 64 -> 32 -> 16 ->
8 -> 4 pixels), a 4x4 valid convolution to 256 channels (4 -> 1 pixel), ReLU after each, and a
linear head: the encoder of the disentanglement literature that the published benchmark uses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

CHANNELS = (32, 32, 64, 64)


class CNN(nnx.Module):
  """Conv 4x4/2 x4 (32, 32, 64, 64), conv 4x4 valid to 256, linear head."""

  # Channels that `prepare` appends to the input of every convolution (CoordConv: 2).
  extra_channels = 0

  def __init__(self, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs,
               channels: tuple[int, ...] = CHANNELS, features: int = 256):
    """Args:
      num_outputs: factors to regress.
      in_channels: image channels (1 or 3).
      rngs: parameter initialisation.
      channels: channels of the strided convolutions.
      features: channels of the last (valid) convolution.
    """
    widths = (in_channels,) + tuple(channels)
    extra = self.extra_channels
    self.convs = nnx.List([
        nnx.Conv(a + extra, b, (4, 4), strides=2, padding=((1, 1), (1, 1)), rngs=rngs)
        for a, b in zip(widths, widths[1:])])
    self.last = nnx.Conv(widths[-1] + extra, features, (4, 4), padding="VALID", rngs=rngs)
    self.head = nnx.Linear(features, num_outputs, rngs=rngs)

  def prepare(self, x: jax.Array) -> jax.Array:
    """The input of each convolution from the previous activation (identity here)."""
    return x

  def __call__(self, x: jax.Array) -> jax.Array:
    for conv in self.convs:
      x = jax.nn.relu(conv(self.prepare(x)))
    x = jax.nn.relu(self.last(self.prepare(x)))  # [batch, 1, 1, features] for 64x64 input
    return self.head(jnp.reshape(x, (x.shape[0], -1)))
