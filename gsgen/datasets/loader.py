"""Random access to a prepared dataset: images and factor indices by record.

Synopsis::

  from gsgen import datasets
  ds = datasets.load("dsprites", source="procedural", data_dir="data/tfds")
  ds.images[[0, 5, 737279]].shape     # (3, 64, 64, 1) uint8
  ds.factor_indices[5]                # array([0, 0, 0, 0, 5])
  ds.source                           # 'procedural'

Prepare first with ``python -m gsgen.datasets.prepare --dataset NAME --source SOURCE``.
Reading goes through ``tfds.data_source`` (array_record, no TensorFlow) and needs only the
prepared files, not the builder. For grid sources (procedural, official, MPI3D variants)
record i is flat grid index i; the benchmark split sources keep the published files' order
and ``factor_indices`` says which grid point each record is.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from gsgen.datasets import builders
from gsgen import specs as specs_lib


class Images:
  """uint8 images of a prepared dataset, indexed by record: ``images[int | slice | array]``."""

  def __init__(self, records, image_shape):
    self._records = records
    self._shape = tuple(image_shape)

  def __len__(self) -> int:
    return len(self._records)

  @property
  def shape(self) -> tuple[int, ...]:
    return (len(self),) + self._shape

  def __getitem__(self, index) -> np.ndarray:
    if isinstance(index, (int, np.integer)):
      return self[np.array([index])][0]
    if isinstance(index, slice):
      index = np.arange(len(self))[index]
    index = np.asarray(index)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    flat = index.reshape(-1)
    if flat.size and (flat.min() < -len(self) or flat.max() >= len(self)):
      raise IndexError(f"record index out of range [0, {len(self)}).")
    flat = np.where(flat < 0, flat + len(self), flat)
    out = np.empty((flat.size,) + self._shape, np.uint8)
    for k, record in enumerate(self._records.__getitems__(flat.tolist())):
      out[k] = record["image"]
    return out.reshape(index.shape + self._shape)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A prepared dataset (one part of it).

  Attributes:
    spec: the factor grid.
    source: the data source as prepared (``procedural``, ``official``, an MPI3D variant, or
      ``benchmark_<split>``; MPI3D's ``official`` is ``real``).
    part: ``train`` (the whole grid, for grid sources) or ``test`` (benchmark sources).
    images: uint8 images by record.
    factor_indices: int64 ``[num_records, num_factors]``.
  """
  spec: specs_lib.DatasetSpec
  source: str
  part: str
  images: Images
  factor_indices: np.ndarray

  def __len__(self) -> int:
    return len(self.factor_indices)

  @property
  def data_source(self) -> str:
    """``procedural`` or ``official``: what results must name."""
    return "official" if builders.is_official(self.source) else "procedural"


def load(name, source: str = "procedural", data_dir=builders.DEFAULT_DATA_DIR,
         part: str = "train") -> Dataset:
  """Opens a prepared dataset for random access.

  Args:
    name: dsprites, shapes3d or mpi3d.
    source: one of `builders.sources(name)`.
    data_dir: where it was prepared.
    part: ``train`` or, for benchmark sources, ``test``.

  Returns:
    A `Dataset`.

  Raises:
    FileNotFoundError: not prepared; the message gives the command that prepares it.
    ValueError: unknown name, source or part, or prepared files that do not match the grid.
  """
  spec = specs_lib.get(name)
  config = builders.config_name(spec.name, source)
  parts = ("train", "test") if config.startswith(builders.BENCHMARK_PREFIX) else ("train",)
  if part not in parts:
    raise ValueError(f"{spec.name}/{config} has parts {', '.join(parts)}; got {part!r}.")
  folder = pathlib.Path(data_dir) / f"gsgen_{spec.name}" / config
  if not any(folder.glob("*/dataset_info.json")):
    raise FileNotFoundError(
        f"{spec.name} ({config}) is not prepared under {pathlib.Path(data_dir).absolute()}; "
        f"run: python -m gsgen.datasets.prepare --dataset {spec.name} --source {source} "
        f"--data_dir {data_dir}")
  # From the prepared files' own metadata, not the registered builder class: a reduced grid
  # (or an older release) is described by what was written.
  version_dir = max(p.parent for p in folder.glob("*/dataset_info.json"))
  records = tfds.builder_from_directory(os.fspath(version_dir)).as_data_source()[part]
  grid = builders.prepared_grid(spec, records.dataset_info.features)
  if part == "train" and not config.startswith(builders.BENCHMARK_PREFIX):
    indices = _check_grid(grid, records, folder)
  else:
    indices = _record_indices(grid, records, version_dir, part)
  return Dataset(grid, config, part, Images(records, grid.image_shape), indices)


def _check_grid(grid, records, folder) -> np.ndarray:
  if len(records) != grid.num_images:
    raise ValueError(f"{folder}: holds {len(records):,} records, the grid "
                     f"{grid.sizes} has {grid.num_images:,}; prepare it again.")
  probe = sorted({0, len(records) - 1, len(records) // 3, len(records) // 2})
  found = [int(r["index"]) for r in records.__getitems__(probe)]
  if found != probe:
    raise ValueError(f"{folder}: record order is not flat grid order (records {probe} hold "
                     f"indices {found}); prepare it again.")
  return grid.all_factor_indices()


def _record_indices(grid, records, version_dir, part) -> np.ndarray:
  """Factor indices of every record, cached next to the records after the first read."""
  cache = version_dir / f"gsgen-{part}-factor-indices.npy"
  if cache.is_file():
    indices = np.load(cache)
    if len(indices) == len(records):
      return indices
  names = [f"label_{n}" for n in grid.factor_names]
  indices = np.empty((len(records), len(names)), np.int64)
  for start in range(0, len(records), builders.CHUNK_SIZE):
    rows = records.__getitems__(list(range(start, min(start + builders.CHUNK_SIZE,
                                                      len(records)))))
    indices[start:start + len(rows)] = [[r[n] for n in names] for r in rows]
  try:
    np.save(cache, indices)
  except OSError:
    pass  # a read-only data_dir only costs the cache
  return indices
