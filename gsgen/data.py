"""A split's train and test parts for your own training loop, in one call.

Synopsis::

  from gsgen import data
  train, test = data.split_data("dsprites", "extrapolation")     # procedural images
  len(train), len(test)                       # 240000 497280
  image, target = train[0]                    # float32 [64, 64, 1] in [0, 1], [5]
  images, targets = train.batch([0, 5, 9])    # [3, 64, 64, 1], [3, 5]
  loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True, num_workers=2)

Each part is a map-style dataset (``__len__``, ``__getitem__`` and the batched
``__getitems__`` that PyTorch's DataLoader uses), numpy in and numpy out, so it serves any
framework without importing one. Procedural images are rendered on demand by the jitted
renderer; prepared sources are read from disk. Targets are the normalised factor indices
that `gsgen.evaluate` scores. DataLoader workers may be forked after JAX (or an array_record
reader) started in the parent: they render and read through `gsgen.datasets.fork_safe`,
which keeps that state out of them.
"""

from __future__ import annotations

import numpy as np

from gsgen import input_pipeline
from gsgen.datasets import images as images_lib


class SplitPart:
  """The train or test part of a split, by position.

  Attributes:
    spec: the factor grid.
    split: the split.
    part: ``train`` or ``test``.
    factor_indices: ``[n, num_factors]`` int64.
    targets: ``[n, num_factors]`` float32 normalised targets.
    channels_first: whether images come as ``[C, H, W]`` (PyTorch's layout).
  """

  def __init__(self, source: input_pipeline.Source, part: str, channels_first: bool):
    self.spec, self.split, self.part = source.spec, source.split, part
    self.source_name = source.data.name
    records = source.test if part == "test" else source.train
    self.factor_indices = records.factor_indices
    self._records = records
    self.targets = self.spec.targets(self.factor_indices)
    self.channels_first = channels_first

  def __len__(self) -> int:
    return len(self.factor_indices)

  def images(self, positions) -> np.ndarray:
    """uint8 images ``[n, H, W, C]`` of the examples at ``positions``."""
    positions = np.asarray(positions, np.int64)
    if positions.size and (positions.min() < -len(self) or positions.max() >= len(self)):
      raise IndexError(f"position out of range for the {self.part} part ({len(self)} "
                       f"examples).")
    return images_lib.of_records(self._records, positions)

  def batch(self, positions) -> tuple[np.ndarray, np.ndarray]:
    """``(float32 images in [0, 1], targets)`` of the examples at ``positions``."""
    positions = np.asarray(positions, np.int64)
    images = self.images(positions).astype(np.float32) / 255.0
    if self.channels_first:
      images = np.moveaxis(images, -1, -3)
    return images, self.targets[positions]

  def __getitem__(self, position) -> tuple[np.ndarray, np.ndarray]:
    images, targets = self.batch([int(position)])
    return images[0], targets[0]

  def __getitems__(self, positions) -> list[tuple[np.ndarray, np.ndarray]]:
    images, targets = self.batch(positions)
    return list(zip(images, targets))


def split_data(dataset, split: str, source: str = "procedural", *, data_dir=None,
               grid_sizes=None, channels_first: bool = False) -> tuple[SplitPart, SplitPart]:
  """The train and test parts of ``split``.

  Args:
    dataset: dsprites, shapes3d or mpi3d.
    split: random, composition, interpolation or extrapolation.
    source: the data source (``procedural`` renders on demand; see docs/datasets.md).
    data_dir: where prepared datasets are (stored sources).
    grid_sizes: a reduced grid (procedural), for quick experiments.
    channels_first: images as ``[C, H, W]``.

  Returns:
    ``(train, test)`` `SplitPart`s.
  """
  src = input_pipeline.make_source(dataset, split, source, data_dir=data_dir,
                                   grid_sizes=grid_sizes)
  return SplitPart(src, "train", channels_first), SplitPart(src, "test", channels_first)
