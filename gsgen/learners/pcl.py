"""Permutation-contrastive learning (Hyvärinen and Morioka 2017): features that tell true
temporal pairs from pairs with a random frame, as the authors' official code trains them.

PCL has no decoder: a logistic regression on the features of two frames
(``latent.PCL.logits``) is trained to call the true pairs ``(x_t, x_{t-1})`` of the Laplace
transition positive and the pairs ``(x_t, x*)`` negative, ``x*`` a fresh uniform draw from
the train split (the "laplace_negative" sampler of `gsgen.pairs`: each example is
``[x_{t-1}, x_t, x*]``). The features pass through a BatchNorm whose statistics are taken, as
the reference's single forward pass takes them, over the frames of the positive and the
negative pairs together (``x_t`` twice). After every update the coefficient ``q`` of
``sum h(x_t)^2`` is clamped at >= 0 (``latent.PCL.constrain``).

Synopsis::

  from gsgen.learners import pcl
  model = pcl.build("cnn", {}, spec, nnx.Rngs(0), z=10)   # latent.PCL
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


def build(model: str, model_kwargs, spec, rngs: nnx.Rngs, *, z: int) -> latent.PCL:
  """``model`` with a ``2 * z`` head (the VAE encoder), read out on its first ``z``."""
  return latent.PCL(vae.encoder(model, model_kwargs, spec, rngs, 2 * z), z, rngs=rngs)


def loss(model: latent.PCL, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
  """Logistic loss of the true pairs against the pairs with a random frame."""
  del rng
  images = batch["image"]
  if images.shape[1] != 3:
    raise ValueError(f"PCL takes examples of three frames [x_(t-1), x_t, negative]; got "
                     f"{images.shape[1]} (the 'laplace_negative' sampler draws them).")
  raw = model.raw(images.reshape((-1,) + images.shape[2:]))
  raw = raw.reshape(images.shape[0], 3, -1)
  x_prev, x_t, x_neg = raw[:, 0], raw[:, 1], raw[:, 2]
  h = model.norm(jnp.concatenate([x_t, x_prev, x_t, x_neg]))
  h_t, h_prev, h_t_again, h_neg = jnp.split(h, 4)
  logits = jnp.concatenate([model.logits(h_t, h_prev), model.logits(h_t_again, h_neg)])
  labels = jnp.concatenate([jnp.ones(images.shape[0]), jnp.zeros(images.shape[0])])
  value = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))
  accuracy = jnp.mean(((logits > 0) == (labels > 0.5)).astype(jnp.float32))
  return value, {"accuracy": accuracy}


def constrain(model: latent.PCL) -> None:
  """After each update: ``q >= 0``."""
  model.constrain()


LEARNER = learner_lib.Learner(name="pcl", build=build, loss=loss, sampler="laplace_negative",
                              options=OPTIONS, model_options=("z",),
                              budgets=vae.budgets(cpu_steps=1000), check=vae.check,
                              constrain=constrain)
