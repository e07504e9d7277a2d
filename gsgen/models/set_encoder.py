"""The image as a set of pixels: a shared per-pixel MLP, mean and max pooling, an MLP head.

Each pixel becomes an element ``(x, y, value...)`` (CoordConv's coordinates); ``encode()``
concatenates the mean and the max of the element embeddings, so the output does not depend on
the order of the elements (docs/models.md, "Set encoder").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen.models import set_encoder
  model = set_encoder.SetEncoder(num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  x = jnp.zeros((8, 64, 64, 1))
  model(x).shape                                   # (8, 5)
  model.encode(x).shape                            # (8, 128) == (8, model.encoding_size)
  elements = set_encoder.pixels_to_set(x)          # (8, 4096, 3): x, y, intensity
  model.from_set(elements).shape                   # (8, 5); any row order gives the same output
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gsgen.models import coordconv
from gsgen.models import torch_init as init
from gsgen.models import mlp

ELEMENT_WIDTHS = (32, 64)
HEAD_WIDTHS = (256,)


def pixels_to_set(x: jax.Array) -> jax.Array:
  """The pixels of ``x`` as a set of ``(x, y, value...)`` elements, in raster order.

  Args:
    x: images ``[batch, height, width, channels]``.

  Returns:
    ``[batch, height * width, 2 + channels]``: the pixel's x and y coordinate (see
    `coordconv.coordinate_channels`) then its channel values.
  """
  batch, height, width, channels = x.shape
  elements = jnp.concatenate(
      [jnp.broadcast_to(coordconv.coordinate_channels(height, width, x.dtype),
                        (batch, height, width, coordconv.NUM_COORDS)), x], axis=-1)
  return jnp.reshape(elements, (batch, height * width, coordconv.NUM_COORDS + channels))


class SetEncoder(nnx.Module):
  """Per-element MLP, mean and max pooling over the elements, MLP head."""

  def __init__(self, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs,
               element_widths: tuple[int, ...] = ELEMENT_WIDTHS,
               head_widths: tuple[int, ...] = HEAD_WIDTHS):
    """Args:
      num_outputs: factors to regress.
      in_channels: image channels (1 or 3); elements have ``2 + in_channels`` features.
      rngs: parameter initialisation.
      element_widths: widths of the shared element MLP (ReLU after every layer, so the pooled
        embeddings are non-negative); the encoding has ``2 * element_widths[-1]`` entries.
      head_widths: hidden widths of the head MLP.
    """
    widths = (coordconv.NUM_COORDS + in_channels,) + tuple(element_widths)
    self.element_layers = nnx.List(
        [init.torch_linear(a, b, rngs=rngs) for a, b in zip(widths, widths[1:])])
    self.encoding_size = 2 * widths[-1]
    self.head = mlp.MLPHead(self.encoding_size, head_widths, num_outputs, rngs=rngs)

  def pool(self, elements: jax.Array) -> jax.Array:
    """The permutation-invariant summary of a set.

    Args:
      elements: ``[batch, num_elements, 2 + in_channels]``.

    Returns:
      ``[batch, encoding_size]``: mean then max of the element embeddings.
    """
    h = elements
    for layer in self.element_layers:
      h = jax.nn.relu(layer(h))
    return jnp.concatenate([jnp.mean(h, axis=1), jnp.max(h, axis=1)], axis=-1)

  def from_set(self, elements: jax.Array) -> jax.Array:
    """Regresses the factors from a set of elements (any order; see `pixels_to_set`).

    Args:
      elements: ``[batch, num_elements, 2 + in_channels]``.

    Returns:
      ``[batch, num_outputs]``.
    """
    return self.head(self.pool(elements))

  def encode(self, x: jax.Array) -> jax.Array:
    """The pooled set representation of the image's pixels, which the head reads.

    Args:
      x: images ``[batch, height, width, in_channels]``.

    Returns:
      ``[batch, encoding_size]``.
    """
    return self.pool(pixels_to_set(x))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.encode(x))
