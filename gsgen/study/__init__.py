"""A study: every cell (dataset x split x approach x seed) of a sweep, each its own workdir.

Synopsis::

  from gsgen import study
  s = study.load("cpu")                      # gsgen/study/studies/cpu.py, or a path
  cells = s.cells()
  cells[0].name                              # 'dsprites-random-cnn-cpu-seed0'
  cells[0].config()                          # the cell's ConfigDict (its worker's run)

  python -m gsgen.study run --study=cpu --workdir=workdirs/study --jobs=2
  python -m gsgen.study report --workdir=workdirs/study

A study definition is data (a ``STUDY`` dict in a Python file, named ones in
`gsgen.study.studies`): which datasets, splits, seeds and approaches, with which preset and
config overrides. A cell's workdir name carries everything that identifies it, so a finished
cell is never mistaken for another; the runner writes its config there once
(`gsgen.study.runner.write_config`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re

import ml_collections

from gsgen.configs import benchmark

# Where the named studies live (inside the package, so installed too); a path works anywhere.
STUDIES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "studies")
GROUPS = ("supervised", "unsupervised", "weakly_supervised", "transfer")


@dataclasses.dataclass(frozen=True)
class Cell:
  """One training run of a study.

  Attributes:
    dataset, split, approach, seed: what the cell is.
    preset: the config preset.
    model, learner: the approach's model and learner.
    group: the approach's kind (`GROUPS`), for figures and claims.
    source: the data source.
    overrides: ``(field, value)`` pairs applied after the preset, sorted.
  """
  dataset: str
  split: str
  approach: str
  seed: int
  preset: str
  model: str
  learner: str
  group: str
  source: str = "procedural"
  overrides: tuple = ()

  @property
  def name(self) -> str:
    """The workdir name: dataset, split, approach, preset, overrides, source and seed."""
    parts = [self.dataset, self.split, self.approach, self.preset]
    if self.overrides:
      text = ",".join(f"{k}={_text(v)}" for k, v in self.overrides)
      slug = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)
      if len(slug) > 60:
        slug = slug[:40] + "~" + hashlib.sha1(text.encode()).hexdigest()[:10]
      parts.append(slug)
    if self.source != "procedural":
      parts.append(self.source.replace(":", "_"))
    return "-".join(parts + [f"seed{self.seed}"])

  def config_arg(self) -> str:
    """The ``--config=benchmark:...`` argument of the cell."""
    return (f"dataset={self.dataset},split={self.split},model={self.model},"
            f"learner={self.learner},seed={self.seed},source={self.source},"
            f"preset={self.preset}")

  def config(self) -> ml_collections.ConfigDict:
    """The cell's full config, as the launcher builds it."""
    config = benchmark.get_config(self.config_arg())
    for field, value in self.overrides:
      *path, last = field.split(".")
      node = config
      for p in path:
        node = node[p]
      if last not in node:
        raise ValueError(f"cell {self.name}: unknown config field {field!r}.")
      node[last] = type(node[last])(value) if isinstance(node[last], tuple) else value
    return config


def _text(value) -> str:
  if isinstance(value, (tuple, list)):
    return "(" + ",".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
  return str(value)


@dataclasses.dataclass(frozen=True)
class Study:
  """A study definition (see the module docstring).

  Attributes:
    name: the study's name.
    datasets, splits, seeds: the grid of cells.
    approaches: approach name -> dict with ``model`` (default cnn), ``learner`` (default
      regression), ``group`` (default supervised), optional ``preset``, ``overrides``
      (``{field: value}``), ``datasets`` (to restrict it) and ``dataset_overrides``
      (``{dataset: {field: value}}``, e.g. a budget per dataset).
    preset: the default preset.
    source: the data source of every cell.
    overrides: ``{field: value}`` for every cell (an approach's own win).
    seeds_per_program: the runner's default for training consecutive seeds of a cell as
      replicas of one program (``--seeds_per_program`` overrides it).
  """
  name: str
  datasets: tuple
  splits: tuple
  seeds: tuple
  approaches: dict
  preset: str = "cpu"
  source: str = "procedural"
  overrides: dict = dataclasses.field(default_factory=dict)
  seeds_per_program: int = 1

  def check(self) -> None:
    """Checks every cell's config as the launcher would, before anything runs.

    Raises:
      ValueError: naming the study, the cell and the field (an unknown dataset, split,
        model, learner or preset; an override of an unknown field or of the wrong type).
    """
    from gsgen import configs  # pylint: disable=g-import-not-at-top
    from gsgen import validate  # pylint: disable=g-import-not-at-top
    for cell in self.cells():
      try:
        config = benchmark.get_config(cell.config_arg())
        for field, value in cell.overrides:
          configs.check_override(config, field, _text(value))
        # The batch sizes' multiple of the device count is the cell's own check.
        validate.config(cell.config(), num_devices=1)
      except FileNotFoundError:
        pass  # a missing weight file fails that cell alone, as any failing cell does
      except ValueError as e:
        raise ValueError(f"study {self.name}, cell {cell.name}: {e}") from None

  def cells(self) -> list[Cell]:
    """Every cell, in a fixed order (approach, dataset, split, seed)."""
    out = []
    for approach, spec in self.approaches.items():
      keys = ("model", "learner", "group", "preset", "overrides", "datasets",
              "dataset_overrides")
      unknown = set(spec) - set(keys)
      if unknown:
        raise ValueError(f"study {self.name}: approach {approach!r} has unknown keys "
                         f"{sorted(unknown)}; its keys: {', '.join(keys)}.")
      group = spec.get("group", "supervised")
      if group not in GROUPS:
        raise ValueError(f"study {self.name}: approach {approach!r} has group {group!r}; "
                         f"choose one of {', '.join(GROUPS)}.")
      by_dataset = spec.get("dataset_overrides", {})
      datasets = spec.get("datasets", self.datasets)
      if not isinstance(by_dataset, dict) or set(by_dataset) - set(datasets):
        raise ValueError(f"study {self.name}: approach {approach!r} has dataset_overrides "
                         f"for {sorted(set(by_dataset) - set(datasets)) or by_dataset!r}; "
                         f"it must map some of its datasets ({', '.join(datasets)}) to "
                         f"{{field: value}}.")
      for dataset in datasets:
        overrides = tuple(sorted({**self.overrides, **spec.get("overrides", {}),
                                  **by_dataset.get(dataset, {})}.items()))
        for split in self.splits:
          for seed in self.seeds:
            out.append(Cell(dataset, split, approach, int(seed), spec.get("preset", self.preset),
                            spec.get("model", "cnn"), spec.get("learner", "regression"), group,
                            self.source, overrides))
    return out


def load(name_or_path: str) -> Study:
  """A study by name (``gsgen/study/studies/<name>.py``) or by the path of its file.

  Raises:
    FileNotFoundError: no such study; the message lists the named ones.
  """
  path = name_or_path
  if not path.endswith(".py"):
    path = os.path.join(STUDIES_DIR, f"{name_or_path}.py")
  if not os.path.isfile(path):
    known = sorted(f[:-3] for f in os.listdir(STUDIES_DIR)
                   if f.endswith(".py") and not f.startswith("_"))
    raise FileNotFoundError(f"no study {name_or_path!r} (looked for {path}); named studies: "
                            f"{', '.join(known) or 'none'}, or give the path of a study file.")
  spec = importlib.util.spec_from_file_location(f"gsgen_study_{os.path.basename(path)[:-3]}",
                                                path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ValueError(f"study file {path}, line {e.lineno}: {e.msg}.") from None
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"study file {path} fails when run: {type(e).__name__}: {e}.") from None
  fields = getattr(module, "STUDY", None)
  if not isinstance(fields, dict):
    raise ValueError(f"study file {path} must define STUDY, a dict with keys "
                     f"{', '.join(STUDY_KEYS)} (see gsgen/study/studies/smoke.py).")
  required = [f.name for f in dataclasses.fields(Study)
              if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
  unknown = sorted(set(fields) - set(STUDY_KEYS))
  missing = [k for k in required if k not in fields]
  if unknown or missing:
    raise ValueError(f"study file {path}: STUDY " + "; ".join(
        ([f"has unknown keys {unknown}"] if unknown else []) +
        ([f"lacks {missing}"] if missing else [])) + f"; its keys: {', '.join(STUDY_KEYS)}.")
  fields = dict(fields)
  for key in ("datasets", "splits", "seeds"):
    if isinstance(fields[key], str) or not hasattr(fields[key], "__iter__"):
      raise ValueError(f"study file {path}: STUDY[{key!r}] must be a tuple; got "
                       f"{fields[key]!r}.")
    fields[key] = tuple(fields[key])
  if not isinstance(fields["approaches"], dict):
    raise ValueError(f"study file {path}: STUDY['approaches'] must be a dict of approach name "
                     f"-> {{'model': ..., 'learner': ...}}; got {fields['approaches']!r}.")
  spp = fields.get("seeds_per_program", 1)
  if not isinstance(spp, int) or isinstance(spp, bool) or spp < 1:
    raise ValueError(f"study file {path}: STUDY['seeds_per_program'] must be a positive "
                     f"integer; got {spp!r}.")
  return Study(**fields)


STUDY_KEYS = tuple(f.name for f in dataclasses.fields(Study))


def write_manifest(study: Study, workdir: str) -> None:
  """Records which cells the study in ``workdir`` has (the report reads it back)."""
  os.makedirs(workdir, exist_ok=True)
  cells = [dataclasses.asdict(c) | {"name": c.name} for c in study.cells()]
  from gsgen import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  workdir_lib.write_json(os.path.join(workdir, "study.json"),
                         {"name": study.name, "cells": cells})


def read_manifest(workdir: str) -> list[Cell]:
  """The cells of the study run in ``workdir``.

  Raises:
    FileNotFoundError: no study was run there.
  """
  path = os.path.join(workdir, "study.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{workdir} holds no study (no study.json); run one with "
                            f"python -m gsgen.study run --study=NAME --workdir={workdir}")
  with open(path) as f:
    cells = json.load(f)["cells"]
  return [Cell(**{k: (tuple(tuple(p) for p in v) if k == "overrides" else v)
                  for k, v in c.items() if k != "name"}) for c in cells]
