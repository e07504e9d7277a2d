"""The paper's figures, drawn from a study's results with matplotlib.

Synopsis::

  from gsgen.study import figures, table
  rows, _ = table.collect("workdirs/study")
  figures.draw_all(rows, "workdirs/study")      # -> workdirs/study/figures/*.png
  figures.splits_figure("dsprites", "splits_dsprites.png")

1. the four splits as 2-D factor grids; 2. mean R² per approach and split, one panel per
dataset, error bars over seeds; 3. R² of the out-of-distribution factor against the other
split factors on the one-factor-OOD subsets (modularity); 4. towards-the-mean ratio
histograms; 5. predictions against the truth along an extrapolated factor.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from gsgen import results as results_lib  # pylint: disable=wrong-import-position
from gsgen import specs as specs_lib  # pylint: disable=wrong-import-position
from gsgen import splits as splits_lib  # pylint: disable=wrong-import-position
from gsgen.datasets import images as images_lib  # pylint: disable=wrong-import-position
from gsgen.study import table  # pylint: disable=wrong-import-position

SPLIT_ORDER = ("random", "composition", "interpolation", "extrapolation")
_DPI = 80
# The lower edge of the R² axes of the modularity figure (R² is unbounded below).
_R2_FLOOR = -1.0


def _two_factors(spec) -> tuple[int, int]:
  """The two largest split factors: the axes of a split picture."""
  ranked = sorted(spec.split_factors, key=lambda i: (-spec.factors[i].size, i))
  return tuple(sorted(ranked[:2]))


def splits_figure(dataset: str, path: str) -> str:
  """Figure 1: for each split, the share of test points at each value pair of two factors."""
  spec = specs_lib.get(dataset)
  a, b = _two_factors(spec)
  fig, axes = plt.subplots(1, 4, figsize=(11, 3), dpi=_DPI)
  for ax, split in zip(axes, SPLIT_ORDER):
    _, test = splits_lib.masks(spec, split)
    other = tuple(i for i in range(spec.num_factors) if i not in (a, b))
    share = test.reshape(spec.sizes).mean(axis=other)
    ax.imshow(share.T, origin="lower", cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_title(split)
    ax.set_xlabel(spec.factors[a].name)
  axes[0].set_ylabel(spec.factors[b].name)
  fig.suptitle(f"{dataset}: share of test points (black) over the other factors")
  return _save(fig, path)


def r2_figure(rows, path: str) -> str:
  """Figure 2: mean R² per approach, grouped by split, one panel per dataset."""
  datasets = list(dict.fromkeys(r["dataset"] for r in rows))
  approaches = list(dict.fromkeys(r["approach"] for r in rows))
  fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.4), dpi=_DPI,
                           squeeze=False)
  width = 0.8 / max(len(approaches), 1)
  for ax, dataset in zip(axes[0], datasets):
    for k, approach in enumerate(approaches):
      means, stds = [], []
      for split in SPLIT_ORDER:
        m, s, _ = table.mean_r2(rows, dataset=dataset, split=split).get(
            approach, (np.nan, 0.0, 0))
        means.append(m)
        stds.append(s)
      ax.bar(np.arange(4) + k * width, means, width, yerr=stds, label=approach, capsize=2)
    ax.set_xticks(np.arange(4) + 0.4 - width / 2, SPLIT_ORDER, rotation=20)
    ax.set_ylim(min(-0.2, np.nanmin([r["test.rsquared"] for r in rows
                                     if r["dataset"] == dataset] + [0])), 1)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(f"{dataset} ({_source(rows, dataset)})")
  axes[0][0].set_ylabel("mean test R²")
  axes[0][-1].legend(fontsize=7, loc="best")
  return _save(fig, path)


def modularity_figure(rows, path: str) -> str:
  """Figure 3: on one-factor-OOD subsets, R² of the OOD factor vs the other split factors."""
  datasets = list(dict.fromkeys(r["dataset"] for r in rows))
  fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.4), dpi=_DPI,
                           squeeze=False)
  for ax, dataset in zip(axes[0], datasets):
    clipped = total = 0
    for r in rows:
      if r["dataset"] != dataset or r["split"] != "extrapolation":
        continue
      ood = [v for k, v in r.items() if k.endswith(".rsquared_ood") and v is not None]
      ind = [v for k, v in r.items()
             if k.endswith(".rsquared_id_split_factors") and v is not None]
      if not ood:
        continue
      # R² is unbounded below: points under the axis' -1 are drawn on its edge as
      # triangles, and counted in the title, rather than left out of the picture.
      xy = np.array([ood, ind], float)
      low = np.any(xy < _R2_FLOOR, axis=0)
      xy = np.maximum(xy, _R2_FLOOR)
      color = ax.scatter(xy[0][~low], xy[1][~low], s=18, label=r["approach"]).get_facecolor()
      if low.any():
        ax.scatter(xy[0][low], xy[1][low], s=30, marker="v", color=color)
      clipped, total = clipped + int(low.sum()), total + len(ood)
    ax.plot([-1, 1], [-1, 1], color="k", lw=0.5)
    ax.set_xlim(_R2_FLOOR - 0.05, 1)
    ax.set_ylim(_R2_FLOOR - 0.05, 1)
    ax.set_xlabel("R² of the OOD factor")
    ax.set_title(f"{dataset} extrapolation" + (
        f"\n{clipped} of {total} points below R² {_R2_FLOOR:g}, drawn at it (▼)"
        if clipped else ""), fontsize=9 if clipped else None)
  axes[0][0].set_ylabel("R² of the other split factors")
  _dedupe_legend(axes[0][-1])
  return _save(fig, path)


def towards_mean_figure(workdir: str, rows, path: str) -> str:
  """Figure 4: ratio histograms of the OOD factors (extrapolation), summed per approach."""
  datasets = list(dict.fromkeys(r["dataset"] for r in rows))
  fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.2), dpi=_DPI,
                           squeeze=False)
  for ax, dataset in zip(axes[0], datasets):
    sums = {}
    for r in rows:
      if r["dataset"] == dataset and r["split"] == "extrapolation":
        towards = results_lib.read(os.path.join(workdir, r["cell"]))["test"].get(
            "towards_mean", {})
        for summary in towards.values():
          counts = np.asarray(summary["counts"], float)
          sums[r["approach"]] = sums.get(r["approach"], 0) + counts
    for approach, counts in sums.items():
      if counts.sum() == 0:
        continue
      share = counts[:100].sum() / counts.sum()
      edges = np.arange(201) * 0.01
      ax.step(edges[:-1], counts[:200] / counts.sum(), where="post",
              label=f"{approach} ({share:.0%} in [0, 1])")
    ax.axvline(1.0, color="k", lw=0.5)
    ax.set_xlabel("|prediction - train mean| / |truth - train mean|")
    ax.set_title(f"{dataset} extrapolation, OOD factors")
    ax.legend(fontsize=7)
  return _save(fig, path)


def predictions_figure(workdir: str, rows, dataset: str, path: str) -> str | None:
  """Figure 5: the best extrapolation cell's predictions along its first extrapolated factor.

  Other factors sit at the middle of their training range; the held-out values are shaded.
  Returns None when the run's images cannot be drawn here (a benchmark split-file source).
  """
  cells = [r for r in rows if r["dataset"] == dataset and r["split"] == "extrapolation"]
  if not cells:
    return None
  best = max(cells, key=lambda r: r["test.rsquared"] if r["test.rsquared"] is not None
             else -np.inf)
  if best["source"].startswith("benchmark_"):
    return None
  from gsgen import runs  # pylint: disable=g-import-not-at-top
  run = runs.load(os.path.join(workdir, best["cell"]))  # follows a replica's pointer
  spec = run.spec
  marked = splits_lib.marked_values(spec, "extrapolation")
  j = max((spec.factor_index(n) for n in marked), key=lambda i: spec.factors[i].size)
  base = [min(f.size - 1, (f.size - len(marked.get(f.name, ()))) // 2) for f in spec.factors]
  idx = np.tile(np.asarray(base, np.int64), (spec.factors[j].size, 1))
  idx[:, j] = np.arange(spec.factors[j].size)
  images = images_lib.of_points(spec, best["source"], idx, run.config.data.data_dir)
  predictions = run.predict(images)[:, j]
  truth = spec.targets(idx)[:, j]
  fig, ax = plt.subplots(figsize=(4.5, 3.4), dpi=_DPI)
  held = [spec.targets(np.full(spec.num_factors, v))[j] for v in marked[spec.factors[j].name]]
  ax.axvspan(min(held) - 0.5 / (spec.factors[j].size - 1), 1.02, color="0.9",
             label="held out")
  ax.plot(truth, truth, color="k", lw=0.7, label="truth")
  ax.plot(truth, predictions, "o-", ms=3, label=f"{best['approach']} (seed {best['seed']})")
  ax.set_xlabel(f"true {spec.factors[j].name} (normalised)")
  ax.set_ylabel("prediction")
  ax.set_title(f"{dataset} ({best['data_source']}), extrapolation")
  ax.legend(fontsize=7)
  return _save(fig, path)


def draw_all(rows, workdir: str) -> list[str]:
  """Every figure of a study into ``workdir/figures``; returns the paths written."""
  folder = os.path.join(workdir, "figures")
  os.makedirs(folder, exist_ok=True)
  datasets = list(dict.fromkeys(r["dataset"] for r in rows))
  out = [splits_figure(d, os.path.join(folder, f"1_splits_{d}.png")) for d in datasets]
  out.append(r2_figure(rows, os.path.join(folder, "2_r2_by_split.png")))
  if any(r["split"] == "extrapolation" for r in rows):
    out.append(modularity_figure(rows, os.path.join(folder, "3_modularity.png")))
    out.append(towards_mean_figure(workdir, rows, os.path.join(folder, "4_towards_mean.png")))
    for d in datasets:
      path = predictions_figure(workdir, rows, d, os.path.join(folder, f"5_predictions_{d}.png"))
      if path:
        out.append(path)
  return out


def _source(rows, dataset) -> str:
  return ", ".join(sorted({r["data_source"] for r in rows if r["dataset"] == dataset}))


def _dedupe_legend(ax) -> None:
  handles, labels = ax.get_legend_handles_labels()
  seen = dict(zip(labels, handles))
  if seen:
    ax.legend(seen.values(), seen.keys(), fontsize=7)


def _save(fig, path: str) -> str:
  fig.tight_layout()
  # No software version in the file: the same results give the same bytes (report.html
  # embeds them), whichever matplotlib drew them.
  fig.savefig(path, metadata={"Software": None})
  plt.close(fig)
  return path
