"""A finished (or stopped) run back in Python: its config and its model, to score it on
another split or to extract its representations.

Synopsis::

  from gsgen import runs
  run = runs.load("workdirs/dsprites_extrapolation_cnn_0")
  run.config.model, run.step                        # 'cnn', 3000
  targets = run.predict(images)                     # uint8 [n, 64, 64, C] -> [n, factors]
  z = run.encode(images)                            # the pooled representation [n, D]
  scores = evaluate.evaluate_model(run.predict_fn, "dsprites", "interpolation", images)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from gsgen import learners
from gsgen import specs as specs_lib
from gsgen import workdir as workdir_lib
from gsgen.learners import learner as learner_lib
from gsgen.weights import start


@dataclasses.dataclass(repr=False)
class Run:
  """A run's model in inference mode.

  Attributes:
    config: the run's config.
    model: the model of its last stage, with the newest checkpoint's variables.
    learner: the learner of that stage (its ``predict`` gives normalised targets).
    spec: the factor grid it was trained on.
    step: the global step of the checkpoint.
  """
  config: ml_collections.ConfigDict
  model: nnx.Module
  learner: learner_lib.Learner
  spec: specs_lib.DatasetSpec
  step: int

  def __post_init__(self):
    graphdef, state = nnx.split(self.model)
    self._predict = jax.jit(lambda s, x: self.learner.predict(nnx.merge(graphdef, s), x))
    self._encode = jax.jit(lambda s, x: _encoder(nnx.merge(graphdef, s)).encode(x))
    self._state = state

  def __repr__(self) -> str:
    # The dataclass's repr printed the whole model and config (thousands of characters).
    c = self.config
    return (f"Run({c.dataset}/{c.split}, model={c.model}, learner={c.learner}, seed={c.seed}, "
            f"source={c.data.source}, step={self.step})")

  def predict_fn(self, images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] -> normalised targets (the form `evaluate_model` takes)."""
    return np.asarray(self._predict(self._state, jnp.asarray(images, jnp.float32)))

  def predict(self, images: np.ndarray) -> np.ndarray:
    """uint8 images ``[n, H, W, C]`` -> normalised targets ``[n, num_factors]``."""
    return self.predict_fn(np.asarray(images, np.float32) / 255.0)

  def encode(self, images: np.ndarray) -> np.ndarray:
    """uint8 images ``[n, H, W, C]`` -> the model's representation ``[n, D]``."""
    return np.asarray(self._encode(self._state,
                                   jnp.asarray(images, jnp.float32) / 255.0))


def _encoder(model: nnx.Module) -> nnx.Module:
  """The module whose ``encode`` is the representation (a readout's frozen encoder)."""
  return getattr(model, "encoder", model)


def load(workdir: str, seed: int | None = None) -> Run:
  """The run in ``workdir``, from its ``config.json`` and newest checkpoint.

  A study cell trained as one replica of a several-seed program holds a pointer to that
  program's folder (`gsgen.workdir.replica_of`): its replica is loaded from there.

  Args:
    workdir: the run's folder, or a study cell's.
    seed: which replica of a several-seed run (``config.num_seeds > 1``) to load.

  Raises:
    FileNotFoundError: no run or no checkpoint there.
    ValueError: a several-seed run without a valid ``seed``, or a replica's cell asked
      for another seed than its own.
  """
  pointer = workdir_lib.replica_of(workdir)
  if pointer is not None:
    run_dir, own = pointer
    if seed is not None and seed != own:
      raise ValueError(f"{workdir} holds seed {own} of the run in {run_dir}, not seed {seed}.")
    return load(run_dir, own)
  config = ml_collections.ConfigDict(workdir_lib.read_config(workdir))
  arrays, meta = start.run_variables(workdir)
  seeds = list(range(config.seed, config.seed + config.num_seeds))
  if len(seeds) > 1:
    if seed not in seeds:
      raise ValueError(f"{workdir} trained seeds {seeds[0]}..{seeds[-1]} in one program; "
                       f"choose one with runs.load(workdir, seed=...).")
    arrays = {k: v[seed - config.seed] for k, v in arrays.items()}
    config.seed, config.num_seeds = seed, 1
  learner = learners.get(config.learner)
  stage = learners.stages(learner, config)[-1]
  spec = specs_lib.get(config.dataset)
  if tuple(meta["identity"]["grid"]) != spec.sizes:
    spec = spec.subgrid(tuple(meta["identity"]["grid"]))
  if meta.get("stage") != stage.name:
    raise ValueError(f"{workdir}: the newest checkpoint (step {meta['step']}) is of stage "
                     f"{meta.get('stage')!r}; the run has not reached its last stage "
                     f"({stage.name}). Finish it first.")
  model = stage.learner.build(config.model, config.model_kwargs, spec, nnx.Rngs(0),
                              **stage.learner.build_options(stage.options))
  start.copy_into(model, arrays, source=f"the run in {workdir}")
  model.eval()
  return Run(config, model, stage.learner, spec, int(meta["step"]))
