"""The latent-variable models of the representation learners: `VAE` and `PCL`.

`VAE` reads a Gaussian posterior off any model of `gsgen.models` built with ``2 * z`` outputs
and decodes with `Decoder`, the CNN mirrored in transposed convolutions (Bernoulli logits);
`PCL` adds a BatchNorm and Hyvärinen and Morioka's logistic regression to an encoder's first
``z`` outputs. ``encode()`` is the posterior mean or PCL's features (docs/learners.md,
"Models").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen import models
  from gsgen.models import latent
  encoder = models.create("cnn", 2 * 10, in_channels=1, rngs=nnx.Rngs(0))
  vae = latent.VAE(encoder, latent.Decoder(10, 1, rngs=nnx.Rngs(1)))
  x = jnp.zeros((8, 64, 64, 1))
  mean, logvar = vae.posterior(x)            # (8, 10) each
  vae.decode(mean).shape                     # (8, 64, 64, 1): Bernoulli logits
  vae.encode(x).shape                        # (8, 10) == (8, vae.encoding_size): the mean
  pcl = latent.PCL(models.create("cnn", 20, in_channels=1, rngs=nnx.Rngs(2)), 10,
                   rngs=nnx.Rngs(3))
  pcl.encode(x).shape                        # (8, 10): BatchNorm of the first 10 outputs
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gsgen.models import fast_conv_transpose
from gsgen.models import torch_init as init

# (out_channels, stride, padding) of the transposed convolutions after the 1x1 start:
# 1 -> 4 -> 8 -> 16 -> 32 -> 64 pixels, mirroring the CNN encoder.
DECONVS = ((64, 1, 0), (64, 2, 1), (32, 2, 1), (32, 2, 1))
FEATURES = 256


# On a CPU the decoder runs a batch this many codes at a time, unrolled in the one program:
# each chunk's activations stay in cache and the two cores run independent chains
# (docs/learners.md, "The VAE decoder on a CPU"). 0: the batch whole.
CPU_CHUNK = 16


class Decoder(nnx.Module):
  """The CNN mirrored: Linear(z -> 256) as a 1x1 map, five 4x4 transposed convolutions
  (1 -> 4 -> 8 -> 16 -> 32 -> 64 pixels), ReLU between layers: image logits."""

  def __init__(self, num_latents: int, out_channels: int, *, rngs: nnx.Rngs):
    """Args:
      num_latents: z, the size of a latent code.
      out_channels: image channels (1 or 3).
      rngs: parameter initialisation (PyTorch's defaults).
    """
    self.linear = init.torch_linear(num_latents, FEATURES, rngs=rngs)
    widths = (FEATURES,) + tuple(c for c, _, _ in DECONVS) + (out_channels,)
    steps = tuple((s, p) for _, s, p in DECONVS) + ((2, 1),)
    self.deconvs = nnx.List([
        init.torch_conv_transpose(a, b, 4, strides=s, padding=p, rngs=rngs)
        for a, b, (s, p) in zip(widths, widths[1:], steps)])
    self.num_latents = num_latents

  def __call__(self, z: jax.Array) -> jax.Array:
    """Args:
      z: latent codes ``[batch, num_latents]``.

    Returns:
      Bernoulli logits ``[batch, 64, 64, out_channels]``.
    """
    batch = z.shape[0]
    if (CPU_CHUNK and jax.default_backend() == "cpu" and batch > CPU_CHUNK
        and batch % CPU_CHUNK == 0):
      return jnp.concatenate([self._decode(c) for c in jnp.split(z, batch // CPU_CHUNK)])
    return self._decode(z)

  def _decode(self, z: jax.Array) -> jax.Array:
    x = self.linear(z).reshape(z.shape[0], 1, 1, FEATURES)
    for deconv in self.deconvs:
      # The layer's own function, as matrix products (docs/learners.md).
      x = fast_conv_transpose.apply(deconv, jax.nn.relu(x))
    return x


class VAE(nnx.Module):
  """A Gaussian posterior from ``encoder`` (its first ``z`` outputs the mean, the next ``z``
  the log-variance) and a Bernoulli decoder."""

  def __init__(self, encoder: nnx.Module, decoder: Decoder):
    """Args:
      encoder: a model of `gsgen.models` built with ``2 * decoder.num_latents`` outputs.
      decoder: maps latent codes to image logits.
    """
    self.encoder = encoder
    self.decoder = decoder
    self.encoding_size = decoder.num_latents

  def posterior(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The mean and log-variance of q(z|x), each ``[batch, z]``.

    Raises:
      ValueError: the encoder does not output ``2 * z`` values.
    """
    out = self.encoder(x)
    z = self.encoding_size
    if out.shape[-1] != 2 * z:
      raise ValueError(f"the VAE's encoder outputs {out.shape[-1]} values; build it with "
                       f"2 * z = {2 * z} outputs (mean and log-variance).")
    return out[:, :z], out[:, z:]

  def encode(self, x: jax.Array) -> jax.Array:
    """The representation: the posterior mean ``[batch, z]``."""
    return self.posterior(x)[0]

  def decode(self, z: jax.Array) -> jax.Array:
    """Image logits ``[batch, 64, 64, C]`` of latent codes ``[batch, z]``."""
    return self.decoder(z)

  def reconstruct(self, x: jax.Array) -> jax.Array:
    """The decoded posterior mean as pixel probabilities in [0, 1], ``x``'s shape."""
    return jax.nn.sigmoid(self.decode(self.encode(x)))


class BatchNorm(nnx.Module):
  """PyTorch's ``BatchNorm1d`` over the last axis: batch statistics in training, the running
  ones after ``eval()``."""

  def __init__(self, features: int, *, momentum: float = 0.1, epsilon: float = 1e-5):
    self.scale = nnx.Param(jnp.ones((features,)))
    self.bias = nnx.Param(jnp.zeros((features,)))
    self.mean = nnx.BatchStat(jnp.zeros((features,)))
    self.var = nnx.BatchStat(jnp.ones((features,)))
    self.momentum, self.epsilon = momentum, epsilon
    self.use_running_average = False

  def __call__(self, x: jax.Array) -> jax.Array:
    """Args:
      x: ``[batch, features]``.

    Returns:
      The normalised ``x``, same shape.
    """
    if self.use_running_average:
      mean, var = self.mean[...], self.var[...]
    else:
      mean, var = jnp.mean(x, axis=0), jnp.var(x, axis=0)
      n, m = x.shape[0], self.momentum
      self.mean[...] = (1 - m) * self.mean[...] + m * jax.lax.stop_gradient(mean)
      self.var[...] = ((1 - m) * self.var[...]
                       + m * jax.lax.stop_gradient(var) * n / max(n - 1, 1))
    return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * self.scale[...] + self.bias[...]


class PCL(nnx.Module):
  """Permutation-contrastive learning (Hyvärinen and Morioka's code): features ``h``, the
  BatchNorm of the encoder's first ``z`` outputs, and the logistic regression `logits` that
  tells true temporal pairs from negatives."""

  def __init__(self, encoder: nnx.Module, num_latents: int, *, rngs: nnx.Rngs):
    """Args:
      encoder: a model of `gsgen.models` with at least ``num_latents`` outputs.
      num_latents: z, the size of the representation.
      rngs: draws ``c``, U(+-1/sqrt(2)) as the reference's ``Conv1d`` bias.
    """
    self.encoder = encoder
    self.norm = BatchNorm(num_latents)
    # The reference's Conv1d(z, z, kernel 2, groups=z): taps [1, -1] and a default bias.
    self.a = nnx.Param(jnp.ones((num_latents,)))
    self.b = nnx.Param(-jnp.ones((num_latents,)))
    self.c = nnx.Param(init.torch_uniform(2)(rngs.params(), (num_latents,)))
    self.q = nnx.Param(jnp.ones(()))
    self.m = nnx.Param(jnp.zeros(()))
    self.encoding_size = num_latents

  def raw(self, x: jax.Array) -> jax.Array:
    """The encoder's first ``z`` outputs, before the BatchNorm: ``[batch, z]``."""
    return self.encoder(x)[:, :self.encoding_size]

  def encode(self, x: jax.Array) -> jax.Array:
    """The representation ``h(x)``: ``[batch, z]`` (normalised by batch statistics in
    training, by the running ones in inference)."""
    return self.norm(self.raw(x))

  def logits(self, h_t: jax.Array, h_prev: jax.Array) -> jax.Array:
    """``r(x_t, x_{t-1}) = -sum_i |a_i h_i(x_t) + b_i h_i(x_{t-1}) + c_i| + q sum_i h_i(x_t)^2
    + m`` of features ``[batch, z]`` of the two frames: ``[batch]``."""
    dist = jnp.sum(jnp.abs(self.a[...] * h_t + self.b[...] * h_prev + self.c[...]), axis=-1)
    return -dist + self.q[...] * jnp.sum(h_t ** 2, axis=-1) + self.m[...]

  def constrain(self) -> None:
    """Clamps ``q`` at >= 0, as the reference does after every update."""
    self.q[...] = jnp.maximum(self.q[...], 0.0)
