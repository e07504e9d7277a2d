"""Permutation-contrastive learning (Hyvärinen and Morioka 2017): features that tell true
temporal pairs from shuffled ones.

PCL has no decoder: a logistic regression on the features of the two frames of a pair
(``latent.PCL.logits``) is trained to call the true pairs of the "laplace" sampler
(`gsgen.pairs`) positive and the pairs of each second frame with the batch's first frames
rolled by one negative. The representation is the encoder's first ``z`` outputs.

Synopsis::

  from gsgen.learners import pcl
  model = pcl.build(config, spec, nnx.Rngs(0))     # latent.PCL
  loss, aux = pcl.loss(model, batch, rng)           # aux: accuracy of the 2B decisions

Loss: binary cross-entropy on the logits, averaged over the B positive and B negative pairs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from gsgen.learners import learner as learner_lib
from gsgen.learners import vae
from gsgen.models import latent

OPTIONS = {"z": 10, "transition_rate": 1.0}


def build(config, spec, rngs: nnx.Rngs) -> latent.PCL:
  """``config.model`` with a ``2 * z`` head (the VAE encoder), read out on its first ``z``."""
  z = config.learner_kwargs.z
  return latent.PCL(vae.encoder(config, spec, rngs, 2 * z), z)


def loss(model: latent.PCL, batch: dict, rng: jax.Array, **unused) -> tuple[jax.Array, dict]:
  """Logistic loss of true pairs against pairs with the first frames rolled by one."""
  del rng, unused  # z shapes the model, transition_rate the sampler
  h = model.encode(vae.pairs_to_images(batch["image"]))
  h = h.reshape(h.shape[0] // 2, 2, -1)
  h_prev, h_t = h[:, 0], h[:, 1]
  logits = jnp.concatenate([model.logits(h_t, h_prev),
                            model.logits(h_t, jnp.roll(h_prev, 1, axis=0))])
  labels = jnp.concatenate([jnp.ones(h.shape[0]), jnp.zeros(h.shape[0])])
  value = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))
  accuracy = jnp.mean(((logits > 0) == (labels > 0.5)).astype(jnp.float32))
  return value, {"accuracy": accuracy}


LEARNER = learner_lib.Learner(name="pcl", build=build, loss=loss, sampler="laplace",
                              options=OPTIONS, check=vae.check)
