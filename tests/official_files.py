"""Tiny files in the published benchmark's split format (`gsgen.datasets.official`), for tests."""

import numpy as np


def write_split(official_dir, dataset: str, split: str, grid, images, parts: dict) -> None:
  """Writes ``<dataset>_<split>_<part>_images.npz`` and ``..._labels.npz`` for each part.

  Args:
    official_dir: an existing folder (a `pathlib.Path`).
    dataset, split: the names in the file names.
    grid: the `gsgen.specs.DatasetSpec` the flat indices refer to.
    images: uint8 ``[grid.num_images, H, W, C]``, one per grid point.
    parts: ``{part: flat indices}``, in the order the files list them; the images are saved
      channel-first, as published, and the labels are the factor indices.
  """
  for part, flat in parts.items():
    np.savez(official_dir / f"{dataset}_{split}_{part}_images.npz",
             images[flat].transpose(0, 3, 1, 2))
    np.savez(official_dir / f"{dataset}_{split}_{part}_labels.npz", grid.factor_indices(flat))
