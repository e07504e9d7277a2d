"""Writes a PNG of factor traversals: one row per factor, its values left to right.

Synopsis::

  python -m gsgen.datasets.preview --dataset shapes3d --out shapes3d.png
  python -m gsgen.datasets.preview --dataset mpi3d --source real --data_dir data/tfds --out a.png

Each row starts from the same base point (every factor at a middle value) and steps one factor
through up to ``--columns`` of its values, evenly spaced and including both ends.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from gsgen import specs as specs_lib
from gsgen.datasets import images as images_lib
from gsgen.datasets import sources


def traversal_indices(spec: specs_lib.DatasetSpec, columns: int = 10,
                      base=None) -> np.ndarray:
  """Factor indices of a traversal grid.

  Args:
    spec: the dataset.
    columns: most values shown per factor.
    base: the base point's factor indices (default: the middle index of each factor).

  Returns:
    int array ``[num_factors, columns, num_factors]``; rows of a factor with fewer values
    than ``columns`` repeat the last value (drawn blank by `traversal_image`).
  """
  base = np.array([n // 2 for n in spec.sizes] if base is None else base, np.int64)
  out = np.tile(base, (spec.num_factors, columns, 1))
  for j, n in enumerate(spec.sizes):
    steps = np.unique(np.round(np.linspace(0, n - 1, min(n, columns))).astype(np.int64))
    out[j, :, j] = np.concatenate([steps, np.full(columns - len(steps), steps[-1])])
  return out


def traversal_image(spec: specs_lib.DatasetSpec, images: np.ndarray, pad: int = 2) -> np.ndarray:
  """Tiles traversal images ``[rows, columns, H, W, C]`` into one uint8 RGB image.

  Columns past a factor's size are left blank (white).
  """
  rows, cols, h, w, c = images.shape
  canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
  for r in range(rows):
    shown = min(spec.sizes[r], cols)
    for k in range(shown):
      tile = images[r, k]
      tile = np.repeat(tile, 3, axis=-1) if c == 1 else tile
      y, x = pad + r * (h + pad), pad + k * (w + pad)
      canvas[y:y + h, x:x + w] = tile
  return canvas


def write_preview(dataset: str, out: str, source: str = "procedural", data_dir=None,
                  columns: int = 10) -> None:
  """Renders (or reads) a traversal grid and saves it with factor names as a PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  spec = specs_lib.get(dataset)
  data = sources.parse(spec, source)
  idx = traversal_indices(spec, columns)
  images = images_lib.of_points(spec, data, idx.reshape(-1, spec.num_factors), data_dir)
  images = images.reshape(idx.shape[:2] + images.shape[1:])
  canvas = traversal_image(spec, images)
  fig, ax = plt.subplots(figsize=(canvas.shape[1] / 60 + 1.6, canvas.shape[0] / 60 + 0.5),
                         dpi=100)
  ax.imshow(canvas, interpolation="nearest")
  h = images.shape[2] + 2
  ax.set_yticks([2 + h * r + h / 2 for r in range(spec.num_factors)])
  ax.set_yticklabels([f"{f.name} ({f.size})" for f in spec.factors])
  ax.set_xticks([])
  shown = ("procedural stand-in" if data.data_source == "procedural"
           else f"official ({data.name})")
  ax.set_title(f"{spec.name}, {shown}: traversals from the middle of the grid", fontsize=9)
  fig.tight_layout()
  fig.savefig(out, bbox_inches="tight")
  plt.close(fig)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", required=True, choices=specs_lib.DATASETS)
  parser.add_argument("--out", required=True, help="PNG file to write")
  parser.add_argument("--source", default="procedural")
  parser.add_argument("--data_dir", default=None, help="prepared data (non-procedural sources)")
  parser.add_argument("--columns", type=int, default=10)
  args = parser.parse_args(argv)
  try:
    write_preview(args.dataset, args.out, args.source, args.data_dir, args.columns)
  except (ValueError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
