"""Random access to a prepared dataset: `records.Records` read from TFDS array_record files.

Contract: reading needs only the prepared files (``tfds.data_source``, no TensorFlow), never
the builders or the renderers. A grid source holds record i = flat grid index i; a benchmark
source keeps the files' order, its ``factor_indices`` naming each record's grid point. A
damaged file raises `PreparedDataError` with the command that prepares it again
(docs/datasets.md, "Prepared data").

Synopsis::

  from gsgen import datasets
  recs = datasets.load("dsprites", source="procedural", data_dir="data/tfds")
  recs.images[[0, 5, 737279]].shape    # (3, 64, 64, 1) uint8
  recs.factor_indices[5]               # array([0, 0, 0, 0, 5])
  recs.data.name, recs.data_source     # ('procedural:stored', 'procedural')
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import zlib

import numpy as np
import tensorflow_datasets as tfds
from array_record.python import array_record_module
from tensorflow_datasets.core.features import tensor_feature
from tensorflow_datasets.proto import tf_example_pb2

from gsgen import specs as specs_lib
from gsgen.datasets import fork_safe
from gsgen.datasets import records as records_lib
from gsgen.datasets import sources

# Records read per call when collecting factor indices.
_READ_CHUNK = 4096


class PreparedDataError(ValueError):
  """Prepared records are damaged or not what the builders write."""


class _Images:
  """The images of a part's records, read without decoding the records' other features.

  One read per shard of the requested records, then each record's ``image`` bytes (a uint8
  tensor, zlib-compressed or raw, as `gsgen.datasets.builders` writes it) as an array: about
  ten times faster than TFDS's decoding of whole records, which parses every label too.
  """

  def __init__(self, info, part: str):
    """Args:
      info: the prepared dataset's ``tfds.core.DatasetInfo``.
      part: the split whose records are read.

    Raises:
      ValueError: the image feature is not a uint8 tensor stored raw or zlib-compressed
        (`_image_layout` tells beforehand).
    """
    layout = _image_layout(info)
    if layout is None:
      raise ValueError("the prepared records' image feature is not a uint8 tensor")
    self.shape, self._compressed = layout
    self._size = int(np.prod(self.shape))
    split = info.splits[part]
    self._files = [os.fspath(f) for f in split.filepaths]
    self._starts = np.cumsum([0] + list(split.shard_lengths))
    self._readers = [None] * len(self._files)

  def read(self, indices) -> np.ndarray:
    """uint8 images ``[k, H, W, C]`` of record ids ``indices``, in their order.

    Raises:
      ValueError: a record holds no image of the prepared shape.
      RuntimeError, OSError: an unreadable file (array_record's own errors).
    """
    indices = np.asarray(indices, np.int64)
    out = np.empty((len(indices),) + self.shape, np.uint8)
    shard = np.searchsorted(self._starts, indices, side="right") - 1
    if len(indices) and (indices.min() < 0 or indices.max() >= self._starts[-1]):
      raise ValueError(f"record ids must lie in [0, {self._starts[-1]}); got "
                       f"{indices.min()} to {indices.max()}")
    for s in np.unique(shard):
      rows = np.flatnonzero(shard == s)
      if self._readers[s] is None:
        self._readers[s] = array_record_module.ArrayRecordReader(
            self._files[s], "readahead_buffer_size:0")
      positions = (indices[rows] - self._starts[s]).tolist()
      for row, record in zip(rows, self._readers[s].read(positions)):
        out[row] = self._image(record, int(indices[row]))
    return out

  def _image(self, record: bytes, index: int) -> np.ndarray:
    feature = tf_example_pb2.Example.FromString(record).features.feature.get("image")
    if feature is None or len(feature.bytes_list.value) != 1:
      raise ValueError(f"record {index} holds no image")
    data = feature.bytes_list.value[0]
    if self._compressed:
      data = zlib.decompress(data)
    if len(data) != self._size:
      raise ValueError(f"record {index} holds {len(data)} image bytes, not the "
                       f"{self._size} of a {self.shape} image")
    return np.frombuffer(data, np.uint8).reshape(self.shape)


def _image_layout(info) -> tuple[tuple[int, ...], bool] | None:
  """``(shape, zlib-compressed)`` of a uint8 tensor ``image`` feature; None for any other
  kind of image feature (read through TFDS's decoding)."""
  feature = info.features["image"] if "image" in info.features else None
  encoding = getattr(feature, "_encoding", None)
  if (not isinstance(feature, tensor_feature.Tensor) or feature.np_dtype != np.uint8
      or encoding not in (tensor_feature.Encoding.NONE, tensor_feature.Encoding.ZLIB)
      or any(d is None for d in feature.shape)):
    return None
  return tuple(int(d) for d in feature.shape), encoding == tensor_feature.Encoding.ZLIB


class _Reader:
  """Prepared TFDS records read by index; any read failure becomes a `PreparedDataError`.

  array_record readers hold native threads that do not survive a fork (a DataLoader worker
  reading through them crashes), so a forked process reads through `fork_safe.call`.
  """

  def __init__(self, records, data: sources.DataSource, folder: pathlib.Path, fix: str,
               part: str):
    self._records, self._data, self._folder, self._fix = records, data, folder, fix
    self._part, self._len = part, len(records)
    self._images = (_Images(records.dataset_info, part)
                    if _image_layout(records.dataset_info) is not None else None)

  def __len__(self) -> int:
    return self._len

  def rows(self, indices) -> list[dict]:
    return self._read(self._records.__getitems__, _read_rows, indices)

  def read_rows(self, indices) -> np.ndarray:
    """Images of sorted unique record ids, for `records.ImageView`."""
    if self._images is None:
      return np.stack([r["image"] for r in self.rows(indices)])
    return self._read(self._images.read, _read_images, indices)

  def _read(self, here, in_helper, indices):
    """``here(indices)``, or in a forked process ``in_helper(folder, part, indices)``."""
    indices = [int(i) for i in indices]
    try:
      if fork_safe.forked():
        return fork_safe.call(in_helper, os.fspath(self._folder), self._part, indices)
      return here(indices)
    except (RuntimeError, OSError, ValueError) as e:
      # array_record reports a damaged file as a bare Riegeli hash mismatch.
      raise PreparedDataError(
          f"{self._data.dataset} ({self._data.name}): the prepared records under "
          f"{self._folder} are unreadable ({e}). Prepare it again: delete {self._folder} and "
          f"run: {self._fix}") from e


_OPENED = {}  # (folder, part) -> records or images, in the fork_safe helper process


def _read_rows(folder: str, part: str, indices: list[int]) -> list[dict]:
  """Rows of prepared records, opened once per process (run by `fork_safe.call`)."""
  if (folder, part) not in _OPENED:
    _OPENED[folder, part] = tfds.builder_from_directory(folder).as_data_source()[part]
  return _OPENED[folder, part].__getitems__(indices)


def _read_images(folder: str, part: str, indices: list[int]) -> np.ndarray:
  """Images of prepared records, opened once per process (run by `fork_safe.call`)."""
  if (folder, part, "images") not in _OPENED:
    _OPENED[folder, part, "images"] = _Images(tfds.builder_from_directory(folder).info, part)
  return _OPENED[folder, part, "images"].read(indices)


def load(name, source: str | sources.DataSource = "procedural",
         data_dir=None, part: str = "train") -> records_lib.Records:
  """Opens a prepared dataset for random access.

  Args:
    name: dsprites, shapes3d or mpi3d (or its full `specs.DatasetSpec`).
    source: a source string or `sources.DataSource`; ``procedural`` and
      ``procedural:stored`` both mean the prepared procedural data.
    data_dir: where it was prepared (default `sources.data_dir`).
    part: ``train`` or, for benchmark sources, ``test``.

  Returns:
    `records.Records` of the part; its ``data`` is the stored source.

  Raises:
    FileNotFoundError: not prepared; the message gives the command that prepares it.
    PreparedDataError: damaged records; the message says how to prepare them again.
    ValueError: unknown name, source or part, or prepared files that do not match the grid.
  """
  spec = specs_lib.get(name)
  data_dir = sources.data_dir(data_dir)
  data = dataclasses.replace(sources.parse(spec, source), stored=True)
  if part not in data.parts:
    raise ValueError(f"{spec.name}/{data.config} has parts {', '.join(data.parts)}; "
                     f"got {part!r}.")
  folder = data.folder(data_dir)
  if not any(folder.glob("*/dataset_info.json")):
    raise FileNotFoundError(
        f"{spec.name} ({data.name}) is not prepared under "
        f"{pathlib.Path(data_dir).absolute()}; run: {data.prepare_command(data_dir)}")
  # From the prepared files' own metadata, not the registered builder class: a reduced grid
  # (or an older release) is described by what was written.
  version_dir = max(p.parent for p in folder.glob("*/dataset_info.json"))
  tfds_records = tfds.builder_from_directory(os.fspath(version_dir)).as_data_source()[part]
  grid = sources.prepared_grid(spec, tfds_records.dataset_info.features)
  fix = data.prepare_command(data_dir, None if grid.sizes == spec.sizes else grid.sizes)
  reader = _Reader(tfds_records, data, version_dir, fix, part)
  if data.kind == "benchmark":
    indices = _record_indices(grid, reader, version_dir, part)
  else:
    indices = _check_grid(grid, reader, version_dir)
  files = tuple(sorted(str(p) for p in version_dir.glob(f"*-{part}.array_record*")))
  return records_lib.Records(grid, indices, records_lib.ImageView(reader, grid.image_shape),
                             data, files)


def _check_grid(grid, reader: _Reader, folder) -> np.ndarray:
  if len(reader) != grid.num_images:
    raise ValueError(f"{folder}: holds {len(reader):,} records, the grid "
                     f"{grid.sizes} has {grid.num_images:,}; prepare it again.")
  probe = sorted({0, len(reader) - 1, len(reader) // 3, len(reader) // 2})
  found = [int(r["index"]) for r in reader.rows(probe)]
  if found != probe:
    raise ValueError(f"{folder}: record order is not flat grid order (records {probe} hold "
                     f"indices {found}); prepare it again.")
  return grid.all_factor_indices()


def _record_indices(grid, reader: _Reader, version_dir, part) -> np.ndarray:
  """Factor indices of every record, cached next to the records after the first read."""
  cache = version_dir / f"gsgen-{part}-factor-indices.npy"
  if cache.is_file():
    indices = np.load(cache)
    if len(indices) == len(reader):
      return indices
  names = [f"label_{n}" for n in grid.factor_names]
  indices = np.empty((len(reader), len(names)), np.int64)
  for start in range(0, len(reader), _READ_CHUNK):
    rows = reader.rows(range(start, min(start + _READ_CHUNK, len(reader))))
    indices[start:start + len(rows)] = [[r[n] for n in names] for r in rows]
  try:
    np.save(cache, indices)
  except OSError:
    pass  # a read-only data_dir only costs the cache
  return indices
