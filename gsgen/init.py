"""Starting points of a run other than fresh parameters: another run's checkpoint, or a
pretrained weight file mapped onto the model.

Synopsis::

  from gsgen import init
  loaded = init.from_workdir(model, "workdirs/cnn_run", exclude="^head/")
  loaded = init.from_weights(model, "data/weights/BiT-M-R50x1.npz", "bit_resnet50")
  loaded = init.apply(model, config.init_from, config.model)   # what the config asks

Both copy into a freshly built model, so what is not loaded keeps its initialisation (a new
regression head, say); selection is by regular expressions on slash-joined variable paths
(``stages/2/0/conv_a/kernel``). Anything selected must exist on both sides with the same
shape, or the load is refused with the names that do not fit.
"""

from __future__ import annotations

import json
import os
import re
from typing import Callable

import jax
import numpy as np
from flax import nnx

from gsgen import checkpoint as checkpoint_lib
from gsgen import optim
from gsgen.models import densenet
from gsgen.models import resnet

# Model name -> (file names -> variable paths, array conversion of a file tensor).
WEIGHT_MAPS: dict[str, tuple[Callable[[], dict], Callable[[np.ndarray], np.ndarray]]] = {
    "bit_resnet50": (lambda: resnet.bit_param_map(50), np.asarray),
    "bit_resnet101": (lambda: resnet.bit_param_map(101), np.asarray),
    "densenet121": (densenet.torchvision_param_map, densenet.torchvision_to_flax),
}


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
  folder = os.path.join(workdir, "checkpoints")
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


def read_weight_file(path: str) -> dict[str, np.ndarray]:
  """Tensors of a weight file by their names in the file (``.npz``)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"weight file {path} not found; place it there (nothing is "
                            f"downloaded) or fix config.init_from.weights.")
  with np.load(path, allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


def from_weights(model: nnx.Module, path: str, model_name: str,
                 exclude: str = "") -> list[str]:
  """Loads a pretrained weight file into ``model`` through the model's parameter map.

  Args:
    model: a fresh ``model_name`` model.
    path: the weight file.
    model_name: a key of `WEIGHT_MAPS`.
    exclude: regex of variable paths not to load (the map already leaves out the
      pretrained classifier).

  Returns:
    The loaded variable paths.
  """
  if model_name not in WEIGHT_MAPS:
    raise ValueError(f"no pretrained weights load into {model_name!r}; models with a weight "
                     f"map: {', '.join(WEIGHT_MAPS)}.")
  names, convert = WEIGHT_MAPS[model_name]
  tensors = read_weight_file(path)
  mapping = {optim.path_string(p): n for n, p in names().items()}
  absent = sorted(n for n in mapping.values() if n not in tensors)
  if absent:
    raise ValueError(f"{path}: not a {model_name} weight file: {len(absent)} expected tensors "
                     f"missing ({', '.join(absent[:5])}{', ...' if len(absent) > 5 else ''}).")
  arrays = {p: convert(tensors[n]) for p, n in mapping.items()}
  return copy_into(model, arrays, include="^(" + "|".join(map(re.escape, arrays)) + ")$",
                   exclude=exclude, source=path)


def apply(model: nnx.Module, init_config, model_name: str) -> dict:
  """Applies ``config.init_from`` to a fresh model.

  Returns:
    What was loaded, for the results: ``{}`` for a fresh start, else the source and the
    number of variables loaded.
  """
  if init_config.workdir and init_config.weights:
    raise ValueError("config.init_from.workdir and config.init_from.weights are both set; "
                     "choose one.")
  if init_config.workdir:
    loaded = from_workdir(model, init_config.workdir, init_config.include,
                          init_config.exclude)
    return {"workdir": os.path.abspath(init_config.workdir), "variables": len(loaded)}
  if init_config.weights:
    loaded = from_weights(model, init_config.weights, model_name, init_config.exclude)
    return {"weights": os.path.basename(init_config.weights), "variables": len(loaded)}
  return {}


def read_config(workdir: str) -> dict:
  """The config a run in ``workdir`` was started with (``config.json``)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{workdir} holds no run (no config.json).")
  with open(path) as f:
    return json.load(f)
