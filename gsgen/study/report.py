"""A study's results in one table, its leaderboard, and the paper's claims checked against it.

Synopsis::

  from gsgen.study import report
  table, missing = report.collect("workdirs/study")   # one row per finished cell
  report.write_all("workdirs/study")                   # results.csv, leaderboard.md, claims.md,
                                                       # figures/*.png

Every row names its data source: procedural results are a stand-in for the published
datasets and compare only with procedural results. A partial study is reported as far as it
got, with the cells still missing listed, never as an error.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np

from gsgen import workdir as workdir_lib
from gsgen.study import read_manifest

ID_COLUMNS = ("cell", "dataset", "split", "approach", "group", "model", "learner", "seed",
              "preset", "data_source", "source", "steps")
_SUMMARY_KEYS = ("num_points", "num_undefined", "median", "share_0_1")
_MODULARITY_KEYS = ("num_examples", "rsquared_ood", "rsquared_id_split_factors",
                    "rsquared_id_all_factors")
# A claim holds when at least this share of its comparisons agree.
MOSTLY = 0.75


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
    path = os.path.join(workdir, cell.name, "results.json")
    if not os.path.isfile(path):
      missing.append(cell.name)
      continue
    with open(path) as f:
      rows.append(row(cell, json.load(f)))
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


def leaderboard(rows: list[dict]) -> str:
  """The authors' leaderboard format: extrapolation R² per dataset, best first."""
  lines = ["# Leaderboard", "",
           "Extrapolation split, mean test R² over seeds (± standard deviation), best first."]
  for dataset in dict.fromkeys(r["dataset"] for r in rows):
    for data_source in dict.fromkeys(r["data_source"] for r in rows if r["dataset"] == dataset):
      scores = mean_r2(rows, dataset=dataset, split="extrapolation", data_source=data_source)
      if not scores:
        continue
      sources = sorted({r["source"] for r in rows if r["dataset"] == dataset
                        and r["data_source"] == data_source})
      lines += ["", f"## {dataset} leaderboard ({data_source} data: {', '.join(sources)})", "",
                "| Method | Group | R2 score Extrapolation | Seeds |",
                "|---|---|:-:|:-:|"]
      group = {r["approach"]: r["group"] for r in rows}
      for approach, (m, s, n) in sorted(scores.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"| {approach} | {group[approach]} | {100 * m:.1f}% ± {100 * s:.1f} | {n} |")
  if len(lines) == 3:
    lines += ["", "No extrapolation results yet."]
  return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Claim:
  """One claim of the paper, checked: ``holds`` is None when the results cannot tell."""
  text: str
  holds: bool | None
  evidence: list[str]


def check_claims(rows: list[dict]) -> list[Claim]:
  """The claims of the study, each with the numbers behind its verdict."""
  return [_hardest(rows), _towards_mean(rows), _modular(rows), _shapes3d_colours(rows),
          _transfer_on_real(rows)]


def _verdict(agree: int, total: int) -> bool | None:
  return None if total == 0 else agree >= MOSTLY * total


def _hardest(rows) -> Claim:
  evidence, agree, total = [], 0, 0
  for dataset in dict.fromkeys(r["dataset"] for r in rows):
    per_split = {s: mean_r2(rows, dataset=dataset, split=s)
                 for s in ("random", "composition", "interpolation", "extrapolation")}
    for approach, (extra, _, _) in per_split["extrapolation"].items():
      others = {s: v[approach][0] for s, v in per_split.items()
                if s != "extrapolation" and approach in v}
      if not others:
        continue
      total += 1
      ok = all(extra < v for v in others.values())
      agree += ok
      evidence.append(f"{dataset}/{approach}: extrapolation {extra:.3f} vs "
                      + ", ".join(f"{s} {v:.3f}" for s, v in others.items())
                      + ("" if ok else "  (not the hardest)"))
  return Claim("Extrapolation is the hardest split for every approach.",
               None if total == 0 else agree == total, evidence)


def _towards_mean(rows) -> Claim:
  evidence, shares = [], []
  for r in rows:
    if r["split"] != "extrapolation":
      continue
    for key, value in r.items():
      if key.startswith("towards_mean.") and key.endswith(".share_0_1") and value is not None:
        shares.append(value)
  if shares:
    evidence.append(f"share of OOD predictions closer to the training mean than the truth "
                    f"(ratio in [0, 1]), extrapolation split: median {np.median(shares):.2f} "
                    f"over {len(shares)} factor x cell pairs; above 0.5 in "
                    f"{np.mean(np.asarray(shares) > 0.5):.0%} of them")
  holds = None if not shares else bool(np.mean(np.asarray(shares) > 0.5) >= MOSTLY)
  return Claim("Predictions of out-of-distribution factors fall towards the training mean "
               "(the ratio lies mostly in [0, 1]).", holds, evidence)


def _modular(rows) -> Claim:
  evidence, agree, total = [], 0, 0
  for r in rows:
    if r["split"] != "extrapolation":
      continue
    for key, value in r.items():
      if key.startswith("modularity.") and key.endswith(".rsquared_id_split_factors") \
          and value is not None:
        factor = key.split(".")[1]
        ood = r.get(f"modularity.{factor}.rsquared_ood")
        total += 1
        ok = value >= 0.5 and (ood is None or value > ood)
        agree += ok
        evidence.append(f"{r['cell']}: {factor} out of distribution: other split factors R² "
                        f"{value:.3f}, {factor} R² {ood if ood is None else round(ood, 3)}")
  return Claim("In-distribution factors stay well predicted when one factor is out of "
               "distribution (R² of the other split factors >= 0.5 and above the OOD "
               "factor's).", _verdict(agree, total),
               [f"{agree} of {total} one-factor-OOD subsets agree"] + evidence[:12]
               + (["..."] if len(evidence) > 12 else []))


def _shapes3d_colours(rows) -> Claim:
  evidence, values = [], []
  for r in rows:
    if r["dataset"] != "shapes3d" or r["split"] not in ("composition", "interpolation"):
      continue
    for hue in ("floor_hue", "wall_hue", "object_hue"):
      value = r.get(f"test.rsquared_{hue}")
      if value is not None:
        values.append(value)
        evidence.append(f"{r['cell']}: {hue} R² {value:.3f}")
  holds = None if not values else bool(np.mean(np.asarray(values) >= 0.8) >= MOSTLY)
  return Claim("Shapes3D colour factors compose and interpolate fairly well (R² >= 0.8).",
               holds, evidence[:18] + (["..."] if len(evidence) > 18 else []))


def _transfer_on_real(rows) -> Claim:
  real = [r for r in rows if r["dataset"] == "mpi3d" and r["data_source"] == "official"]
  text = "On MPI3D-real, transfer learning helps most."
  if not real:
    return Claim(text, None, ["no results on the official MPI3D-real data in this study "
                              "(procedural MPI3D is a stand-in for the toy scene, not real "
                              "photographs)"])
  scores = mean_r2(real, split="extrapolation")
  if not scores:
    return Claim(text, None, ["no extrapolation results on MPI3D-real"])
  group = {r["approach"]: r["group"] for r in real}
  best = max(scores, key=lambda a: scores[a][0])
  evidence = [f"{a} ({group[a]}): {m:.3f}" for a, (m, _, _) in
              sorted(scores.items(), key=lambda kv: -kv[1][0])]
  if "transfer" not in group.values():
    return Claim(text, None, ["no transfer approach in this study"] + evidence)
  return Claim(text, group[best] == "transfer", evidence)


def claims_markdown(claims: list[Claim], rows: list[dict], missing: list[str]) -> str:
  """``claims.md``: each claim marked holds / does not hold / undecided, with its numbers."""
  sources = sorted({r["data_source"] for r in rows})
  lines = ["# Claims check", "",
           f"From {len(rows)} finished cells ({', '.join(sources) or 'no'} data)"
           + (f"; {len(missing)} cells missing." if missing else "."), ""]
  for c in claims:
    mark = {True: "holds", False: "does not hold", None: "undecided"}[c.holds]
    lines += [f"## {c.text}", "", f"**{mark}**", ""] + [f"- {e}" for e in c.evidence] + [""]
  return "\n".join(lines)


def write_all(workdir: str, figures: bool = True, print_fn=print) -> dict:
  """Writes ``results.csv``, ``leaderboard.md``, ``claims.md`` and ``figures/``.

  Returns:
    ``{"rows": n, "missing": [cell names], "files": [paths]}``.
  """
  rows, missing = collect(workdir)
  files = [os.path.join(workdir, n) for n in ("results.csv", "leaderboard.md", "claims.md")]
  write_csv(rows, files[0])
  workdir_lib.write_text(files[1], leaderboard(rows))
  workdir_lib.write_text(files[2], claims_markdown(check_claims(rows), rows, missing))
  if figures and rows:
    from gsgen.study import figures as figures_lib  # pylint: disable=g-import-not-at-top
    files += figures_lib.draw_all(rows, workdir)
  if missing:
    print_fn(f"{len(missing)} of {len(rows) + len(missing)} cells have no results yet: "
             + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
  print_fn(f"{len(rows)} cells reported: " + ", ".join(files))
  return {"rows": len(rows), "missing": missing, "files": files}
