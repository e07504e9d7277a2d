"""The standard CNN with coordinate channels at the input of every convolution (CoordConv).

A plain convolution is translation-equivariant and can infer where something is only from the
zero padding at the border; regressing position factors asks for exactly that, so CoordConv
(Liu et al., 2018) hands every convolution the x and y coordinate of each pixel of its own
input. Everything else, ``encode()`` included, is `gsgen.models.cnn.CNN`; the coordinate
convention is in docs/models.md.

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
  """The `cnn.CNN` layout with x/y coordinate channels added before every convolution.

  Same constructor, ``encode()`` and ``encoding_size`` as `cnn.CNN`; only the input of each
  convolution differs (its PyTorch fan-in counts the two coordinate channels).
  """

  extra_channels = NUM_COORDS

  def prepare(self, x: jax.Array) -> jax.Array:
    """Args:
      x: ``[batch, height, width, channels]``.

    Returns:
      ``[batch, height, width, channels + 2]`` (see `add_coordinates`).
    """
    return add_coordinates(x)
