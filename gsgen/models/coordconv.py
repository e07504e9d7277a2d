"""The standard CNN with x/y coordinate channels before every convolution (CoordConv).

Each convolution also sees the coordinates of every pixel of its own input, ``linspace(-1, 1,
n)`` along the width (x) and the height (y); everything else, ``encode()`` included, is
`cnn.CNN` (docs/models.md, "CoordConv").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen.models import coordconv
  model = coordconv.CoordConv(num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  x = jnp.zeros((8, 64, 64, 1))
  model(x).shape                             # (8, 5)
  model.encode(x).shape                      # (8, 256) == (8, model.encoding_size)
  coordconv.coordinate_channels(3, 3)[..., 0]  # x: [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]
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
  """`cnn.CNN` (same constructor, ``encode()``, ``encoding_size``) with x/y coordinate channels
  added before every convolution."""

  extra_channels = NUM_COORDS

  def prepare(self, x: jax.Array) -> jax.Array:
    """Args:
      x: ``[batch, height, width, channels]``.

    Returns:
      ``[batch, height, width, channels + 2]`` (see `add_coordinates`).
    """
    return add_coordinates(x)
