"""SlowVAE (Klindt et al. 2021): a VAE whose latents move sparsely between the two frames of
a pair, with a Laplace prior on the transition.

The pairs come from the "laplace" sampler (`gsgen.pairs`). Besides the standard normal prior
of each frame, each frame's posterior is held against a Laplace prior centred at the other
frame's posterior mean; its cross-entropy has a closed form (`laplace_cross_entropy`).

Synopsis::

  from gsgen.learners import slow_vae
  ce = slow_vae.laplace_cross_entropy(mean - other_mean, logvar, rate=6.0)   # per dimension
  loss, aux = slow_vae.loss(model, batch, rng, beta=1.0, gamma=10.0, rate_prior=6.0)

Loss, as in the authors' code: ``2 * recon + beta * KL_N + gamma * KL_L``, with ``recon`` and
``KL_N`` (the standard normal prior's KL) per image, averaged over the 2B images, and
``KL_L`` the Laplace cross-entropies of both directions, summed over dimensions and averaged
over the B pairs, minus the posterior entropy averaged over the images. ``kl_warmup > 0``
ramps ``beta`` (not ``gamma``) up over the stage's first steps (`vae.kl_weight`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gsgen.learners import learner as learner_lib
from gsgen.learners import pictures
from gsgen.learners import vae
from gsgen.models import latent

OPTIONS = {"z": 10, "beta": 1.0, "gamma": 10.0, "rate_prior": 6.0, "transition_rate": 1.0,
           "kl_warmup": 0}


def laplace_cross_entropy(offset: jax.Array, logvar: jax.Array, rate: float) -> jax.Array:
  """``E[-log Laplace(x; 0, 1/rate)]`` under ``x ~ N(offset, exp(logvar))``, elementwise.

  ``-log(rate / 2) + rate * E|x|`` with the folded normal's mean
  ``E|x| = sigma sqrt(2/pi) exp(-offset^2 / (2 sigma^2)) + offset erf(offset / (sigma sqrt 2))``.
  """
  sigma = jnp.exp(0.5 * logvar)
  mean_abs = (sigma * math.sqrt(2.0 / math.pi) * jnp.exp(-offset ** 2 / (2.0 * sigma ** 2))
              + offset * jax.lax.erf(offset / (sigma * math.sqrt(2.0))))
  return -math.log(rate / 2.0) + rate * mean_abs


def loss(model: latent.VAE, batch: dict, rng: jax.Array, *, beta: float, gamma: float,
         rate_prior: float, kl_warmup: int = 0) -> tuple[jax.Array, dict]:
  """The SlowVAE objective of a batch of pairs."""
  images = vae.pairs_to_images(batch["image"])
  mean, logvar = model.posterior(images)
  logits = model.decode(vae.reparameterise(rng, mean, logvar))
  recon = jnp.mean(vae.bernoulli_nll(logits, images))
  kl_normal = jnp.mean(vae.gaussian_kl(mean, logvar))
  m = mean.reshape(mean.shape[0] // 2, 2, -1)
  lv = logvar.reshape(m.shape)
  cross = (laplace_cross_entropy(m[:, 0] - m[:, 1], lv[:, 0], rate_prior)
           + laplace_cross_entropy(m[:, 1] - m[:, 0], lv[:, 1], rate_prior))
  entropy = jnp.mean(jnp.sum(vae.gaussian_entropy(logvar), -1))
  kl_laplace = jnp.mean(jnp.sum(cross, -1)) - entropy
  weight = vae.kl_weight(beta, kl_warmup, batch)
  total = 2.0 * recon + weight * kl_normal + gamma * kl_laplace
  return total, {"reconstruction": recon, "kl": kl_normal, "kl_laplace": kl_laplace}


LEARNER = learner_lib.Learner(name="slow_vae", build=vae.build, loss=loss, sampler="laplace",
                              options=OPTIONS, model_options=("z",),
                              budgets=vae.budgets(cpu_steps=500), check=vae.check,
                              on_end=pictures.write)
