"""Validated access to the members of an npz (zip) file without loading them whole.

Contract: `header` reads a member's .npy header, `memmap` maps a stored member in place, a
compressed one is streamed in blocks; a truncated, pickled or wrong-shaped member raises
`OfficialFileError` naming the file. Why ``np.load`` will not do: docs/datasets.md, "The
official files".

Synopsis::

  from gsgen.datasets import npz
  with npz.open_zip(path) as zf:
    member = npz.header(path, zf, "images")     # shape, dtype, data_offset (None: compressed)
    images = npz.memmap(path, member)           # read-only np.memmap, nothing loaded
"""

from __future__ import annotations

import os
import pathlib
import struct
import typing
import zipfile
import zlib

import numpy as np


class OfficialFileError(ValueError):
  """An official file is unreadable, truncated or not what the benchmark expects."""


class Member(typing.NamedTuple):
  """The .npy header of an array (or any shape/dtype to check)."""
  shape: tuple
  dtype: np.dtype
  key: str
  fortran_order: bool = False
  data_offset: int | None = None  # file offset of the data of an uncompressed member
  info: zipfile.ZipInfo | None = None
  header_size: int = 0

  @classmethod
  def of(cls, array, key):
    return cls(array.shape, array.dtype, key)


def existing(path) -> pathlib.Path:
  """``path`` as a Path; FileNotFoundError naming it if it is not a file."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file (looked at {path.absolute()}).")
  return path


def size_note(path) -> str:
  return f"the file holds {os.path.getsize(path):,} bytes"


def open_zip(path) -> zipfile.ZipFile:
  try:
    return zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise OfficialFileError(f"{path}: not a readable npz (zip) archive ({size_note(path)}); "
                            f"it may be truncated (an interrupted download?): {e}") from e


def keys(zf) -> list[str]:
  """The array names of an npz."""
  return [n[:-4] for n in zf.namelist() if n.endswith(".npy")]


def require_keys(path, zf, wanted):
  missing = [k for k in wanted if k not in keys(zf)]
  if missing:
    raise OfficialFileError(f"{path}: expected arrays {', '.join(wanted)}; missing "
                            f"{', '.join(missing)}, found {sorted(keys(zf))}.")


def header(path, zf, key) -> Member:
  """Parses a member's .npy header, and its zip local header when it is stored.

  Raises:
    OfficialFileError: unreadable or object-dtype header, or data shorter than declared.
  """
  info = zf.getinfo(key + ".npy")
  try:
    with zf.open(info) as fp:
      version = np.lib.format.read_magic(fp)
      if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
      elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
      else:
        raise ValueError(f".npy format version {version} is not supported")
      header_size = fp.tell()
  except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise OfficialFileError(f"{path}: member {info.filename} has no readable .npy "
                            f"header: {e}") from e
  if dtype.hasobject:
    raise OfficialFileError(f"{path}: {key} holds pickled Python objects, not numbers; "
                            f"refusing to unpickle it.")
  member = Member(tuple(shape), dtype, key, fortran, None, info, header_size)
  need = header_size + int(np.prod(shape)) * dtype.itemsize
  if info.file_size < need:
    raise OfficialFileError(
        f"{path}: member {info.filename} is truncated: its header declares {dtype} "
        f"{tuple(shape)} ({need:,} bytes with the header) but it holds {info.file_size:,}.")
  if info.compress_type != zipfile.ZIP_STORED:
    return member
  with open(path, "rb") as f:
    f.seek(info.header_offset)
    local = f.read(30)
  if len(local) < 30 or local[:4] != b"PK\x03\x04":
    raise OfficialFileError(f"{path}: no zip local header at byte {info.header_offset:,}.")
  name_len, extra_len = struct.unpack("<HH", local[26:30])
  offset = info.header_offset + 30 + name_len + extra_len + header_size
  end = offset + need - header_size
  if os.path.getsize(path) < end:
    raise OfficialFileError(f"{path}: truncated: {key} needs bytes up to {end:,} "
                            f"but {size_note(path)}.")
  return member._replace(data_offset=offset)


def check_array(path, member: Member, shape, dtype_name: str, kinds: str):
  """Refuses a wrong shape (None matches any size) or a dtype kind not in ``kinds``."""
  ok = len(member.shape) == len(shape) and all(
      s is None or s == m for s, m in zip(shape, member.shape))
  if not ok:
    want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
    raise OfficialFileError(f"{path}: {member.key} should have shape {want}; "
                            f"found {member.shape}.")
  if member.dtype.kind not in kinds or (dtype_name == "uint8" and member.dtype != np.uint8):
    raise OfficialFileError(f"{path}: {member.key} should be {dtype_name}; "
                            f"found {member.dtype}.")


def read_small(path, zf, key) -> np.ndarray:
  """Loads a (label-sized) member into memory, never unpickling."""
  header(path, zf, key)  # refuses object arrays and truncated members with a clear error
  try:
    with zf.open(key + ".npy") as fp:
      return np.lib.format.read_array(fp, allow_pickle=False)
  except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise OfficialFileError(f"{path}: {key} unreadable, the file may be truncated: {e}") from e


def memmap(path, member: Member) -> np.memmap:
  """A read-only memory map of a stored member (``member.data_offset`` set by `header`)."""
  if member.data_offset is None:
    raise ValueError(f"{path}: {member.key} is compressed and cannot be memory-mapped.")
  return np.memmap(path, member.dtype, "r", offset=member.data_offset, shape=member.shape,
                   order="F" if member.fortran_order else "C")


def stream(path, zf, member: Member,
           block_bytes: int = 64 << 20) -> typing.Iterator[tuple[int, np.ndarray]]:
  """Yields ``(start_row, rows)`` blocks of a (compressed) member, in order.

  Memory stays at one block of about ``block_bytes``, whatever the member's size.

  Raises:
    OfficialFileError: a Fortran-order member, or data that ends early or fails to inflate.
  """
  if member.fortran_order:
    raise OfficialFileError(f"{path}: {member.key} is a compressed Fortran-order array; "
                            f"re-save it in C order.")
  n, row_shape = member.shape[0], member.shape[1:]
  row_bytes = int(np.prod(row_shape)) * member.dtype.itemsize
  block_rows = max(1, block_bytes // max(row_bytes, 1))
  try:
    with zf.open(member.info) as fp:
      fp.read(member.header_size)
      for start in range(0, n, block_rows):
        k = min(block_rows, n - start)
        data = fp.read(k * row_bytes)
        if len(data) != k * row_bytes:
          raise EOFError(f"member ended after {start * row_bytes + len(data):,} data bytes")
        yield start, np.frombuffer(data, member.dtype).reshape((k,) + row_shape)
  except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise OfficialFileError(f"{path}: {member.key} unreadable, the file may be "
                            f"truncated: {e}") from e
