"""Supervised regression of every factor's normalised target: the study's supervised learner.

Synopsis::

  from gsgen.learners import regression
  model = regression.build("cnn", {}, spec, nnx.Rngs(0))
  loss, aux = regression.loss(model, batch, rng)     # mean squared error
  predictions = regression.predict(model, images)    # [batch, num_factors]

The loss is the squared error averaged over the batch and over all factors, categorical ones
included, as in the published study.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gsgen import models
from gsgen.learners import learner as learner_lib


def build(model: str, model_kwargs, spec, rngs: nnx.Rngs) -> nnx.Module:
  """The model called ``model`` with ``model_kwargs``, one output per factor of ``spec``."""
  return models.create(model, spec.num_factors, in_channels=spec.image_shape[-1], rngs=rngs,
                       **model_kwargs)


def loss(model: nnx.Module, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
  """Mean squared error of the predicted normalised targets; no randomness."""
  del rng
  return jnp.mean((model(batch["image"]) - batch["targets"]) ** 2), {}


def predict(model: nnx.Module, images: jax.Array) -> jax.Array:
  """The model's output: normalised targets ``[batch, num_factors]``."""
  return model(images)


LEARNER = learner_lib.Learner(name="regression", build=build, loss=loss, predict=predict)
