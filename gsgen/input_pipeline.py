"""Training and evaluation batches for one dataset, split and data source.

Synopsis::

  from gsgen import input_pipeline, sharding
  source = input_pipeline.make_source("dsprites", "extrapolation", "procedural")
  mesh = sharding.make_mesh()
  batches = input_pipeline.TrainBatches(source, global_batch_size=64, seed=0, mesh=mesh)
  batch = batches.get(step=0)          # {"factor_indices": int32 [64, 5]} as global arrays
  batch = input_pipeline.eval_batch(source, "test", np.arange(256), mesh)

Training batches hold train-split points only, in a seeded order that is a pure function of
the step: epoch e visits the training records in permutation ``RandomState((seed, e))``, and
step s takes positions ``[s * B, (s + 1) * B)`` of that endless sequence. A run resumed at
step s therefore sees exactly the batches an uninterrupted run sees, and the checkpoint only
needs the step.

Two kinds of source: procedural (the batch carries factor indices and the jitted renderer
draws the images on the device that trains: no disk, no decode) and prepared TFDS datasets
(`gsgen.datasets.load`; the batch carries uint8 images read on the host, prefetched by a
thread). Targets are always the normalised factor indices of `specs.DatasetSpec.targets`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses

import numpy as np

from gsgen import sharding
from gsgen import splits as splits_lib
from gsgen import specs as specs_lib


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a run's examples come from.

  Attributes:
    spec: the factor grid.
    split: the split trained and scored.
    name: the data source (``procedural``, ``official``, an MPI3D variant, or
      ``benchmark_<split>``).
    train_records, test_records: record ids of the train and test parts.
    train_factors, test_factors: their factor indices ``[n, num_factors]``.
    train_images, test_images: uint8 images by record id, or None when rendered on the
      device (procedural).
  """
  spec: specs_lib.DatasetSpec
  split: str
  name: str
  train_records: np.ndarray
  test_records: np.ndarray
  train_factors: np.ndarray
  test_factors: np.ndarray
  train_images: object = None
  test_images: object = None

  @property
  def renders_on_device(self) -> bool:
    """Whether batches carry only factor indices and the jitted renderer draws them."""
    return self.train_images is None

  @property
  def data_source(self) -> str:
    """``procedural`` or ``official``: what every result names."""
    return "procedural" if self.name == "procedural" else "official"


def make_source(dataset, split: str, source: str = "procedural", data_dir=None,
                grid_sizes=None, from_disk: bool = False) -> Source:
  """Resolves a dataset, split and data source into train and test records.

  Args:
    dataset: dsprites, shapes3d or mpi3d.
    split: one of `splits.SPLITS`.
    source: ``procedural`` renders on the fly (unless ``from_disk``); any other source
      reads a dataset prepared with ``python -m gsgen.datasets.prepare`` under ``data_dir``.
    data_dir: where prepared datasets are (default ``data/tfds``).
    grid_sizes: a reduced grid for smoke runs (procedural only; a prepared dataset carries
      its own grid).
    from_disk: read procedural images from a prepared TFDS dataset instead of rendering.

  Raises:
    ValueError: unknown names, or a benchmark split source that does not match ``split``.
    FileNotFoundError: a stored source that is not prepared (the message says how).
  """
  spec = specs_lib.get(dataset)
  splits_lib.check_split(split)
  if source == "procedural" and not from_disk:
    grid = spec.subgrid(grid_sizes) if grid_sizes else spec
    train, test = _train_test(grid, split)
    return Source(grid, split, source, train, test, grid.factor_indices(train),
                  grid.factor_indices(test))
  # Imported here: procedural runs need no TFDS.
  from gsgen import datasets  # pylint: disable=g-import-not-at-top
  from gsgen.datasets import builders  # pylint: disable=g-import-not-at-top
  kwargs = {} if data_dir is None else {"data_dir": data_dir}
  config = builders.config_name(spec.name, source)
  if config.startswith(builders.BENCHMARK_PREFIX):
    published = config[len(builders.BENCHMARK_PREFIX):]
    if published != split:
      raise ValueError(f"source {source!r} holds the published {published} split; train "
                       f"with split={published} or choose another source.")
    train = datasets.load(spec.name, source, part="train", **kwargs)
    test = datasets.load(spec.name, source, part="test", **kwargs)
    return Source(train.spec, split, source, np.arange(len(train)), np.arange(len(test)),
                  train.factor_indices, test.factor_indices, train.images, test.images)
  ds = datasets.load(spec.name, source, **kwargs)
  train, test = _train_test(ds.spec, split)
  return Source(ds.spec, split, source, train, test, ds.factor_indices[train],
                ds.factor_indices[test], ds.images, ds.images)


def _train_test(spec, split) -> tuple[np.ndarray, np.ndarray]:
  """Flat indices of the train and test parts (one pass over the grid for both)."""
  train, test = splits_lib.masks(spec, split)
  return np.flatnonzero(train), np.flatnonzero(test)


# The current epoch's permutation (two while a batch straddles epochs): recomputing a
# permutation of ~10^6 records every step would dominate a small model's step.
_EPOCHS: dict[tuple[int, int, int], np.ndarray] = {}


def train_positions(step: int, global_batch_size: int, num_train: int,
                    seed: int) -> np.ndarray:
  """Positions into the training records of the global batch at ``step``.

  Epoch e is ``RandomState([seed, e]).permutation(num_train)``; a batch that straddles two
  epochs takes the end of one and the start of the next.
  """
  start = step * global_batch_size
  out = np.empty(global_batch_size, np.int64)
  filled = 0
  while filled < global_batch_size:
    epoch, offset = divmod(start + filled, num_train)
    key = (seed, epoch, num_train)
    if key not in _EPOCHS:
      if len(_EPOCHS) > 1:
        _EPOCHS.clear()
      _EPOCHS[key] = np.random.RandomState([seed, epoch]).permutation(num_train)
    take = min(global_batch_size - filled, num_train - offset)
    out[filled:filled + take] = _EPOCHS[key][offset:offset + take]
    filled += take
  return out


class TrainBatches:
  """Training batches by step, as global arrays sharded over the mesh's ``data`` axis."""

  def __init__(self, source: Source, global_batch_size: int, seed: int, mesh,
               prefetch: int = 2, sampler: str = "single"):
    """Args:
      source: from `make_source`.
      global_batch_size: examples per step over all devices.
      seed: the data order's seed.
      mesh: the device mesh.
      prefetch: host batches read ahead by a thread (stored sources only).
      sampler: what an example is (`gsgen.learners.learner.SAMPLERS`).
    """
    if sampler != "single":
      raise ValueError(f"unknown sampler {sampler!r}; choose 'single'.")
    sharding.check_batch_size(global_batch_size, mesh)
    if len(source.train_records) == 0:
      raise ValueError(f"the {source.split} split of {source.spec.name} has no training "
                       f"points on grid {source.spec.sizes}.")
    self.source, self.batch_size, self.seed, self.mesh = source, global_batch_size, seed, mesh
    self._rows = sharding.process_rows(global_batch_size)
    self._pool = (None if source.renders_on_device
                  else concurrent.futures.ThreadPoolExecutor(1))
    self._prefetch = prefetch
    self._pending: dict[int, concurrent.futures.Future] = {}

  def host_batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's rows of the batch at ``step`` as numpy arrays."""
    pos = train_positions(step, self.batch_size, len(self.source.train_records),
                          self.seed)[self._rows]
    batch = {"factor_indices": self.source.train_factors[pos].astype(np.int32)}
    if not self.source.renders_on_device:
      batch["image"] = self.source.train_images[self.source.train_records[pos]]
    return batch

  def get(self, step: int) -> dict:
    """The global batch at ``step`` (reads ahead the next ones for stored sources)."""
    if self._pool is None:
      return sharding.global_batch(self.host_batch(step), self.mesh)
    for s in range(step, step + self._prefetch + 1):
      if s not in self._pending:
        self._pending[s] = self._pool.submit(self.host_batch, s)
    for s in [s for s in self._pending if s < step]:
      del self._pending[s]
    return sharding.global_batch(self._pending.pop(step).result(), self.mesh)


def eval_batch(source: Source, part: str, positions: np.ndarray, mesh) -> dict:
  """The global evaluation batch of ``positions`` into a part; this process reads its rows.

  Args:
    source: from `make_source`.
    part: ``test`` or ``train``.
    positions: ``[batch]`` positions into the part's records.
    mesh: the device mesh.

  Returns:
    ``{"factor_indices": int32 [batch, F]}`` plus ``"image"`` (uint8) for stored sources, as
    global arrays sharded over the mesh.
  """
  factors = source.test_factors if part == "test" else source.train_factors
  ids = source.test_records if part == "test" else source.train_records
  images = source.test_images if part == "test" else source.train_images
  pos = np.asarray(positions)[sharding.process_rows(len(positions))]
  batch = {"factor_indices": factors[pos].astype(np.int32)}
  if images is not None:
    batch["image"] = images[ids[pos]]
  return sharding.global_batch(batch, mesh)
