"""Ada-GVAE (Locatello et al. 2020): a VAE that learns from pairs sharing some factors.

As disentanglement_lib's ``GroupVAEArgmax`` (``methods/weak/weak_vae.py``). Each pair shares
the factors that the "locatello" sampler left unchanged (`gsgen.pairs`); the learner does not
know which, so it guesses per pair: the latent dimensions whose two posteriors are closest (a
KL below halfway between the pair's smallest and largest) are taken as shared, and both
posteriors there are replaced by their average. The study's ``beta`` is not recovered; the
default is 1 (unverified, docs/learners.md).

Synopsis::

  from gsgen.learners import ada_gvae
  q1, q2, share = ada_gvae.aggregate(mean, logvar)   # pairs [B, 2, z] -> averaged posteriors
  loss, aux = ada_gvae.loss(model, batch, rng, beta=1.0)

Loss: reconstruction per image (summed over pixels, mean over the 2B images) plus
``beta * (KL(q1~) + KL(q2~)) / 2`` (summed over latent dimensions, mean over the B pairs:
the two images' terms averaged, as the reference does);
``kl_warmup > 0`` ramps ``beta`` up over the stage's first steps (`vae.kl_weight`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gsgen.learners import learner as learner_lib
from gsgen.learners import pictures
from gsgen.learners import vae
from gsgen.models import latent

OPTIONS = {"z": 10, "beta": 1.0, "k": 0, "kl_warmup": 0}


def divergence(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """Per dimension ``s1/s2 + (m2 - m1)^2 / s2 - 1 + log s2 - log s1`` (twice KL(q1 || q2)).

  Args:
    mean, logvar: ``[..., 2, z]`` the posteriors of each pair's two images.

  Returns:
    ``[..., z]``.
  """
  m1, m2 = mean[..., 0, :], mean[..., 1, :]
  l1, l2 = logvar[..., 0, :], logvar[..., 1, :]
  return jnp.exp(l1 - l2) + (m2 - m1) ** 2 * jnp.exp(-l2) - 1.0 + l2 - l1


def shared(d: jax.Array) -> jax.Array:
  """The dimensions taken as shared: ``d`` in the lower of two equal-width bins over
  ``[min d, max d]`` per pair.

  The bins are TensorFlow's ``histogram_fixed_width_bins`` as disentanglement_lib calls it
  (``discretize_in_bins``): bin ``floor(2 (d - min) / (max - min))``, clipped to 0..1, so a
  value exactly at the midpoint falls in the upper bin and is not shared. Where all of a
  pair's ``d`` are equal the bin is undefined (0 / 0) and every dimension is taken as shared.

  Args:
    d: ``[..., z]`` the `divergence` per dimension.

  Returns:
    bool ``[..., z]``.
  """
  d = jax.lax.stop_gradient(d)
  lo, hi = jnp.min(d, -1, keepdims=True), jnp.max(d, -1, keepdims=True)
  return ~(jnp.floor(2.0 * (d - lo) / (hi - lo)) >= 1.0)


def aggregate(mean: jax.Array, logvar: jax.Array) -> tuple[tuple, tuple, jax.Array]:
  """The pair posteriors with the `shared` dimensions averaged: there both posteriors
  become N(mean of means, mean of variances).

  Args:
    mean, logvar: ``[B, 2, z]``.

  Returns:
    ``((mean1, logvar1), (mean2, logvar2), shared)``, each ``[B, z]``; ``shared`` bool.
  """
  share = shared(divergence(mean, logvar))
  avg_mean = jnp.mean(mean, axis=-2)
  avg_logvar = jnp.log(jnp.mean(jnp.exp(logvar), axis=-2))
  out = tuple((jnp.where(share, avg_mean, mean[:, i]), jnp.where(share, avg_logvar,
                                                                 logvar[:, i]))
              for i in (0, 1))
  return out[0], out[1], share


def loss(model: latent.VAE, batch: dict, rng: jax.Array, *, beta: float,
         kl_warmup: int = 0) -> tuple[jax.Array, dict]:
  """Reconstruction of both images from the aggregated posteriors, plus their KL."""
  images = vae.pairs_to_images(batch["image"])
  mean, logvar = model.posterior(images)
  pairs = mean.shape[0] // 2
  (m1, l1), (m2, l2), share = aggregate(mean.reshape(pairs, 2, -1),
                                        logvar.reshape(pairs, 2, -1))
  agg_mean = jnp.stack([m1, m2], axis=1).reshape(mean.shape)
  agg_logvar = jnp.stack([l1, l2], axis=1).reshape(logvar.shape)
  logits = model.decode(vae.reparameterise(rng, agg_mean, agg_logvar))
  recon = jnp.mean(vae.bernoulli_nll(logits, images))
  # disentanglement_lib's GroupVAEBase: the two images' KL terms averaged, like their
  # reconstructions.
  kl = 0.5 * jnp.mean(vae.gaussian_kl(m1, l1) + vae.gaussian_kl(m2, l2))
  weight = vae.kl_weight(beta, kl_warmup, batch)
  return recon + weight * kl, {"reconstruction": recon, "kl": kl,
                             "shared_dims": jnp.mean(jnp.sum(share, -1).astype(jnp.float32))}


LEARNER = learner_lib.Learner(name="ada_gvae", build=vae.build, loss=loss,
                              sampler="locatello", options=OPTIONS, model_options=("z",),
                              budgets=vae.budgets(cpu_steps=500), check=vae.check,
                              on_end=pictures.write)
