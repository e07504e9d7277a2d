"""beta-VAE (Higgins et al. 2017): the unsupervised learner of the study.

A Gaussian posterior over ``z`` latents, a Bernoulli decoder and a standard normal prior;
``beta`` weighs the prior's KL against the reconstruction. The study's sweep over ``beta``
is not recovered, so the default is 1, a plain VAE (unverified, docs/learners.md).

Synopsis::

  from gsgen.learners import beta_vae
  model = beta_vae.LEARNER.build("cnn", {}, spec, nnx.Rngs(0), z=10)
  loss, aux = beta_vae.loss(model, batch, rng, beta=4.0)   # aux: reconstruction, kl

Loss: ``recon + beta * KL(q(z|x) || N(0, I))``, the reconstruction summed over pixels and
the KL over latent dimensions, both averaged over the images of the batch; ``kl_warmup > 0``
ramps the KL weight up over the stage's first steps (`vae.kl_weight`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gsgen.learners import learner as learner_lib
from gsgen.learners import pictures
from gsgen.learners import vae
from gsgen.models import latent

OPTIONS = {"z": 10, "beta": 1.0, "kl_warmup": 0}


def loss(model: latent.VAE, batch: dict, rng: jax.Array, *, beta: float,
         kl_warmup: int = 0) -> tuple[jax.Array, dict]:
  """The negative ELBO with a ``beta``-weighted KL, per image."""
  images = batch["image"]
  mean, logvar = model.posterior(images)
  logits = model.decode(vae.reparameterise(rng, mean, logvar))
  recon = jnp.mean(vae.bernoulli_nll(logits, images))
  kl = jnp.mean(vae.gaussian_kl(mean, logvar))
  weight = vae.kl_weight(beta, kl_warmup, batch)
  return recon + weight * kl, {"reconstruction": recon, "kl": kl}


LEARNER = learner_lib.Learner(name="beta_vae", build=vae.build, loss=loss, options=OPTIONS,
                              model_options=("z",), budgets=vae.budgets(cpu_steps=1000),
                              check=vae.check, on_end=pictures.write)
