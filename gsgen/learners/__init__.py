"""Training objectives by name: an explicit table from learner name to `Learner`.

Synopsis::

  from gsgen import learners
  learner = learners.get("regression")
  model = learner.build(config, spec, nnx.Rngs(0))

A new objective is one module here and one entry in `LEARNERS`; `gsgen.train` runs it
unchanged (see `gsgen.learners.learner` for what a learner provides). The losses,
samplers and readout of the representation learners are explained in docs/learners.md.
"""

from __future__ import annotations

from gsgen.learners import ada_gvae
from gsgen.learners import beta_vae
from gsgen.learners import learner as learner_lib
from gsgen.learners import pcl
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
