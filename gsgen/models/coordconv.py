"""The standard CNN with coordinate channels at the input of every convolution (CoordConv).

Synopsis::

  model = CoordConv(num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  model(jnp.zeros((8, 64, 64, 1))).shape     # (8, 5)
  coordinate_channels(3, 3)[..., 0]          # x: [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]

Same layout as `gsgen.models.cnn.CNN` (four 4x4 stride-2 convolutions with 32, 32, 64, 64
channels, a 4x4 valid convolution to 256, ReLU after each, a linear head), except that each
convolution sees two extra channels holding the x and y coordinate of every pixel of its own
input (Liu et al., 2018, "An intriguing failing of convolutional neural networks and the
CoordConv solution"). A plain convolution is translation-equivariant, so it can only infer
position from the zero padding at the border; the coordinate channels hand it position directly,
which is what regressing x/y position factors asks for.

Coordinate convention (the CoordConv paper's): on a grid of ``n`` pixels the centres of the
first and last pixel are -1 and +1, evenly spaced between, i.e. ``linspace(-1, 1, n)``; x runs
along the width (left to right), y along the height (top to bottom). Channel order: the input's
channels, then x, then y.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gsgen.models import cnn

NUM_COORDS = 2


def coordinate_channels(height: int, width: int, dtype=jnp.float32) -> jax.Array:
  """The coordinate channels of a ``height`` x ``width`` grid.

  Args:
    height: rows of the grid.
    width: columns of the grid.
    dtype: dtype of the result.

  Returns:
    ``[height, width, 2]``: channel 0 is x (varies along columns, -1 at the left column, +1 at
    the right), channel 1 is y (varies along rows, -1 at the top row, +1 at the bottom).
  """
  xs = jnp.linspace(-1.0, 1.0, width, dtype=dtype)
  ys = jnp.linspace(-1.0, 1.0, height, dtype=dtype)
  yy, xx = jnp.meshgrid(ys, xs, indexing="ij")
  return jnp.stack([xx, yy], axis=-1)


def add_coordinates(x: jax.Array) -> jax.Array:
  """Appends the coordinate channels of ``x``'s grid to ``x``.

  Args:
    x: ``[batch, height, width, channels]``.

  Returns:
    ``[batch, height, width, channels + 2]``: ``x`` then x and y (see `coordinate_channels`).
  """
  batch, height, width, _ = x.shape
  coords = coordinate_channels(height, width, x.dtype)
  coords = jnp.broadcast_to(coords, (batch, height, width, NUM_COORDS))
  return jnp.concatenate([x, coords], axis=-1)


class CoordConv(cnn.CNN):
  """The `cnn.CNN` layout with x/y coordinate channels added before every convolution.

  Same constructor as `cnn.CNN`; only the input of each convolution differs.
  """

  extra_channels = NUM_COORDS

  def prepare(self, x: jax.Array) -> jax.Array:
    return add_coordinates(x)
