"""The run's data, resolved once: the grid it trains on, its source and the split's two parts.

Synopsis::

  from gsgen import split_data
  data = split_data.make("dsprites", "extrapolation", grid_sizes=(3, 2, 4, 4, 4))
  data.spec.sizes, data.data.name       # (3, 2, 4, 4, 4), 'procedural'
  len(data.train), len(data.test)       # the records of the two parts
  train, test = split_data.parts("dsprites", "extrapolation")     # for your own loop
  len(train), len(test)                 # 240000 497280
  image, target = train[0]              # float32 [64, 64, 1] in [0, 1], [5]
  images, targets = train.batch([0, 5, 9])
  loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True, num_workers=2)

Contract: `make` turns names into the run's `specs.DatasetSpec`, `sources.DataSource` and
split masks, once; everything below it takes the `SplitData` or its spec and never resolves a
name again. `parts` gives the two parts as map-style datasets (``__len__``, ``__getitem__``,
PyTorch's ``__getitems__``), numpy in and out, safe in forked DataLoader workers; targets are the normalised factor indices `gsgen.evaluate` scores.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from gsgen import specs as specs_lib
from gsgen import splits as splits_lib
from gsgen.datasets import images as images_lib
from gsgen.datasets import records as records_lib
from gsgen.datasets import sources


@dataclasses.dataclass(frozen=True)
class SplitData:
  """The train and test records of a run's dataset, split and data source.

  Attributes:
    spec: the factor grid trained on (a reduced grid, or a prepared dataset's own grid).
    split: the split trained and scored.
    data: the data source.
    train, test: the records of the two parts (images None when rendered on the device).
    disagreeing_records: how many records of the published benchmark files sit in the part
      the split's rules (`splits.is_test`) do not put them in; 0 for grid sources, whose
      parts are made by those rules.
  """
  spec: specs_lib.DatasetSpec
  split: str
  data: sources.DataSource
  train: records_lib.Records
  test: records_lib.Records
  disagreeing_records: int = 0

  @property
  def renders_on_device(self) -> bool:
    """Whether batches carry only factor indices and the jitted renderer draws them."""
    return self.train.images is None

  @property
  def data_source(self) -> str:
    """``procedural`` or ``official``: what every result names."""
    return self.data.data_source

  @functools.cached_property
  def train_rows(self) -> np.ndarray:
    """int64 ``[spec.num_images]``: each grid point's row in the train records, -1 outside
    (``>= 0`` is the train mask, exactly the records' set for published split files)."""
    rows = np.full(self.spec.num_images, -1, np.int64)
    rows[self.train.flat_indices] = np.arange(len(self.train))
    rows.flags.writeable = False
    return rows

  @functools.cached_property
  def train_mean(self) -> np.ndarray:
    """float64 ``[num_factors]``: the mean normalised target of the train records, the
    reference of the towards-the-mean ratios (`gsgen.evaluate.Accumulator`)."""
    if not len(self.train):
      raise ValueError(f"the {self.split} split of {self.spec.name} has no training points "
                       f"(grid {self.spec.sizes}); the towards-the-mean ratios need them.")
    return self.spec.targets(self.train.factor_indices).astype(np.float64).mean(0)


def make(dataset, split: str, source: str | sources.DataSource = "procedural",
         data_dir=None, grid_sizes=None) -> SplitData:
  """Resolves a dataset, split and data source into the run's `SplitData`.

  Args:
    dataset: dsprites, shapes3d or mpi3d (or its `specs.DatasetSpec`).
    split: one of `specs.SPLITS`.
    source: a source string (`sources.names`) or a `sources.DataSource`. ``procedural``
      renders on the fly; every other source reads a dataset prepared with
      ``python -m gsgen.datasets.prepare`` under ``data_dir`` (``procedural:stored`` the
      prepared procedural one).
    data_dir: where prepared datasets are (default `sources.data_dir`).
    grid_sizes: a reduced grid for smoke runs (procedural only; a prepared dataset carries
      its own grid).

  Raises:
    ValueError: unknown names, or a benchmark split source that does not match ``split``.
    FileNotFoundError: a stored source that is not prepared (the message says how).
  """
  spec = specs_lib.get(dataset)
  splits_lib.check_split(split)
  data = sources.parse(spec, source)
  if data.kind == "benchmark" and data.benchmark_split != split:
    raise ValueError(f"source {data.name!r} holds the published {data.benchmark_split} "
                     f"split; train with split={data.benchmark_split} or choose another "
                     f"source.")
  if not data.stored:
    grid = spec.subgrid(grid_sizes) if grid_sizes else spec
    train, test = _train_test(grid, split)
    return SplitData(grid, split, data,
                     records_lib.Records(grid, grid.factor_indices(train), None, data),
                     records_lib.Records(grid, grid.factor_indices(test), None, data))
  # Imported here: procedural runs need no TFDS.
  from gsgen import datasets  # pylint: disable=g-import-not-at-top
  if data.kind == "benchmark":
    train = datasets.load(spec, data, data_dir=data_dir, part="train")
    test = datasets.load(spec, data, data_dir=data_dir, part="test")
    wrong = (np.count_nonzero(splits_lib.is_test(train.factor_indices, train.spec, split))
             + np.count_nonzero(~splits_lib.is_test(test.factor_indices, test.spec, split)))
    return SplitData(train.spec, split, data, train, test, int(wrong))
  recs = datasets.load(spec, data, data_dir=data_dir)
  train, test = _train_test(recs.spec, split)
  return SplitData(recs.spec, split, data, recs.subset(train), recs.subset(test))


def _train_test(spec, split) -> tuple[np.ndarray, np.ndarray]:
  """Flat indices of the train and test parts (one pass over the grid for both)."""
  train, test = splits_lib.masks(spec, split)
  return np.flatnonzero(train), np.flatnonzero(test)


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

  def __init__(self, data: SplitData, part: str, channels_first: bool):
    self.spec, self.split, self.part = data.spec, data.split, part
    self.source_name = data.data.name
    self._records = data.test if part == "test" else data.train
    self.factor_indices = self._records.factor_indices
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


def parts(dataset, split: str, source: str = "procedural", *, data_dir=None,
          grid_sizes=None, channels_first: bool = False) -> tuple[SplitPart, SplitPart]:
  """The train and test parts of ``split``, for a user's own training loop.

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
  data = make(dataset, split, source, data_dir=data_dir, grid_sizes=grid_sizes)
  return SplitPart(data, "train", channels_first), SplitPart(data, "test", channels_first)
