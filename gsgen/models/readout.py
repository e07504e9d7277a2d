"""A readout: an `mlp.MLPHead` on another model's ``encode()``.

A model of the common contract (``model(x) == model.head(model.encode(x))``, the encoder's
``encoding_size``) that scores a representation learner, or probes any model, on its frozen
encoder (docs/learners.md, "Readout").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen import models
  from gsgen.models import readout
  cnn = models.create("cnn", 5, in_channels=1, rngs=nnx.Rngs(0))
  probe = readout.Readout(cnn, num_outputs=5, rngs=nnx.Rngs(1))
  x = jnp.zeros((8, 64, 64, 1))
  probe(x).shape                             # (8, 5)
  probe.encode(x).shape                      # (8, 256): the CNN's representation
"""

from __future__ import annotations

import jax
from flax import nnx

from gsgen.models import mlp

# Linear(z -> 256), 4 x Linear(256 -> 256), Linear(256 -> factors): six layers (docs/learners.md).
HIDDEN = (256,) * 5


class Readout(nnx.Module):
  """``encoder.encode`` followed by an `mlp.MLPHead` with ReLU between its layers."""

  def __init__(self, encoder: nnx.Module, num_outputs: int, *, rngs: nnx.Rngs,
               hidden: tuple[int, ...] = HIDDEN):
    """Args:
      encoder: any module with ``encode(x) -> [batch, encoding_size]`` and
        ``encoding_size``.
      num_outputs: factors to regress.
      rngs: initialisation of the head (PyTorch's defaults).
      hidden: widths of the head's hidden layers.
    """
    self.encoder = encoder
    self.head = mlp.MLPHead(encoder.encoding_size, hidden, num_outputs, rngs=rngs)
    self.encoding_size = encoder.encoding_size

  def encode(self, x: jax.Array) -> jax.Array:
    """The encoder's representation ``[batch, encoding_size]``."""
    return self.encoder.encode(x)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.encode(x))
