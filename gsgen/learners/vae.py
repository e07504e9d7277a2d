"""What the representation learners share: their model, the Gaussian and Bernoulli terms of
their losses, the reparameterised sample, and the range of their options.

Each term has a closed form that the tests check against an independent computation
(numerical integration, Monte-Carlo sampling), so each learner's module is only the
combination of terms and normalisations that docs/learners.md gives for it. The reductions follow
the authors' code: sums over pixels and latent dimensions, means over images or pairs.

Synopsis::

  import jax
  from gsgen.learners import vae
  model = vae.build("cnn", {}, spec, nnx.Rngs(0), z=10)  # latent.VAE
  mean, logvar = model.posterior(images)
  z = vae.reparameterise(jax.random.key(0), mean, logvar)
  kl = vae.gaussian_kl(mean, logvar)                      # [batch]: KL(q(z|x) || N(0, I))
  nll = vae.bernoulli_nll(model.decode(z), images)        # [batch]: summed over pixels
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from gsgen import models
from gsgen.models import latent
from gsgen.models import torch_init

# Options of the representation learners and the range each must lie in (docs/learners.md);
# the pair samplers' own (k, transition_rate) are checked by `gsgen.pairs.check_options`.
RANGES = {
    "z": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
    "beta": ("a number >= 0", lambda v: v >= 0),
    "gamma": ("a number >= 0", lambda v: v >= 0),
    "rate_prior": ("a number > 0", lambda v: v > 0),
    "kl_warmup": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
}


def check(options, spec) -> None:
  """Raises a ValueError naming the first option of ``config.learner_kwargs`` out of range."""
  for name, value in options.items():
    if name not in RANGES:
      continue
    what, ok = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
      raise ValueError(f"config.learner_kwargs.{name} must be {what} ({spec.name} has "
                       f"{spec.num_factors} factors); got {value!r}.")


def budgets(cpu_steps: int) -> dict:
  """A representation learner's steps and its readout's per preset of
  `gsgen.configs.benchmark` (`learner_lib.Learner.budgets`); a pair learner's step is a
  batch of pairs (twice the images).

  ``cpu``: a VAE trains about three times slower per image than the CNN on a CPU (its
  decoder; about 770 against 2,000 images/s at batch 64 on 2 cores), so ``cpu_steps`` is
  64,000 images for the VAEs, 128,000 for PCL (no decoder), then a
  1,000-step readout. ``paper``: these learners' budgets are not recovered (unverified):
  300,000 steps as for the supervised models, and a 100,000-step readout.
  """
  return {"cpu": dict(steps=cpu_steps, readout_steps=1000),
          "paper": dict(steps=300_000, readout_steps=100_000),
          "smoke": dict(steps=4, readout_steps=4)}


def encoder(model: str, model_kwargs, spec, rngs: nnx.Rngs, num_outputs: int) -> nnx.Module:
  """The model called ``model`` with ``model_kwargs`` and ``num_outputs`` outputs."""
  return models.create(model, num_outputs, in_channels=spec.image_shape[-1], rngs=rngs,
                       **model_kwargs)


def build(model: str, model_kwargs, spec, rngs: nnx.Rngs, *, z: int) -> latent.VAE:
  """The VAE: ``model`` with a ``2 * z`` head, and the mirrored decoder, initialised as
  slow_disentanglement's model: Linear and Conv weights Kaiming-normal with zero biases
  (`torch_init.kaiming_normal`), the transposed convolutions at PyTorch's defaults.

  Under PyTorch's defaults everywhere the posterior means of different images differ by
  about 1e-3 against a sampling noise of 1, so the decoder cannot tell images apart and the
  VAEs sat on the prior for hundreds of steps (docs/learners.md, "Initialisation").
  """
  vae = latent.VAE(encoder(model, model_kwargs, spec, rngs, 2 * z),
                   latent.Decoder(z, spec.image_shape[-1], rngs=rngs))
  return torch_init.kaiming_normal(vae, rngs)


def pairs_to_images(images: jax.Array) -> jax.Array:
  """``[B, 2, H, W, C]`` pairs -> ``[2B, H, W, C]`` images, each pair's two side by side."""
  return images.reshape((-1,) + images.shape[2:])


def gaussian_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mean, exp(logvar)) || N(0, I)), summed over the last axis."""
  return 0.5 * jnp.sum(mean ** 2 + jnp.exp(logvar) - logvar - 1.0, axis=-1)


def gaussian_entropy(logvar: jax.Array) -> jax.Array:
  """The entropy of N(., exp(logvar)) per dimension (no sum)."""
  return 0.5 * (logvar + math.log(2.0 * math.pi * math.e))


def bernoulli_nll(logits: jax.Array, images: jax.Array) -> jax.Array:
  """Sigmoid cross-entropy of pixel values in [0, 1] under logits, summed over all but the
  first axis: ``[batch]``."""
  nll = optax.sigmoid_binary_cross_entropy(logits, images)
  return jnp.sum(nll.reshape(nll.shape[0], -1), axis=-1)


def kl_weight(beta: float, warmup: int, batch: dict) -> jax.Array | float:
  """``beta``, or during the first ``warmup`` steps of the stage ``beta * step / warmup``.

  A linear warm-up of the KL weight (Bowman et al. 2016) lets the decoder learn to use the
  latents before the prior pulls every posterior onto it; the study trains at full weight
  (``warmup = 0``). The step is the stage's own count from 1 (``batch["step"]``).
  """
  if not warmup:
    return beta
  if "step" not in batch:
    raise ValueError("kl_warmup needs the training step: the batch has no 'step' entry "
                     "(gsgen.steps puts it there; pass it when calling the loss directly).")
  return beta * jnp.minimum(1.0, batch["step"] / warmup)


def reparameterise(rng: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """A sample of N(mean, exp(logvar)) that gradients flow through: mean + sigma * eps."""
  return mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape, mean.dtype)
