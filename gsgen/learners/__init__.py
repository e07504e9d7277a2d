"""Training objectives by name (an explicit table from learner name to `Learner`) and the
stages of a run.

Synopsis::

  from gsgen import learners
  learner = learners.get("regression")
  stages = learners.stages(learner, config)  # its own stages, then a readout where needed
  model = learner.build(config.model, config.model_kwargs, spec, nnx.Rngs(0),
                        **learner.build_options(stages[0].options))

A new objective is one module here and one entry in `LEARNERS`; `gsgen.train` runs it
unchanged (see `gsgen.learners.learner` for what a learner provides). The losses,
samplers and readout of the representation learners are explained in docs/learners.md.
"""

from __future__ import annotations

import ml_collections

from gsgen.learners import ada_gvae
from gsgen.learners import beta_vae
from gsgen.learners import learner as learner_lib
from gsgen.learners import pcl
from gsgen.learners import readout
from gsgen.learners import regression
from gsgen.learners import slow_vae

Learner = learner_lib.Learner
Stage = learner_lib.Stage

LEARNERS: dict[str, learner_lib.Learner] = {
    "regression": regression.LEARNER,
    # Representation learners, read out by an MLP on their frozen encoder (docs/learners.md).
    "beta_vae": beta_vae.LEARNER,
    "ada_gvae": ada_gvae.LEARNER,
    "slow_vae": slow_vae.LEARNER,
    "pcl": pcl.LEARNER,
}


def get(name: str) -> learner_lib.Learner:
  """The learner called ``name``.

  Raises:
    ValueError: unknown name; the message lists the valid ones.
  """
  if name not in LEARNERS:
    raise ValueError(f"unknown learner {name!r}; choose one of {', '.join(LEARNERS)}.")
  return LEARNERS[name]


def stages(learner: learner_lib.Learner,
           config: ml_collections.ConfigDict) -> tuple[learner_lib.Stage, ...]:
  """The stages of a run of ``learner`` under ``config``.

  The learner's own stages, then a ``readout`` stage (``config.readout``) on the last one's
  frozen representation when that stage's learner does not predict factors or when
  ``config.readout.steps > 0``.
  """
  if learner.stages is None:
    name = "train" if learner.predict is not None else "representation"
    own = (learner_lib.Stage(name, learner, config.train.steps, config.optim,
                             options=learner.configured(config)),)
  else:
    own = tuple(learner.stages(config))
  if own[-1].learner.predict is not None and not config.readout.steps:
    return own
  return own + (readout.stage(own[-1], config),)
