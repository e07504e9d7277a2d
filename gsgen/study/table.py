"""A study's results as one table: its rows, ``results.csv``, mean R² and the leaderboard.

Synopsis::

  from gsgen.study import table
  rows, missing = table.collect("workdirs/study")   # one row per finished cell
  print(table.leaderboard(rows))

Every row names its data source: procedural results are a stand-in for the published
datasets and compare only with procedural results. The report, the figures and the page all
read the study through this module.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from gsgen import results as results_lib
from gsgen.study import read_manifest

ID_COLUMNS = ("cell", "dataset", "split", "approach", "group", "model", "learner", "seed",
              "preset", "data_source", "source", "steps")
_SUMMARY_KEYS = ("num_points", "num_undefined", "median", "share_0_1")
_MODULARITY_KEYS = ("num_examples", "rsquared_ood", "rsquared_id_split_factors",
                    "rsquared_id_all_factors")


def row(cell, results: dict) -> dict:
  """One table row: the cell's identity and every scalar metric of its results."""
  out = {"cell": cell.name, **{k: getattr(cell, k) for k in ID_COLUMNS[1:9]},
         "data_source": results["data_source"], "source": results["source"],
         "steps": results["steps"]}
  test = results["test"]
  for key, value in test.items():
    if isinstance(value, (int, float)) or value is None:
      out[f"test.{key}"] = value
  for factor, summary in test.get("towards_mean", {}).items():
    for key in _SUMMARY_KEYS:
      out[f"towards_mean.{factor}.{key}"] = summary[key]
  for factor, scores in test.get("modularity", {}).items():
    for key in _MODULARITY_KEYS:
      out[f"modularity.{factor}.{key}"] = scores[key]
  train = results.get("train", {})
  out["train.final_loss"] = train.get("final_loss")
  out["train.num_params"] = train.get("num_params")
  return out


def collect(workdir: str) -> tuple[list[dict], list[str]]:
  """The rows of every finished cell of the study in ``workdir``, and the missing cells."""
  rows, missing = [], []
  for cell in read_manifest(workdir):
    results = results_lib.read(os.path.join(workdir, cell.name))
    if results is None:
      missing.append(cell.name)
      continue
    rows.append(row(cell, results))
  return rows, missing


def write_csv(rows: list[dict], path: str) -> None:
  """``results.csv``: the identity columns first, then every metric (blank where absent)."""
  columns = list(ID_COLUMNS) + sorted({k for r in rows for k in r} - set(ID_COLUMNS))
  folder = os.path.dirname(os.path.abspath(path))
  tmp = os.path.join(folder, ".results.csv.tmp")
  with open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    for r in rows:
      writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
  os.replace(tmp, path)


def mean_r2(rows, **match) -> dict[str, tuple[float, float, int]]:
  """Approach -> (mean, std over seeds, seeds) of ``test.rsquared`` on the matching rows."""
  by = {}
  for r in rows:
    if all(r[k] == v for k, v in match.items()) and r.get("test.rsquared") is not None:
      by.setdefault(r["approach"], []).append(r["test.rsquared"])
  return {a: (float(np.mean(v)), float(np.std(v)), len(v)) for a, v in by.items()}


def source_label(data_source: str, sources) -> str:
  """``procedural data``; ``official data: toy`` when the source names say more."""
  sources = sorted(set(sources))
  if sources == [data_source]:
    return f"{data_source} data"
  return f"{data_source} data: {', '.join(sources)}"


def boards(rows: list[dict]) -> list[tuple[str, str, list[tuple]]]:
  """The leaderboard's tables: ``(dataset, source label, [(approach, group, mean, std,
  seeds)] best first)``, one per dataset and data source with extrapolation results."""
  out = []
  group = {r["approach"]: r["group"] for r in rows}
  for dataset in dict.fromkeys(r["dataset"] for r in rows):
    for data_source in dict.fromkeys(r["data_source"] for r in rows if r["dataset"] == dataset):
      scores = mean_r2(rows, dataset=dataset, split="extrapolation", data_source=data_source)
      if not scores:
        continue
      label = source_label(data_source, [r["source"] for r in rows if r["dataset"] == dataset
                                         and r["data_source"] == data_source])
      out.append((dataset, label, [(a, group[a], m, s, n) for a, (m, s, n) in
                                   sorted(scores.items(), key=lambda kv: -kv[1][0])]))
  return out


def leaderboard(rows: list[dict]) -> str:
  """The authors' leaderboard format: extrapolation R² per dataset, best first."""
  lines = ["# Leaderboard", "",
           "Extrapolation split, mean test R² over seeds (± standard deviation), best first."]
  for dataset, label, entries in boards(rows):
    lines += ["", f"## {dataset} leaderboard ({label})", "",
              "| Method | Group | R2 score Extrapolation | Seeds |",
              "|---|---|:-:|:-:|"]
    lines += [f"| {a} | {g} | {100 * m:.1f}% ± {100 * s:.1f} | {n} |"
              for a, g, m, s, n in entries]
  if len(lines) == 3:
    lines += ["", "No extrapolation results yet."]
  return "\n".join(lines) + "\n"
