"""A multilayer perceptron on the flattened image, and `MLPHead`, the ReLU MLP other models reuse.

`MLP` (three ReLU layers of 512 by default) has no spatial prior; ``encode()`` is its last
hidden layer. `MLPHead` is the same stack on any representation: the set encoder's head and
the readout's (docs/models.md, "MLP").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen.models import mlp
  model = mlp.MLP(num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  x = jnp.zeros((8, 64, 64, 1))
  model(x).shape                             # (8, 5)
  model.encode(x).shape                      # (8, 512) == (8, model.encoding_size)
  readout = mlp.MLPHead(model.encoding_size, (256,) * 5, 5, rngs=nnx.Rngs(1))
  readout(model.encode(x)).shape             # (8, 5)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gsgen.models import torch_init as init

HIDDEN = (512, 512, 512)


class MLPHead(nnx.Module):
  """Linear layers with ReLU between them (none after the last), PyTorch-initialised."""

  def __init__(self, in_features: int, hidden: tuple[int, ...], num_outputs: int, *,
               rngs: nnx.Rngs):
    """Args:
      in_features: width of the input representation.
      hidden: widths of the hidden layers (empty: a single linear map).
      num_outputs: width of the output.
      rngs: parameter initialisation.
    """
    widths = (in_features,) + tuple(hidden)
    self.layers = nnx.List(
        [init.torch_linear(a, b, rngs=rngs) for a, b in zip(widths, widths[1:])])
    self.out = init.torch_linear(widths[-1], num_outputs, rngs=rngs)

  def __call__(self, h: jax.Array) -> jax.Array:
    """Args:
      h: ``[batch, in_features]``.

    Returns:
      ``[batch, num_outputs]``.
    """
    for layer in self.layers:
      h = jax.nn.relu(layer(h))
    return self.out(h)


class MLP(nnx.Module):
  """Flatten, ``len(hidden)`` ReLU layers, a linear head."""

  def __init__(self, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs,
               hidden: tuple[int, ...] = HIDDEN, image_size: int = 64):
    """Args:
      num_outputs: factors to regress.
      in_channels: image channels (1 or 3).
      rngs: parameter initialisation.
      hidden: widths of the hidden layers.
      image_size: height and width of the input.
    """
    widths = (image_size * image_size * in_channels,) + tuple(hidden)
    self.layers = nnx.List(
        [init.torch_linear(a, b, rngs=rngs) for a, b in zip(widths, widths[1:])])
    self.head = init.torch_linear(widths[-1], num_outputs, rngs=rngs)
    self.input_shape = (image_size, image_size, in_channels)
    self.encoding_size = widths[-1]

  def encode(self, x: jax.Array) -> jax.Array:
    """The last hidden layer, which the head reads.

    Args:
      x: images ``[batch, image_size, image_size, in_channels]``.

    Returns:
      ``[batch, encoding_size]`` (``hidden[-1]``; the flattened image when ``hidden`` is empty).

    Raises:
      ValueError: ``x`` is not a batch of the images the model was built for.
    """
    if tuple(x.shape[1:]) != self.input_shape:
      raise ValueError(f"MLP built for images of shape {self.input_shape}, got {x.shape[1:]}; "
                       "build it with the matching image_size and in_channels.")
    x = jnp.reshape(x, (x.shape[0], -1))
    for layer in self.layers:
      x = jax.nn.relu(layer(x))
    return x

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.encode(x))
