"""Config files of gsgen, importable after installation (``get_config(arg) -> ConfigDict``).

Synopsis::

  from gsgen.configs import benchmark, saved
  config = benchmark.get_config("dataset=mpi3d,split=extrapolation,model=cnn,preset=cpu")
  config.optim.learning_rate = 3e-4
  path = configs.path("benchmark")          # what --config=benchmark:... resolves to
  config = saved.get_config("workdirs/run/config.json")   # a run's config, read back

A config is named on the command line by its short name (``--config=benchmark:dataset=mpi3d``,
``--config=saved:WORKDIR/config.json``) or by the path of any config file, such as a user's
own copy. `check_override` says in one line what is wrong with an override ``field=value``
(the launcher's ``--config.<field>`` and a study's ``overrides``).
"""

from __future__ import annotations

import difflib
import os

NAMES = ("benchmark", "saved")


def path(name: str) -> str:
  """The file of the packaged config ``name``."""
  if name not in NAMES:
    raise ValueError(f"no packaged config {name!r}; choose one of {', '.join(NAMES)} or give "
                     f"the path of a config file.")
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")


def resolve(arg: str) -> str:
  """``'benchmark:dataset=mpi3d'`` -> ``'/.../gsgen/configs/benchmark.py:dataset=mpi3d'``.

  Paths (anything naming a ``.py`` file or holding a slash) are returned unchanged.
  """
  name, sep, rest = arg.partition(":")
  if name.endswith(".py") or os.sep in name or "/" in name:
    return arg
  return path(name) + sep + rest


def check_override(config, field: str, value: str | None = None) -> None:
  """Checks that ``field`` (dotted) names a value of ``config`` that ``value`` can set.

  Args:
    config: the `ml_collections.ConfigDict` the override applies to.
    field: e.g. ``train.steps``.
    value: the value as text (the command line's form), or None to check the name only.

  Raises:
    ValueError: an unknown name at any level (with the closest name and the fields there),
      a section given a value, or a value the field's type (its default's) cannot hold.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  node, walked = config, []
  for part in field.split("."):
    where = "config" + "".join("." + w for w in walked)
    if not isinstance(node, ml_collections.ConfigDict):
      raise ValueError(f"{where} is a value, not a section; set {where}=VALUE.")
    if part not in node:
      close = difflib.get_close_matches(part, list(node.keys()), n=1, cutoff=0.5)
      hint = f"did you mean {close[0]!r}? " if close else ""
      raise ValueError(f"{where} has no field {part!r}; {hint}its fields: "
                       f"{', '.join(node.keys())}.")
    node = node[part]
    walked.append(part)
  if isinstance(node, ml_collections.ConfigDict):
    raise ValueError(f"config.{field} is a section; set one of its fields: "
                     f"{', '.join(f'{field}.{k}' for k in node.keys())}.")
  if value is not None:
    _check_type(field, node, value)


def _check_type(field: str, current, value: str) -> None:
  """Refuses a value that ``current``'s type (the field's default) cannot hold."""
  if isinstance(current, bool):
    ok, want = value.lower() in ("true", "false", "1", "0"), "true or false"
  elif isinstance(current, int):
    ok, want = _parses(int, value), "an integer"
  elif isinstance(current, float):
    ok, want = _parses(float, value), "a number"
  else:
    return  # strings take anything; tuples and None are parsed by ml_collections
  if not ok:
    raise ValueError(f"config.{field}={value}: expected {want} (the default is "
                     f"{current!r}).")


def _parses(kind, value: str) -> bool:
  try:
    kind(value)
  except ValueError:
    return False
  return True
