"""Records: the factor indices and lazily read images of one part of a dataset.

Contract: every reader of the data layer hands out this one type, and the input pipeline
reads batches from it the same way whether the images lie in a memory map, an HDF5 file or
array_record files, or are rendered on the device (no images).

Synopsis::

  import numpy as np
  from gsgen import specs
  from gsgen.datasets import records, sources
  spec = specs.DSPRITES.subgrid((3, 2, 2, 2, 2))
  view = records.ImageView(np.zeros((spec.num_images, 64, 64, 1), np.uint8))
  recs = records.Records(spec, spec.all_factor_indices(), view,
                         sources.parse("dsprites", "procedural:stored"))
  part = recs.subset([3, 1, 4])
  part.images[[0, 2]].shape, part.flat_indices        # (2, 64, 64, 1), [3 1 4]
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from gsgen import specs as specs_lib
from gsgen.datasets import sources


def _as_uint8(block, rows):
  del rows
  return np.ascontiguousarray(block, dtype=np.uint8)


class ImageView:
  """Lazy read-only uint8 images ``[n, H, W, C]``, indexed like a numpy array.

  ``view[i]`` is one image ``[H, W, C]``; ``view[i:j]``, ``view[int_array]`` (any shape,
  negative indices allowed) and ``view[bool_mask]`` give ``[..., H, W, C]``. A read touches
  only the requested rows and always returns a fresh, writable array.
  """

  def __init__(self, raw, image_shape=None,
               convert: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
               rows=None):
    """Args:
      raw: the stored rows: a numpy array or memmap (read in one indexing call), an object
        with ``len()`` and ``read_rows(sorted_unique_int64) -> array`` (prepared TFDS
        records), or an array-like with ``shape``, ``dtype`` and ``raw[i]`` (an h5py
        dataset, read one row at a time in file order).
      image_shape: (H, W, C) of the images handed out (default: the rows' shape).
      convert: ``(block, raw_rows) -> uint8 [k, H, W, C]`` from stored rows to images; it
        may refuse bad pixels and name the row. Default: the rows are uint8 images already.
      rows: raw row of each position (a subset view); default all rows in order.
    """
    self.raw = raw
    self._convert = convert or _as_uint8
    self._rows = None if rows is None else np.asarray(rows, np.int64)
    if image_shape is None:
      image_shape = tuple(int(d) for d in raw.shape[1:])
    self._shape = tuple(int(d) for d in image_shape)
    if convert is None and hasattr(raw, "dtype") and np.dtype(raw.dtype) != np.uint8:
      raise ValueError(f"stored images are {raw.dtype}, not uint8; pass convert=.")

  def _num_raw(self) -> int:
    return int(self.raw.shape[0]) if hasattr(self.raw, "shape") else len(self.raw)

  def __len__(self) -> int:
    return self._num_raw() if self._rows is None else len(self._rows)

  @property
  def shape(self) -> tuple[int, ...]:
    return (len(self),) + self._shape

  @property
  def dtype(self) -> np.dtype:
    return np.dtype(np.uint8)

  def subset(self, positions) -> ImageView:
    """The view of ``positions`` (int array) of this one, still lazy."""
    positions = self._positions(np.asarray(positions))
    rows = positions if self._rows is None else self._rows[positions]
    return ImageView(self.raw, self._shape, self._convert, rows)

  def __getitem__(self, index) -> np.ndarray:
    if isinstance(index, (int, np.integer)):
      return self[np.asarray([index])][0]
    if isinstance(index, tuple):
      raise IndexError("index the image axis only (view[i], view[i:j], view[indices]) and "
                       "slice pixels of the result.")
    if isinstance(index, slice):
      start, stop, step = index.indices(len(self))
      if step > 0 and self._rows is None and isinstance(self.raw, np.ndarray):
        # One strided read of a memory map, not a gather.
        block = self.raw[start:stop:step]
        return self._fresh(self._convert(block, np.arange(start, stop, step)))
      index = np.arange(start, stop, step)
    positions = self._positions(np.asarray(index))
    rows = positions if self._rows is None else self._rows[positions]
    flat = rows.reshape(-1)
    if flat.size == 0:
      return np.empty(rows.shape + self._shape, np.uint8)
    if isinstance(self.raw, np.ndarray):
      out = self._fresh(self._convert(self.raw[flat], flat))
    else:
      # Each needed row once, in storage order: h5py's fancy selection is far slower than
      # one read per row, and array_record reads sorted keys sequentially.
      uniq, inverse = np.unique(flat, return_inverse=True)
      out = self._convert(self._read(uniq), uniq)[inverse.reshape(-1)]
    return out.reshape(rows.shape + self._shape)

  def __array__(self, dtype=None, copy=None):
    del copy  # every read is a fresh array
    out = self[:]
    return out if dtype is None else out.astype(dtype)

  def _positions(self, index: np.ndarray) -> np.ndarray:
    n = len(self)
    if index.dtype == bool:
      if index.shape != (n,):
        raise IndexError(f"boolean mask of shape {index.shape} for {n} images.")
      return np.flatnonzero(index)
    if index.size == 0:
      return index.astype(np.int64)
    if index.dtype.kind not in "iu":
      raise IndexError(f"images are indexed by integers, slices or masks, not {index.dtype}.")
    index = np.where(index < 0, index + n, index).astype(np.int64)
    if index.min() < 0 or index.max() >= n:
      raise IndexError(f"image index out of range for {n} images.")
    return index

  def _read(self, uniq: np.ndarray) -> np.ndarray:
    if hasattr(self.raw, "read_rows"):
      return np.asarray(self.raw.read_rows(uniq))
    block = np.empty((uniq.size,) + tuple(self.raw.shape[1:]), self.raw.dtype)
    for k, i in enumerate(uniq):
      block[k] = self.raw[int(i)]
    return block

  def _fresh(self, out: np.ndarray) -> np.ndarray:
    # Never hand out a view of the file or of an in-memory array: callers write into batches.
    if isinstance(self.raw, np.ndarray) and np.may_share_memory(out, self.raw):
      return np.array(out)
    return out


@dataclasses.dataclass(frozen=True)
class Records:
  """One part of a dataset: factor indices and images, row i belonging to row i.

  Attributes:
    spec: the factor grid (full or reduced) the factor indices refer to.
    factor_indices: read-only int64 ``[n, num_factors]``.
    images: lazy uint8 ``[n, H, W, C]`` by position, or None when the images are rendered
      on the device from the factor indices.
    data: the data source.
    files: the files read (empty for rendered images).
  """
  spec: specs_lib.DatasetSpec
  factor_indices: np.ndarray
  images: ImageView | None
  data: sources.DataSource
  files: tuple[str, ...] = ()

  def __post_init__(self):
    idx = np.asarray(self.factor_indices)
    if idx.ndim != 2 or idx.shape[1] != self.spec.num_factors:
      raise ValueError(f"{self.spec.name} factor indices must have shape [n, "
                       f"{self.spec.num_factors}]; got {idx.shape}.")
    if idx.dtype != np.int64 or idx.flags.writeable:
      idx = idx.astype(np.int64)  # a private copy: nobody else can write into it
      idx.flags.writeable = False
    object.__setattr__(self, "factor_indices", idx)
    if self.images is not None and len(self.images) != len(idx):
      raise ValueError(f"{len(self.images):,} images for {len(idx):,} factor rows.")

  def __len__(self) -> int:
    return len(self.factor_indices)

  @property
  def flat_indices(self) -> np.ndarray:
    """Flat grid index of each record."""
    return self.spec.flat_index(self.factor_indices)

  @property
  def data_source(self) -> str:
    """``procedural`` or ``official``: what every result names."""
    return self.data.data_source

  def subset(self, positions) -> Records:
    """The records at ``positions`` (int array or bool mask), in that order."""
    positions = np.asarray(positions)
    if positions.dtype == bool:
      positions = np.flatnonzero(positions)
    positions = positions.astype(np.int64)
    images = None if self.images is None else self.images.subset(positions)
    return Records(self.spec, self.factor_indices[positions], images, self.data, self.files)
