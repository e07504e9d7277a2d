"""Latent-variable models of the un- and weakly supervised learners: a VAE (any encoder of
`gsgen.models` with a ``2 * z`` head, and the mirrored transposed-convolution decoder) and
PCL's contrastive regression on an encoder's first ``z`` outputs.

The study reads all four representation learners out the same way, from ``encode()``: the
posterior mean of a VAE and PCL's features. So both modules keep the encoder of the
supervised models (by default the CNN, the authors' encoder) and add only what their loss
needs: a decoder of ``z`` latents back to image logits, or PCL's BatchNorm and coefficients.
Layouts and initialisation are in docs/learners.md.

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


class Decoder(nnx.Module):
  """Linear(z -> 256), 1x1 map, ReLU, ConvT(256->64, 4), ConvT(64->64, 4, s2, p1),
  ConvT(64->32, 4, s2, p1), ConvT(32->32, 4, s2, p1), ConvT(32->C, 4, s2, p1), with ReLU
  between layers and none after the last: image logits."""

  def __init__(self, num_latents: int, out_channels: int, *, rngs: nnx.Rngs):
    """Args:
      num_latents: z, the size of a latent code.
      out_channels: image channels (1 or 3).
      rngs: parameter initialisation (PyTorch's defaults; `gsgen.learners.vae.build`
        re-initialises the Linear layer Kaiming-normal, as the reference does).
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
    x = self.linear(z).reshape(z.shape[0], 1, 1, FEATURES)
    for deconv in self.deconvs:
      # The layer's own function, computed as matrix products (XLA's CPU convolutions
      # differentiate transposed convolutions many times slower).
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
  """PyTorch's ``BatchNorm1d`` over the last axis: in training, batch statistics (the biased
  variance normalises, the unbiased one enters the running variance, momentum 0.1); in
  inference (``eval()``), the running statistics. Scale 1 and offset 0 at the start."""

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
  """Permutation-contrastive learning as the official code of Hyvärinen and Morioka: features
  ``h`` (the encoder's first ``z`` outputs, then a BatchNorm over the ``z`` features) and the
  logistic regression ``r(x_t, x_{t-1}) = -sum_i |a_i h_i(x_t) + b_i h_i(x_{t-1}) + c_i|
  + q sum_i h_i(x_t)^2 + m`` that tells true temporal pairs from negatives."""

  def __init__(self, encoder: nnx.Module, num_latents: int, *, rngs: nnx.Rngs):
    """Args:
      encoder: a model of `gsgen.models` with at least ``num_latents`` outputs (the study
        builds it with ``2 * num_latents``, the VAE encoder, and uses the first half).
      num_latents: z, the size of the representation.
      rngs: draws ``c`` as the reference's grouped ``Conv1d`` bias (PyTorch's default,
        U(+-1/sqrt(2)): fan-in 2, the kernel's two taps).
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
    """``r(x_t, x_{t-1})`` of features ``[batch, z]`` of the two frames: ``[batch]``."""
    dist = jnp.sum(jnp.abs(self.a[...] * h_t + self.b[...] * h_prev + self.c[...]), axis=-1)
    return -dist + self.q[...] * jnp.sum(h_t ** 2, axis=-1) + self.m[...]

  def constrain(self) -> None:
    """Clamps ``q`` at >= 0, as the reference does after every update."""
    self.q[...] = jnp.maximum(self.q[...], 0.0)
