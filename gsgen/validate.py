"""Every mistake a config can hold, caught before anything is created or trained.

Synopsis::

  from gsgen import validate
  validate.config(config, num_devices=jax.device_count())   # ValueError naming the field
  validate.config(config, jax.device_count(), data.spec)     # against the grid trained on

A run that fails after an hour of training, or on its second checkpoint, costs the user the
hour; so every field is checked here, at start, and each message names the field and the fix.
"""

from __future__ import annotations

import os

from gsgen import learners
from gsgen import models
from gsgen import optim
from gsgen import pairs
from gsgen import specs as specs_lib
from gsgen import splits as splits_lib
from gsgen import workdir as workdir_lib
from gsgen.models import preprocess
from gsgen.weights import schemes


def _positive_int(value, field: str, allow_zero: bool = False) -> None:
  low = 0 if allow_zero else 1
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f"config.{field} must be an integer >= {low}; got {value!r}.")


def config(config, num_devices: int,
           spec: specs_lib.DatasetSpec | None = None) -> schemes.Found | None:
  """Checks names, sizes, paths, the learner's options and the optimizer of a config.

  Args:
    config: a config from `gsgen.configs`.
    num_devices: devices the batches are sharded over.
    spec: the grid the run trains on (`gsgen.split_data.SplitData.spec`), which the learner's
      options must fit; default ``config.dataset``'s full grid (a check before the run's data
      is built).

  Returns:
    The weight file ``config.init_from.weights`` names, identified and checked against
    ``config.model`` (`schemes.check`), so that the run does not read it again; else None.

  Raises:
    ValueError: the first problem found, naming the field.
    FileNotFoundError: a file or folder the config names does not exist.
  """
  if spec is None:
    spec = specs_lib.get(config.dataset)
  splits_lib.check_split(config.split)
  if config.model not in models.MODELS:
    raise ValueError(f"unknown model {config.model!r} (config.model); choose one of "
                     f"{', '.join(models.MODELS)}.")
  learner = learners.get(config.learner)
  _positive_int(config.seed, "seed", allow_zero=True)
  _positive_int(config.num_seeds, "num_seeds")
  _positive_int(config.train.steps, "train.steps", allow_zero=True)
  for field in ("train.batch_size", "train.log_every", "train.checkpoint_every",
                "eval.batch_size"):
    section, name = field.split(".")
    _positive_int(config[section][name], field)
  _positive_int(config.eval.max_examples, "eval.max_examples", allow_zero=True)
  for field in ("train.batch_size", "eval.batch_size"):
    section, name = field.split(".")
    if config[section][name] % num_devices:
      raise ValueError(f"config.{field} ({config[section][name]}) must be a multiple of the "
                       f"number of devices ({num_devices}).")
  _learner_options(config, learner, spec)
  _positive_int(config.readout.steps, "readout.steps", allow_zero=True)
  stages = learners.stages(learner, config)
  for stage in stages:
    _positive_int(stage.steps, f"steps of stage {stage.name}", allow_zero=True)
    optim.check(stage.optim)
    pairs.check_options(spec, stage.learner.sampler,
                        stage.learner.sampler_options(stage.options))
  if stages[-1].name == "readout" and not stages[-1].steps:
    raise ValueError(f"learner {learner.name!r} learns a representation that a readout "
                     f"trained for config.readout.steps turns into predictions; set "
                     f"config.readout.steps >= 1.")
  if config.init_from.workdir and config.init_from.weights:
    raise ValueError("config.init_from.workdir and config.init_from.weights are both set; "
                     "choose one.")
  if config.init_from.workdir and not os.path.isdir(
      workdir_lib.checkpoints(config.init_from.workdir)):
    raise FileNotFoundError(f"config.init_from.workdir: {config.init_from.workdir} holds no "
                            f"run (no checkpoints folder).")
  if config.init_from.weights and not os.path.isfile(config.init_from.weights):
    raise FileNotFoundError(f"config.init_from.weights: {config.init_from.weights} not found; "
                            f"place the file there (nothing is downloaded).")
  found = None
  if config.init_from.weights:
    try:
      found = schemes.check(config.init_from.weights, config.model)
    except (ValueError, ImportError) as e:
      raise type(e)(f"config.init_from.weights: {e}") from None
  if "resolution" in config.model_kwargs:
    try:
      preprocess.check_resolution(config.model_kwargs.resolution)
    except ValueError as e:
      raise ValueError(f"config.model_kwargs.{e}") from None
  return found


def _learner_options(config, learner, spec) -> None:
  """``config.learner_kwargs`` holds exactly the learner's options, each in range."""
  given, known = set(config.learner_kwargs.keys()), set(learner.options)
  if given != known:
    raise ValueError(f"config.learner_kwargs of learner {learner.name!r} must hold its options "
                     f"{sorted(known)}; unknown: {sorted(given - known)}, missing: "
                     f"{sorted(known - given)}. Build the config with learner="
                     f"{learner.name} in the config argument.")
  if learner.check is not None:
    learner.check(config.learner_kwargs, spec)


def writable(folder: str) -> None:
  """Creates ``folder`` and proves that files can be written and removed there.

  Raises:
    PermissionError: naming the folder.
  """
  try:
    os.makedirs(folder, exist_ok=True)
    probe = os.path.join(folder, f".write-probe-{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise PermissionError(f"cannot write to {folder} ({e.strerror or e}); choose a --workdir "
                          f"you can write to, or fix its permissions.") from None
