"""A readout: an MLP regressor on the representation ``encode()`` of another model.

The un- and weakly supervised learners never see a factor label, so the study scores them
by training a small MLP on their frozen representation (docs/learners.md); the same readout probes
the representation of any model of `gsgen.models`, supervised ones included. The readout
is itself a model of the common contract (``model(x) == model.head(model.encode(x))``), so
the engine, the evaluator and `gsgen.runs` treat it like any other.

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
