"""Starting points of a run other than fresh parameters: another run's checkpoint, or a
pretrained weight file mapped onto the model.

Synopsis::

  from gsgen.weights import start
  loaded = start.from_workdir(model, "workdirs/cnn_run", exclude="^head/")
  loaded = start.from_weights(model, "data/weights/BiT-M-R50x1.npz", "bit_resnet50")
  loaded = start.apply(model, config.init_from, config.model)   # what the config asks

Both copy into a freshly built model, so what is not loaded keeps its initialisation;
selection is by regular expressions on slash-joined variable paths
(``stages/2/0/conv_a/kernel``). Anything selected must exist on both sides with the same
shape, or the load is refused with the names that do not fit. A weight file (BiT's ``.npz``,
timm's ``.safetensors``, torchvision's ``.pth``; see `gsgen.weights.schemes`) fills the
backbone and the regression head starts at zero, as in BiT's fine-tuning recipe.
"""

from __future__ import annotations

import os
import re

import jax
import numpy as np
from flax import nnx

from gsgen import checkpoint as checkpoint_lib
from gsgen import optim
from gsgen import workdir as workdir_lib
from gsgen.weights import schemes


def flat_variables(model: nnx.Module) -> dict[str, nnx.Variable]:
  """Every variable of ``model`` (parameters and batch statistics) by slash-joined path."""
  return {optim.path_string(path): var
          for path, var in nnx.to_flat_state(nnx.state(model))}


def copy_into(model: nnx.Module, arrays: dict[str, np.ndarray], *, include: str = ".*",
              exclude: str = "", source: str = "") -> list[str]:
  """Copies ``arrays`` (slash-joined path -> array) into the selected variables of ``model``.

  Args:
    model: the fresh model, updated in place.
    arrays: values by variable path.
    include: regex; variables whose path matches are loaded.
    exclude: regex; variables whose path matches are not (empty: none excluded).
    source: what the arrays came from, for error messages.

  Returns:
    The loaded paths, sorted.

  Raises:
    ValueError: a selected variable has no array, or one of another shape.
  """
  inc = re.compile(include)
  exc = re.compile(exclude) if exclude else None
  chosen = {p: v for p, v in flat_variables(model).items()
            if inc.search(p) and not (exc and exc.search(p))}
  missing = sorted(p for p in chosen if p not in arrays)
  wrong = sorted(f"{p} {tuple(np.shape(arrays[p]))} (model: {tuple(v.get_value().shape)})"
                 for p, v in chosen.items()
                 if p in arrays and tuple(np.shape(arrays[p])) != tuple(v.get_value().shape))
  if missing or wrong:
    raise ValueError(
        f"cannot initialise from {source}: " + "; ".join(filter(None, [
            f"{len(missing)} variables missing there ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''})" if missing else "",
            f"{len(wrong)} of another shape ({', '.join(wrong[:5])})" if wrong else ""]))
        + ". Set config.init_from.include/exclude to choose what to load.")
  for p, var in chosen.items():
    var.set_value(jax.numpy.asarray(arrays[p], var.get_value().dtype))
  return sorted(chosen)


def run_variables(workdir: str) -> tuple[dict[str, np.ndarray], dict]:
  """The model variables of a run's newest checkpoint, and the checkpoint's record.

  Raises:
    FileNotFoundError: no checkpoint in ``workdir``.
  """
  folder = workdir_lib.checkpoints(workdir)
  ckpt = checkpoint_lib.Checkpointer(folder, 1, create=False) if os.path.isdir(folder) else None
  step = ckpt.latest_step() if ckpt else None
  if step is None:
    raise FileNotFoundError(f"{workdir} holds no checkpoint of a run (looked in {folder}).")
  state, meta = ckpt.read(step)
  ckpt.close()
  flat = {}

  def visit(node, prefix):
    if isinstance(node, dict):
      for k, v in node.items():
        visit(v, f"{prefix}/{k}" if prefix else str(k))
    else:
      flat[prefix] = np.asarray(node)

  visit(state["model"], "")
  return flat, meta


def from_workdir(model: nnx.Module, workdir: str, include: str = ".*",
                 exclude: str = "") -> list[str]:
  """Loads the newest checkpoint of the run in ``workdir`` into ``model`` (see `copy_into`)."""
  arrays, _ = run_variables(workdir)
  return copy_into(model, arrays, include=include, exclude=exclude,
                   source=f"the run in {workdir}")


def from_weights(model: nnx.Module, path: str, model_name: str, include: str = ".*",
                 exclude: str = "", found: schemes.Found | None = None) -> list[str]:
  """Loads a pretrained weight file into ``model`` and zeroes its regression head.

  Args:
    model: a fresh ``model_name`` model.
    path: the weight file (`gsgen.weights.schemes` recognises its format and network).
    model_name: a model of `gsgen.weights.schemes.MODELS`.
    include: regex of variable paths to load, among those the file fills.
    exclude: regex of variable paths not to load.
    found: the file's `gsgen.weights.schemes.identify` result, if already at hand.

  Returns:
    The loaded variable paths.

  Raises:
    ValueError: the file does not fit ``model_name`` (see `gsgen.weights.schemes.check`).
    FileNotFoundError: no such file.
  """
  arrays = schemes.load(path, model_name, found)
  inc = re.compile(include)
  chosen = {p: a for p, a in arrays.items() if inc.search(p)}
  loaded = copy_into(model, chosen,
                     include="^(" + "|".join(map(re.escape, chosen)) + ")$" if chosen else "^$",
                     exclude=exclude, source=path)
  for p, var in flat_variables(model).items():
    if p.startswith("head/") and p not in loaded:
      var.set_value(jax.numpy.zeros(var.get_value().shape, var.get_value().dtype))
  return loaded


def apply(model: nnx.Module, init_config, model_name: str,
          found: schemes.Found | None = None) -> dict:
  """Applies ``config.init_from`` to a fresh model.

  ``found`` is the weight file's `gsgen.weights.schemes.identify` result when already at hand (what
  `gsgen.validate.config` returns), so the file's header is read once per run.

  Returns:
    What was loaded, for the results: ``{}`` for a fresh start, else the source and the
    number of variables loaded; for a weight file also its name, SHA-256, format and
    architecture.
  """
  if init_config.workdir and init_config.weights:
    raise ValueError("config.init_from.workdir and config.init_from.weights are both set; "
                     "choose one.")
  if init_config.workdir:
    loaded = from_workdir(model, init_config.workdir, init_config.include,
                          init_config.exclude)
    return {"workdir": os.path.abspath(init_config.workdir), "variables": len(loaded)}
  if init_config.weights:
    path = init_config.weights
    found = found or schemes.identify(path)
    loaded = from_weights(model, path, model_name, init_config.include, init_config.exclude,
                          found)
    return {"weights": os.path.basename(path), "sha256": schemes.sha256(path),
            "format": found.format, "architecture": found.architecture,
            "variables": len(loaded), "head": "zeros"}
  return {}
