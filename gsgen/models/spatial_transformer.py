"""A spatial transformer (Jaderberg et al., 2015): a learnt affine warp, then `cnn.CNN`.

A localisation network predicts ``theta`` ``[batch, 2, 3]`` per image, `warp` resamples the
image through it as PyTorch's ``affine_grid`` and ``grid_sample`` do (``align_corners=False``,
zeros outside), and ``encode()`` is the CNN's encoding of the warped image. The warp starts as
the identity (docs/models.md, "Spatial transformer").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen.models import spatial_transformer as st
  model = st.SpatialTransformer(num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  images = jnp.zeros((8, 64, 64, 1))
  model(images).shape                                  # (8, 5)
  model.encode(images).shape                           # (8, 256) == (8, model.encoding_size)
  theta = jnp.array([[[0., -1., 0.], [1., 0., 0.]]])   # R(90 deg), for a batch of one
  st.warp(images[:1], theta)    # == np.rot90(images[:1], 1, axes=(1, 2)) (square images)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gsgen.models import cnn
from gsgen.models import torch_init as init

LOC_CHANNELS = (16, 16, 32, 32)
LOC_HIDDEN = 64
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # theta, row-major


def affine_grid(theta: jax.Array, height: int, width: int) -> jax.Array:
  """The source points ``theta @ (x, y, 1)`` that an affine warp samples for each output pixel
  centre ``(x, y)``, in normalised coordinates (image edges at -1 and +1, x along the width,
  y down the height).

  Args:
    theta: ``[batch, 2, 3]`` affine matrices from output to source normalised coordinates.
    height: rows of the output.
    width: columns of the output.

  Returns:
    ``[batch, height, width, 2]``: normalised source ``(x, y)`` of each output pixel centre.
  """
  xs = (2.0 * jnp.arange(width, dtype=theta.dtype) + 1.0) / width - 1.0
  ys = (2.0 * jnp.arange(height, dtype=theta.dtype) + 1.0) / height - 1.0
  yy, xx = jnp.meshgrid(ys, xs, indexing="ij")
  homogeneous = jnp.stack([xx, yy, jnp.ones_like(xx)], axis=-1)  # [height, width, 3]
  # A weighted sum, not a matmul: exact for the identity (docs/models.md).
  return jnp.sum(theta[:, None, None, :, :] * homogeneous[None, :, :, None, :], axis=-1)


def bilinear_sample(images: jax.Array, grid: jax.Array) -> jax.Array:
  """Samples ``images`` at normalised points by bilinear interpolation, zeros outside.

  Differentiable in ``grid`` (almost everywhere) and in ``images``.

  Args:
    images: ``[batch, height, width, channels]``.
    grid: ``[batch, out_height, out_width, 2]`` normalised ``(x, y)`` points, as
      `affine_grid` gives them.

  Returns:
    ``[batch, out_height, out_width, channels]``.
  """
  batch, height, width, channels = images.shape
  out_shape = grid.shape[:3]
  # Normalised -> pixel coordinates, where pixel (i, j) has its centre at (x, y) = (j, i).
  px = ((grid[..., 0] + 1.0) * width - 1.0) / 2.0
  py = ((grid[..., 1] + 1.0) * height - 1.0) / 2.0
  x0 = jnp.floor(px)
  y0 = jnp.floor(py)
  wx1, wy1 = px - x0, py - y0
  wx0, wy0 = 1.0 - wx1, 1.0 - wy1
  flat = jnp.reshape(images, (batch, height * width, channels))

  def tap(xi, yi, weight):
    inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
    index = (jnp.clip(yi, 0, height - 1).astype(jnp.int32) * width
             + jnp.clip(xi, 0, width - 1).astype(jnp.int32))
    values = jnp.take_along_axis(flat, jnp.reshape(index, (batch, -1, 1)), axis=1)
    values = jnp.reshape(values, out_shape + (channels,))
    return values * jnp.where(inside, weight, 0.0)[..., None]

  return (tap(x0, y0, wx0 * wy0) + tap(x0 + 1, y0, wx1 * wy0)
          + tap(x0, y0 + 1, wx0 * wy1) + tap(x0 + 1, y0 + 1, wx1 * wy1))


def warp(images: jax.Array, theta: jax.Array) -> jax.Array:
  """Resamples ``images`` through the affine maps ``theta`` onto a grid of the same size.

  Args:
    images: ``[batch, height, width, channels]``.
    theta: ``[batch, 2, 3]``, output to source normalised coordinates.

  Returns:
    ``[batch, height, width, channels]``.
  """
  _, height, width, _ = images.shape
  return bilinear_sample(images, affine_grid(theta.astype(images.dtype), height, width))


def _identity_init(key, shape, dtype=jnp.float32):
  del key
  assert shape == (6,), shape
  return jnp.asarray(IDENTITY, dtype)


class SpatialTransformer(nnx.Module):
  """Localisation CNN -> affine theta -> bilinear warp -> `cnn.CNN`."""

  def __init__(self, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs,
               loc_channels: tuple[int, ...] = LOC_CHANNELS, loc_hidden: int = LOC_HIDDEN,
               image_size: int = 64):
    """Args:
      num_outputs: factors to regress.
      in_channels: image channels (1 or 3).
      rngs: parameter initialisation.
      loc_channels: channels of the localisation network's 4x4 stride-2 convolutions, each
        halving the resolution.
      loc_hidden: width of its hidden dense layer.
      image_size: height and width of the input.
    """
    widths = (in_channels,) + tuple(loc_channels)
    self.loc_convs = nnx.List([
        init.torch_conv(a, b, 4, strides=2, padding=1, rngs=rngs)
        for a, b in zip(widths, widths[1:])])
    # Flattening (rather than pooling) keeps where things are, which a translation needs.
    side = image_size // 2 ** len(loc_channels)
    self.loc_hidden = init.torch_linear(side * side * widths[-1], loc_hidden, rngs=rngs)
    # Zero weights and the identity bias: the warp starts as the identity (Jaderberg et al.).
    self.loc_theta = nnx.Linear(loc_hidden, 6, kernel_init=nnx.initializers.zeros_init(),
                                bias_init=_identity_init, rngs=rngs)
    self.cnn = cnn.CNN(num_outputs, in_channels=in_channels, rngs=rngs)
    self.encoding_size = self.cnn.encoding_size

  @property
  def head(self) -> nnx.Linear:
    """The CNN's head: maps `encode` to the outputs."""
    return self.cnn.head

  def transform(self, x: jax.Array) -> jax.Array:
    """The affine maps the localisation network predicts.

    Args:
      x: images ``[batch, height, width, in_channels]``.

    Returns:
      ``[batch, 2, 3]`` theta (output to source normalised coordinates).
    """
    h = x
    for conv in self.loc_convs:
      h = jax.nn.relu(conv(h))
    h = jax.nn.relu(self.loc_hidden(jnp.reshape(h, (h.shape[0], -1))))
    return jnp.reshape(self.loc_theta(h), (-1, 2, 3))

  def encode(self, x: jax.Array) -> jax.Array:
    """The CNN's encoding of the warped image, which the head reads.

    Args:
      x: images ``[batch, 64, 64, in_channels]``.

    Returns:
      ``[batch, encoding_size]``.
    """
    return self.cnn.encode(warp(x, self.transform(x)))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.encode(x))
