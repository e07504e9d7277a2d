"""What a training objective gives the engine: a `Learner`, and the `Stage`s of a run.

Synopsis::

  from gsgen.learners import learner as learner_lib
  l1 = learner_lib.Learner(
      name="l1",
      build=regression.build,          # (model, model_kwargs, spec, rngs) -> nnx.Module
      loss=lambda model, batch, rng: (jnp.abs(model(batch["image"]) - batch["targets"]).mean(), {}),
      predict=regression.predict)                    # (model, images) -> normalised targets

`gsgen.train` runs every stage of a learner with the same jitted, donated, data-parallel
step; a learner never sees devices or checkpoints. A learner whose model does not predict
factors (a representation learner), or any learner when ``config.readout.steps > 0``, is
followed by a readout stage on its frozen ``encode()`` (`gsgen.learners.readout`). A batch
reaches ``loss`` as a dict:
``image`` float32 in [0, 1] (``[B, H, W, C]`` for single points, ``[B, 2, H, W, C]`` for
pairs, ``[B, 3, H, W, C]`` for pairs with a negative), ``factor_indices`` (``[B, F]`` or
``[B, n, F]``), ``targets`` (normalised factor
indices of the same leading shape) and ``step`` (the stage's own step count, from 1). ``rng``
is the run's key folded with the step number, so a resumed run draws exactly the random
numbers of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import ml_collections
from flax import nnx

from gsgen import pairs
from gsgen import specs as specs_lib

# (model, batch, rng, **its options) -> (scalar loss, {name: scalar} logged beside it); its
# options are `Learner.loss_options`, as keywords
LossFn = Callable[..., tuple[jax.Array, dict]]
# (config.model, config.model_kwargs, spec, rngs, **`Learner.model_options`) -> the module a
# stage trains
BuildFn = Callable[..., nnx.Module]
# (model, float images [B, H, W, C]) -> normalised targets [B, num_factors]
PredictFn = Callable[[nnx.Module, jax.Array], jax.Array]
# (final model, split_data.SplitData, workdir, config) -> {name: file written in workdir}
OnEndFn = Callable[[nnx.Module, Any, str, ml_collections.ConfigDict], dict]
# (config.learner_kwargs, spec) -> None; raises ValueError naming the bad option
CheckFn = Callable[[ml_collections.ConfigDict, specs_lib.DatasetSpec], None]

# What the input pipeline draws per example (one grid point, or a pair inside the train
# split; see `gsgen.pairs`), and the learner options each sampler reads.
SAMPLERS = pairs.SAMPLERS


@dataclasses.dataclass(frozen=True)
class Learner:
  """A training objective.

  Attributes:
    name: the key in `gsgen.learners.LEARNERS` (and ``config.learner``).
    build: builds the model, ``build(model, model_kwargs, spec, rngs, **options)`` with the
      model's name and options (``config.model``, ``config.model_kwargs``) and the learner's
      `model_options`.
    loss: the objective of one batch, ``loss(model, batch, rng, **options)`` with the
      learner's `loss_options`; gradients flow through it.
    predict: normalised targets from images, in inference mode; None when the learner's
      model does not regress factors (a representation learner is read out by a later
      stage).
    sampler: one of `SAMPLERS`; a pair sampler's options (``k``, ``transition_rate``) are
      read from the learner's options.
    stages: ``config -> tuple of Stage``; None means one stage of this learner for
      ``config.train.steps`` with ``config.optim``: ``train``, or ``representation`` when
      the learner does not predict.
    options: the learner's hyperparameters and their defaults; the config holds them as
      ``config.learner_kwargs`` (so they are overridable and recorded with the results).
      Each goes to one reader: the sampler (`SAMPLERS`), ``build`` (`model_options`) or,
      all others, ``loss``.
    model_options: the names of the options that shape the model (passed to ``build``).
    budgets: ``{preset: {"steps": n, "readout_steps": m}}``, this learner's steps where
      they differ from a preset's of `gsgen.configs.benchmark` (``train.steps``,
      ``readout.steps``); empty: the preset's, with no readout.
    check: raises a ValueError naming an option of ``config.learner_kwargs`` that is out of
      range; run before anything is built.
    on_end: called once at the end of a run, on the primary process, with the final model;
      writes pictures or other files into the workdir and returns their names (recorded in
      the results under ``files``).
    constrain: called on the model inside the training step after every update, to project
      parameters back into their range (PCL clamps its coefficient at >= 0); None for none.
  """
  name: str
  build: BuildFn
  loss: LossFn
  predict: PredictFn | None = None
  sampler: str = "single"
  stages: Callable[[ml_collections.ConfigDict], tuple["Stage", ...]] | None = None
  options: dict = dataclasses.field(default_factory=dict)
  model_options: tuple[str, ...] = ()
  budgets: dict = dataclasses.field(default_factory=dict)
  check: CheckFn | None = None
  on_end: OnEndFn | None = None
  constrain: Callable[[nnx.Module], None] | None = None

  def __post_init__(self):
    if self.sampler not in SAMPLERS:
      raise ValueError(f"learner {self.name!r}: unknown sampler {self.sampler!r}; choose one "
                       f"of {', '.join(SAMPLERS)}.")
    missing = [o for o in SAMPLERS[self.sampler] if o not in self.options]
    if missing:
      raise ValueError(f"learner {self.name!r}: sampler {self.sampler!r} reads option(s) "
                       f"{missing}; add them to the learner's options with a default.")
    missing = [o for o in self.model_options if o not in self.options]
    if missing:
      raise ValueError(f"learner {self.name!r}: model option(s) {missing} are not among its "
                       f"options; add them with a default.")

  def sampler_options(self, options: dict) -> dict:
    """What the input pipeline's sampler reads from the learner's options."""
    return {o: options[o] for o in SAMPLERS[self.sampler]}

  def build_options(self, options: dict) -> dict:
    """What ``build`` reads from the learner's options (`model_options`)."""
    return {o: options[o] for o in self.model_options}

  def loss_options(self, options: dict) -> dict:
    """What ``loss`` reads from the learner's options: those neither the sampler nor
    ``build`` reads."""
    others = set(SAMPLERS[self.sampler]) | set(self.model_options)
    return {o: v for o, v in options.items() if o not in others}

  def configured(self, config: ml_collections.ConfigDict) -> dict:
    """This learner's options as ``config.learner_kwargs`` sets them (defaults for the rest:
    a readout stage's learner has options of its own, not the run's learner's)."""
    kwargs = config.learner_kwargs if config.learner == self.name else {}
    return {k: kwargs.get(k, v) for k, v in self.options.items()}


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
    options: the learner's options for this stage (`Learner.configured`); its build, loss
      and sampler each get their own (`Learner.build_options`, ...).
  """
  name: str
  learner: Learner
  steps: int
  optim: ml_collections.ConfigDict
  carry: Callable[[nnx.Module, nnx.Module], Any] | None = None
  options: dict = dataclasses.field(default_factory=dict)
