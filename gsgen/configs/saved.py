r"""A config written as JSON (a run's ``config.json``), read back as the ConfigDict it was.

Launch (what a study's worker runs in each cell)::

  python -m gsgen.main --config=saved:workdirs/study/CELL/config.json \
    --workdir=workdirs/study/CELL

Contract: ``get_config(path)`` gives the ConfigDict whose ``to_dict()`` was written, with the
types `gsgen.configs.benchmark` gives: sections as ConfigDicts, JSON's lists as tuples, ints,
floats, bools and strings as they are.
"""

from __future__ import annotations

import json

import ml_collections


def from_dict(value: dict) -> ml_collections.ConfigDict:
  """The ConfigDict of a dict as JSON reads it back (lists become tuples)."""
  return ml_collections.ConfigDict({k: _value(v) for k, v in value.items()})


def _value(value):
  if isinstance(value, dict):
    return from_dict(value)
  if isinstance(value, list):
    return tuple(_value(v) for v in value)
  return value


def get_config(path: str | None = None) -> ml_collections.ConfigDict:
  """The config written to ``path`` (a JSON file of ``ConfigDict.to_dict()``).

  Raises:
    ValueError: no path, no such file, or a file that holds no JSON object.
  """
  if not path:
    raise ValueError("the saved config needs the path of its JSON file: "
                     "--config=saved:WORKDIR/config.json.")
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"cannot read the saved config {path}: {e}.") from None
  if not isinstance(value, dict):
    raise ValueError(f"the saved config {path} holds no JSON object.")
  return from_dict(value)
