"""The readout stage: an MLP regressor trained on the frozen representation of the stage before.

The un- and weakly supervised learners are scored through what a small MLP can read from
their representation (docs/learners.md): after the representation stage, a fresh `Readout` model
takes over that stage's trained model as its ``encoder`` (copied, then frozen by
``config.readout.optim.trainable``, which selects only the head) and learns the train
split's normalised targets. Nothing here depends on the representation learner, so a
supervised model is probed the same way (``--config.readout.steps=N``).

Synopsis::

  from gsgen.learners import readout
  stage = readout.stage(representation_stage, config)  # Stage("readout", ..., carry=...)
  model = stage.learner.build(config.model, config.model_kwargs, spec, nnx.Rngs(0))
  model.encoder                                      # the VAE, whose encode() is the mean
  loss, aux = readout.loss(model, batch, rng)        # squared error summed over factors
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gsgen.learners import learner as learner_lib
from gsgen.models import readout as readout_model


def loss(model: readout_model.Readout, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
  """Squared error of the normalised targets, summed over factors, mean over the batch."""
  del rng  # the engine runs the frozen encoder in inference mode (`optim.train_mode`)
  errors = jnp.sum((model(batch["image"]) - batch["targets"]) ** 2, axis=-1)
  return jnp.mean(errors), {}


def predict(model: readout_model.Readout, images: jax.Array) -> jax.Array:
  """Normalised targets ``[batch, num_factors]``."""
  return model(images)


def carry(new: readout_model.Readout, previous: nnx.Module) -> None:
  """Copies the previous stage's whole model (parameters and statistics) into the encoder."""
  nnx.update(new.encoder, nnx.state(previous))


def learner(representation: learner_lib.Learner, options: dict) -> learner_lib.Learner:
  """The readout of ``representation``'s model, trained under ``options`` (its stage's).

  Its model is a `readout_model.Readout` whose encoder is built by ``representation.build``
  with the same model options (so the previous stage's state fits it); its ``on_end`` is
  the representation's, applied to the encoder.
  """
  model_options = representation.build_options(options)

  def build(model: str, model_kwargs, spec, rngs: nnx.Rngs) -> readout_model.Readout:
    encoder = representation.build(model, model_kwargs, spec, rngs, **model_options)
    return readout_model.Readout(encoder, spec.num_factors, rngs=rngs)

  def encoder_on_end(model, source, workdir, config):
    return representation.on_end(model.encoder, source, workdir, config)

  return learner_lib.Learner(name=f"{representation.name}_readout", build=build, loss=loss,
                             predict=predict,
                             on_end=encoder_on_end if representation.on_end else None)


def stage(representation: learner_lib.Stage, config) -> learner_lib.Stage:
  """The ``readout`` stage after the stage ``representation``: ``config.readout.steps``
  steps with ``config.readout.optim``."""
  return learner_lib.Stage("readout",
                           learner(representation.learner, representation.options),
                           config.readout.steps, config.readout.optim, carry=carry)
