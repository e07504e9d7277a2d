"""A multilayer perceptron on the flattened image.

Synopsis::

  model = MLP(num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  model(jnp.zeros((8, 64, 64, 1))).shape     # (8, 5)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class MLP(nnx.Module):
  """Flatten, ``len(hidden)`` ReLU layers, a linear head.

  The study's MLP baseline sees pixels with no spatial prior; three layers of 512 units
  (about 2.6 M parameters on 64x64x1 input) make it a fair peer of the CNN.
  """

  def __init__(self, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs,
               hidden: tuple[int, ...] = (512, 512, 512), image_size: int = 64):
    """Args:
      num_outputs: factors to regress.
      in_channels: image channels (1 or 3).
      rngs: parameter initialisation.
      hidden: widths of the hidden layers.
      image_size: height and width of the input.
    """
    widths = (image_size * image_size * in_channels,) + tuple(hidden)
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths, widths[1:])])
    self.head = nnx.Linear(widths[-1], num_outputs, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.reshape(x, (x.shape[0], -1))
    for layer in self.layers:
      x = jax.nn.relu(layer(x))
    return self.head(x)
