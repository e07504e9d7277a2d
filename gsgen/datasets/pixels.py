"""Stored image conventions -> ours (uint8 ``[n, H, W, C]``, dSprites 0/255), checked.

Contract: the stored range (0/1 or 0/255, bytes or floats) is told from a sample when a file
is opened, and every block read afterwards is checked against it; a stray value raises an
error naming the file, the record and the value (docs/datasets.md, "The official files").

Synopsis::

  from gsgen.datasets import npz, pixels
  with npz.open_zip(path) as zf:
    view = pixels.image_view(path, zf, npz.header(path, zf, "imgs"), "nhw", binary=True)
  view[:16]                    # uint8 [16, 64, 64, 1], 0 or 255; refuses a stray pixel
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gsgen.datasets import npz
from gsgen.datasets import records
from gsgen.datasets.npz import OfficialFileError

# Stored image layouts: channel-last, channel-first, or no channel axis (dSprites).
LAYOUTS = ("nhw", "nhwc", "nchw")


@dataclasses.dataclass(frozen=True)
class Pixels:
  """``(block, rows) -> uint8 [k, H, W, C]``; refuses any pixel outside the file's range.

  Attributes:
    where: ``"<path>: <member>"`` for messages.
    layout: one of `LAYOUTS`.
    scale: 255 for 0/1 (or [0, 1] float) files, else 1.
    binary: pixels must be exactly 0 or 1 (scale 255), or 0 or 255 (scale 1).
  """
  where: str
  layout: str
  scale: int
  binary: bool

  def __call__(self, block, rows) -> np.ndarray:
    block = np.asarray(block)
    if not self._fine(block):
      self._refuse(block, rows)
    return _to_uint8(block, self.layout, self.scale)

  def _fine(self, block) -> bool:
    if block.size == 0:
      return True
    if self.binary and block.dtype == np.uint8:
      if self.scale == 255:
        return block.max() <= 1
      return np.count_nonzero(block) == np.count_nonzero(block == 255)
    if self.binary:
      return not self._bad(block).any()
    if block.dtype == np.uint8:
      return True
    lo, hi = block.min(), block.max()
    return bool(lo >= 0 and hi <= (1 if self.scale == 255 else 255))  # False for NaN

  def _bad(self, block) -> np.ndarray:
    if self.binary:
      return (block != 0) & (block != (1 if self.scale == 255 else 255))
    return ~((block >= 0) & (block <= (1 if self.scale == 255 else 255)))

  def _refuse(self, block, rows):
    bad = self._bad(block).reshape(len(block), -1)
    k = int(np.flatnonzero(bad.any(1))[0])
    value = block.reshape(len(block), -1)[k][bad[k]][0]
    if self.binary:
      rule = (f"binary (dSprites) pixels must be 0/1 or 0/255, and this file's images are "
              f"{'0/1' if self.scale == 255 else '0/255'}")
    else:
      rule = f"pixel values should lie in [0, {1 if self.scale == 255 else 255}]"
    raise OfficialFileError(
        f"{self.where}: record {int(rows[k])} holds pixel value {value}; {rule}. The file "
        f"is damaged or not the published one: download it again.")


def image_view(path, zf, member: npz.Member, layout: str,
               binary: bool = False) -> records.ImageView:
  """A checked uint8 view of an npz image member.

  Args:
    path, zf: the npz file and its open `zipfile.ZipFile`.
    member: the member's header (`npz.header`).
    layout: how the member stores an image, one of `LAYOUTS`.
    binary: whether pixels are 0/1 or 0/255 only (dSprites).

  Returns:
    A `records.ImageView`, memory-mapped if the member is stored (each read converted and
    checked), else decompressed and checked once, block by block, into uint8.
  """
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
  row = member.shape[1:]
  image_shape = {"nhwc": row, "nchw": row[1:] + row[:1], "nhw": row + (1,)}[layout]
  where = f"{path}: {member.key}"
  if member.data_offset is not None:
    raw = npz.memmap(path, member)
    rows = np.unique(np.linspace(0, len(raw) - 1, 64).astype(np.int64)) if len(raw) else []
    scale = _pixel_scale(path, member, raw[rows], binary)
    return records.ImageView(raw, image_shape, Pixels(where, layout, scale, binary))
  # Stream the member in blocks, converting each to uint8, so that float files never need
  # their full float size in RAM.
  out = np.empty((member.shape[0],) + image_shape, np.uint8)
  convert = None
  for start, block in npz.stream(path, zf, member):
    if convert is None:
      convert = Pixels(where, layout, _pixel_scale(path, member, block[:1024], binary), binary)
    out[start:start + len(block)] = convert(block, np.arange(start, start + len(block)))
  return records.ImageView(out)


def _pixel_scale(path, member: npz.Member, sample, binary: bool) -> int:
  """255 for images stored as 0/1 (or floats in [0, 1]), else 1; refuses other ranges."""
  sample = np.asarray(sample)
  if sample.size == 0:
    return 1
  lo, hi = sample.min(), sample.max()
  if binary:
    values = set(np.unique(sample).tolist())
    if not (values <= {0, 1} or values <= {0, 255}):
      shown = sorted(values)[:8]
      raise OfficialFileError(f"{path}: binary (dSprites) pixels must be 0/1 or 0/255; "
                              f"{member.key} holds {shown}.")
    return 255 if hi <= 1 else 1
  if lo < 0 or hi > 255:
    raise OfficialFileError(f"{path}: pixel values should lie in [0, 255]; {member.key} "
                            f"holds values in [{lo}, {hi}].")
  return 255 if member.dtype.kind == "f" and hi <= 1 else 1


def _to_uint8(block, layout: str, scale: int) -> np.ndarray:
  if layout == "nchw":
    block = np.moveaxis(block, -3, -1)
  elif layout == "nhw":
    block = block[..., None]
  if block.dtype.kind == "f":
    block = np.clip(np.rint(block * scale), 0, 255)
  elif scale != 1:
    block = block.astype(np.uint8) * np.uint8(scale)
  return np.ascontiguousarray(block, dtype=np.uint8)
