"""Config files of gsgen, importable after installation (``get_config(arg) -> ConfigDict``).

Synopsis::

  from gsgen.configs import benchmark
  config = benchmark.get_config("dataset=mpi3d,split=extrapolation,model=cnn,preset=cpu")
  config.optim.learning_rate = 3e-4
  path = configs.path("benchmark")          # what --config=benchmark:... resolves to

A config is named on the command line by its short name (``--config=benchmark:dataset=mpi3d``)
or by the path of any config file, such as a user's own copy.
"""

from __future__ import annotations

import os

NAMES = ("benchmark",)


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
