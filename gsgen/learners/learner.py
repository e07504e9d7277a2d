"""What a training objective gives the engine: a `Learner`, and the `Stage`s of a run.

Synopsis::

  from gsgen.learners import learner as learner_lib
  l1 = learner_lib.Learner(
      name="l1",
      build=regression.build,                        # (config, spec, rngs) -> nnx.Module
      loss=lambda model, batch, rng: (jnp.abs(model(batch["image"]) - batch["targets"]).mean(), {}),
      predict=regression.predict)                    # (model, images) -> normalised targets

`gsgen.train` runs every stage of a learner with the same jitted, donated, data-parallel
step; a learner never sees devices, checkpoints or files. A batch reaches ``loss`` as a dict:
``image`` float32 in [0, 1] (``[B, H, W, C]`` for single points, ``[B, 2, H, W, C]`` for
pairs), ``factor_indices`` (``[B, F]`` or ``[B, 2, F]``) and ``targets`` (normalised factor
indices of the same leading shape). ``rng`` is the run's key folded with the step number, so
a resumed run draws exactly the random numbers of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import ml_collections
from flax import nnx

from gsgen import specs as specs_lib

# (model, batch, rng) -> (scalar loss, {name: scalar} logged beside it)
LossFn = Callable[[nnx.Module, dict, jax.Array], tuple[jax.Array, dict]]
# (config, spec, rngs) -> the module a stage trains
BuildFn = Callable[[ml_collections.ConfigDict, specs_lib.DatasetSpec, nnx.Rngs], nnx.Module]
# (model, float images [B, H, W, C]) -> normalised targets [B, num_factors]
PredictFn = Callable[[nnx.Module, jax.Array], jax.Array]

# What the input pipeline draws per example: one grid point, or a pair inside the train
# split (see `gsgen.input_pipeline`).
SAMPLERS = ("single",)


@dataclasses.dataclass(frozen=True)
class Learner:
  """A training objective.

  Attributes:
    name: the key in `gsgen.learners.LEARNERS` (and ``config.learner``).
    build: builds the model from the config (``config.model``, ``config.model_kwargs``).
    loss: the objective of one batch; gradients flow through it.
    predict: normalised targets from images, in inference mode; None when the learner's
      model does not regress factors (a representation learner is read out by a later
      stage).
    sampler: one of `SAMPLERS`.
    stages: ``config -> tuple of Stage``; None means one stage, ``train``, of this learner
      for ``config.train.steps`` with ``config.optim``.
    options: the learner's hyperparameters and their defaults; the config holds them as
      ``config.learner_kwargs`` (so they are overridable and recorded with the results).
  """
  name: str
  build: BuildFn
  loss: LossFn
  predict: PredictFn | None = None
  sampler: str = "single"
  stages: Callable[[ml_collections.ConfigDict], tuple["Stage", ...]] | None = None
  options: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.sampler not in SAMPLERS:
      raise ValueError(f"learner {self.name!r}: unknown sampler {self.sampler!r}; choose one "
                       f"of {', '.join(SAMPLERS)}.")


@dataclasses.dataclass(frozen=True)
class Stage:
  """One phase of a run: a learner trained for some steps with its own optimizer.

  Attributes:
    name: ``train`` for one-stage learners; ``representation``, ``readout``, ...
    learner: what this stage trains.
    steps: how many steps it takes.
    optim: the optimizer config (see `gsgen.optim.build`), including ``trainable``.
    carry: for stages after the first, a function ``(new_model, previous_model) -> None``
      that copies what the previous stage learnt into this stage's fresh model (a readout
      copies the encoder); None for the first stage.
  """
  name: str
  learner: Learner
  steps: int
  optim: ml_collections.ConfigDict
  carry: Callable[[nnx.Module, nnx.Module], Any] | None = None


def stages(learner: Learner, config: ml_collections.ConfigDict) -> tuple[Stage, ...]:
  """The stages of a run of ``learner`` under ``config``."""
  if learner.stages is None:
    return (Stage("train", learner, config.train.steps, config.optim),)
  return tuple(learner.stages(config))
