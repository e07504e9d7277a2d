"""Readers of the three published weight-file formats: numpy ``.npz``, ``.safetensors`` and
PyTorch ``.pth``, recognised from their bytes rather than their names.

A file's extension says little (BiT's ``.npz`` and PyTorch's ``.pth`` are both zip archives;
``.bin`` and ``.pt`` are common for either), so the format is read off the file: a zip archive
of ``.npy`` members is numpy's, one with a ``data.pkl`` member is PyTorch's, an 8-byte header
length followed by a JSON header is safetensors, a pickle is an old PyTorch file. Shapes are
read without the data (npy headers, the safetensors header, memory-mapped PyTorch tensors), so
checking that a file fits a model costs little. ``.npz`` and ``.safetensors`` need numpy
alone; ``.pth`` needs PyTorch (the ``torch`` extra).

Synopsis::

  from gsgen.weights import files
  fmt = files.detect_format("data/weights/BiT-M-R50x1.npz")        # "npz"
  shapes = files.read_shapes("data/weights/BiT-M-R50x1.npz", fmt)  # name -> shape
  tensors = files.read_tensors("data/weights/BiT-M-R50x1.npz", fmt, list(shapes)[:2])
"""

from __future__ import annotations

import json
import os
import zipfile

import ml_dtypes
import numpy as np

FORMATS = ("npz", "safetensors", "pth")
_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "BOOL": np.bool_,
}


def detect_format(path: str) -> str:
  """The format of a weight file, from its bytes.

  Raises:
    FileNotFoundError: no such file (nothing is downloaded).
    ValueError: none of `FORMATS`, naming what the file starts with.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"weight file {path} not found; place it there (nothing is "
                            f"downloaded) or fix config.init_from.weights.")
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    head = f.read(16)
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as z:
      members = z.namelist()
    if any(m.endswith("data.pkl") for m in members):
      return "pth"
    if members and all(m.endswith(".npy") for m in members):
      return "npz"
    raise ValueError(f"{path}: a zip archive that is neither numpy's .npz (only .npy members) "
                     f"nor PyTorch's .pth (a data.pkl member); found members "
                     f"{', '.join(members[:5]) or 'none'}.")
  if len(head) > 8 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
    return "safetensors"
  if head[:1] == b"\x80":  # a pickle: torch.save's format before PyTorch 1.6
    return "pth"
  raise ValueError(f"{path}: not a weight file gsgen reads: expected BiT's .npz, a "
                   f".safetensors file or a PyTorch .pth state dict; its first bytes are "
                   f"{head[:8]!r} ({size} bytes in all).")


def _npz_shapes(path: str) -> dict[str, tuple[int, ...]]:
  shapes = {}
  with zipfile.ZipFile(path) as z:
    for member in z.namelist():
      with z.open(member) as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shapes[member[:-len(".npy")]] = tuple(read(f)[0])
  return shapes


def _safetensors_header(path: str) -> tuple[dict, int]:
  with open(path, "rb") as f:
    n = int.from_bytes(f.read(8), "little")
    header = json.loads(f.read(n))
  header.pop("__metadata__", None)
  return header, 8 + n


def _torch(path: str):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
        f"{path} is a PyTorch .pth file, and reading it needs PyTorch: pip install -e "
        f"'.[torch]' (or pip install torch), or use the same network's .safetensors file "
        f"(timm publishes them), which gsgen reads without PyTorch.") from None
  return torch


def _torch_state(path: str) -> dict:
  torch = _torch(path)
  try:
    try:
      state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # mmap needs the zip format; old pickled files are read whole
      state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises several kinds for a file it will not unpickle
    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [repr(e)]
    detail = next((line for line in lines if "Unsupported global" in line), lines[0])
    detail = detail.split(" was not an allowed")[0].replace("WeightsUnpickler error: ", "")
    raise ValueError(f"{path}: PyTorch cannot read it as a state dict of tensors ({detail}); "
                     f"save model.state_dict(), not the model.") from None
  for key in ("state_dict", "model", "module"):
    if isinstance(state, dict) and isinstance(state.get(key), dict) and not any(
        isinstance(v, torch.Tensor) for v in state.values()):
      state = state[key]
  if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                            for v in state.values()):
    raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict (names -> "
                     f"tensors); save model.state_dict().")
  return state


def read_shapes(path: str, fmt: str) -> dict[str, tuple[int, ...]]:
  """Tensor name -> shape of a weight file of format ``fmt``, without reading the data."""
  try:
    if fmt == "npz":
      return _npz_shapes(path)
    if fmt == "safetensors":
      header, _ = _safetensors_header(path)
      return {k: tuple(v["shape"]) for k, v in header.items()}
  except (OSError, ValueError, zipfile.BadZipFile, KeyError, TypeError) as e:
    raise ValueError(f"{path}: a damaged {fmt} file ({e}); copy it again.") from None
  return {k: tuple(v.shape) for k, v in _torch_state(path).items()}


def read_tensors(path: str, fmt: str, names: list[str]) -> dict[str, np.ndarray]:
  """The tensors ``names`` of a weight file as numpy arrays (floating ones as float32).

  Raises:
    ValueError: a damaged file (a tensor whose bytes are not there).
  """
  if fmt == "npz":
    try:
      with np.load(path, allow_pickle=False) as f:
        return {n: f[n] for n in names}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
      raise ValueError(f"{path}: a damaged npz file ({e}); copy it again.") from None
  if fmt == "safetensors":
    header, start = _safetensors_header(path)
    data = np.memmap(path, np.uint8, mode="r")
    out = {}
    for n in names:
      entry = header[n]
      begin, end = (start + o for o in entry["data_offsets"])
      dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]])
      if end > data.size or end - begin != dtype.itemsize * int(np.prod(entry["shape"])):
        raise ValueError(f"{path}: a damaged safetensors file (tensor {n} should take "
                         f"{dtype.itemsize * int(np.prod(entry['shape']))} bytes at "
                         f"{begin}; the file has {data.size}); copy it again.")
      value = np.frombuffer(data[begin:end], dtype).reshape(entry["shape"])
      out[n] = value.astype(np.float32) if dtype.kind in "fV" else np.array(value)
    return out
  state = _torch_state(path)
  return {n: (state[n].float() if state[n].is_floating_point() else state[n]).numpy()
          for n in names}
