"""The benchmark's standard CNN (the authors' VanillaCNN): a factor regressor and the VAEs' encoder.

Four 4x4 stride-2 convolutions take 64x64 images to 4x4 and a 4x4 valid convolution to 256
channels leaves one position; ``encode()`` is that 256-vector, the head a linear map
(docs/models.md, "CNN (the authors' VanillaCNN)").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen.models import cnn
  model = cnn.CNN(num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  x = jnp.zeros((8, 64, 64, 1))
  model(x).shape                             # (8, 5)
  model.encode(x).shape                      # (8, 256) == (8, model.encoding_size)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gsgen.models import fast_conv
from gsgen.models import torch_init as init

CHANNELS = (32, 32, 64, 64)
FEATURES = 256
# Inference on a CPU encodes larger batches this many images at a time, in one compiled loop
# (docs/models.md, "The CNN on a CPU").
CPU_CHUNK = 64
# Training on a CPU encodes a batch this many images at a time, unrolled in the one program:
# each chunk's activations stay in cache and the two cores run independent chains
# (docs/models.md, "The CNN on a CPU"). 0: the batch whole.
CPU_TRAIN_CHUNK = 16


class CNN(nnx.Module):
  """Conv 4x4/2 x4 (32, 32, 64, 64), conv 4x4 valid to 256, ReLU after each, linear head."""

  # Channels that `prepare` appends to the input of every convolution (CoordConv: 2).
  extra_channels = 0

  def __init__(self, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs,
               channels: tuple[int, ...] = CHANNELS, features: int = FEATURES):
    """Args:
      num_outputs: factors to regress.
      in_channels: image channels (1 or 3).
      rngs: parameter initialisation.
      channels: channels of the strided convolutions.
      features: channels of the last (valid) convolution: the encoding size.
    """
    widths = (in_channels,) + tuple(channels)
    extra = self.extra_channels
    # Same layers as lax's convolutions, computed in the forms that train fastest.
    conv = fast_conv.conv_general_dilated
    self.convs = nnx.List([
        init.torch_conv(a + extra, b, 4, strides=2, padding=1, rngs=rngs,
                        conv_general_dilated=conv)
        for a, b in zip(widths, widths[1:])])
    self.last = init.torch_conv(widths[-1] + extra, features, 4, padding="VALID", rngs=rngs,
                                conv_general_dilated=conv)
    self.head = init.torch_linear(features, num_outputs, rngs=rngs)
    self.encoding_size = features
    self.deterministic = False  # inference mode, set by `eval()`: chunks CPU batches

  def prepare(self, x: jax.Array) -> jax.Array:
    """The input of each convolution from the previous activation (identity here).

    Args:
      x: ``[batch, height, width, channels]``.

    Returns:
      ``[batch, height, width, channels + extra_channels]``.
    """
    return x

  def encode(self, x: jax.Array) -> jax.Array:
    """The rectified output of the valid convolution, which the head reads.

    Args:
      x: images ``[batch, 64, 64, in_channels]``.

    Returns:
      ``[batch, encoding_size]``.

    Raises:
      ValueError: the images are not the size that the convolutions reduce to 1x1.
    """
    # Each strided layer halves the side and the valid 4x4 convolution takes 4 to 1.
    side = 4 * 2 ** len(self.convs)
    if x.shape[1:3] != (side, side):
      raise ValueError(f"{type(self).__name__} reduces {side}x{side} images to 1x1, got "
                       f"{x.shape[1]}x{x.shape[2]}; resize the images to {side}x{side}.")
    batch = x.shape[0]
    if (self.deterministic and jax.default_backend() == "cpu" and batch > CPU_CHUNK
        and batch % CPU_CHUNK == 0):
      chunks = x.reshape((batch // CPU_CHUNK, CPU_CHUNK) + x.shape[1:])
      return jax.lax.map(self._encode, chunks).reshape(batch, -1)
    if (CPU_TRAIN_CHUNK and not self.deterministic and jax.default_backend() == "cpu"
        and batch > CPU_TRAIN_CHUNK and batch % CPU_TRAIN_CHUNK == 0):
      return jnp.concatenate([self._encode(c) for c in jnp.split(x, batch // CPU_TRAIN_CHUNK)])
    return self._encode(x)

  def _encode(self, x: jax.Array) -> jax.Array:
    for conv in self.convs:
      x = jax.nn.relu(conv(self.prepare(x)))
    x = jax.nn.relu(self.last(self.prepare(x)))
    return jnp.reshape(x, (x.shape[0], -1))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.encode(x))
