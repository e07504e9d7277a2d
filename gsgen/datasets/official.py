"""Readers of the official dataset files, validated and memory-mapped where possible.

Synopsis::

  from gsgen.datasets import official
  path = official.find_official_file("mpi3d", "data", variant="real")
  arrays = official.read_mpi3d(path)     # memory-mapped: nothing is loaded yet
  arrays.images[:8].shape                # (8, 64, 64, 3), uint8
  arrays.factor_indices[1]               # array([0, 0, 0, 0, 0, 0, 1])
  test = official.read_benchmark_split("data", "shapes3d", "extrapolation", "test")

The files, as their authors publish them:

  dsprites   dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz: imgs (737280, 64, 64) uint8 0/1,
             latents_classes (737280, 6) int64 whose column 0 is the constant colour,
             latents_values, metadata (pickled; only ``dsprites_metadata`` unpickles it).
  shapes3d   3dshapes.h5: images (480000, 64, 64, 3) uint8, labels (480000, 6) float64
             factor values (with float noise; matched to the value tables).
  mpi3d      mpi3d_{toy,realistic,real}.npz: images (1036800, 64, 64, 3) uint8 in an
             uncompressed member of ~12.7 GB, memory-mapped at its data offset; no labels.
  benchmark  {dataset}_{variant}_{train|test}_{images|labels}.npz, key arr_0: channel-first
             images and integer factor indices (Schott et al., ICLR 2022).

Whatever the file holds, ``Arrays.images`` yields our convention: uint8 [n, 64, 64, C] with
dSprites pixels 0 or 255. The grid files must list the grid in order (record i is flat grid
index i); anything else is refused with an ``OfficialFileError`` naming the file, what was
expected and what was found.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import struct
import typing
import zipfile
import zlib

import numpy as np

from gsgen import specs

OFFICIAL_FILENAMES = {
    "dsprites": "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
    "shapes3d": "3dshapes.h5",
    "mpi3d": "mpi3d_{variant}.npz",
}
MPI3D_VARIANTS = ("toy", "realistic", "real")
BENCHMARK_VARIANTS = ("none", "random", "composition", "interpolation", "extrapolation")
BENCHMARK_PARTS = ("train", "test")
_DOWNLOAD_PAGES = {
    "dsprites": "https://github.com/google-deepmind/dsprites-dataset",
    "shapes3d": "https://github.com/google-deepmind/3d-shapes",
    "mpi3d": "https://github.com/rr-learning/disentanglement_dataset",
}
# Zenodo records of the published benchmark split files.
_BENCHMARK_PAGES = {
    "dsprites": "https://zenodo.org/record/4835774",
    "shapes3d": "https://zenodo.org/record/4898937",
    "mpi3d": "https://zenodo.org/record/4899346",
}
_LAYOUTS = ("nhw", "nhwc", "nchw")


class OfficialFileError(ValueError):
  """An official file is unreadable, truncated or not what the benchmark expects."""


class ImageView:
  """Lazy read-only view of stored images in our convention, uint8 [..., H, W, C].

  Indexing reads only the requested images from the underlying array (a memmap, an
  h5py dataset or an in-memory array) and converts them on the way out: channel-first to
  channel-last, a missing channel axis added, 0/1 or [0, 1] floats scaled to 0..255.
  ``view[i]`` is one image [H, W, C]; ``view[i:j]``, ``view[index_array]`` and
  ``view[bool_mask]`` give [n, H, W, C], like numpy.
  """

  def __init__(self, raw, layout: str = "nhwc", scale: int = 1):
    if layout not in _LAYOUTS:
      raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}.")
    self.raw, self.layout, self.scale = raw, layout, scale

  def __len__(self) -> int:
    return int(self.raw.shape[0])

  @property
  def shape(self) -> tuple[int, ...]:
    s = tuple(int(d) for d in self.raw.shape)
    if self.layout == "nchw":
      return (s[0],) + s[2:] + s[1:2]
    return s + (1,) if self.layout == "nhw" else s

  @property
  def dtype(self) -> np.dtype:
    return np.dtype(np.uint8)

  def __getitem__(self, index):
    if isinstance(index, (int, np.integer)):
      return self[np.asarray([index])][0]
    out = _to_uint8(self._read(index), self.layout, self.scale)
    # Never hand out a view of the file or of the cache: callers may write into batches.
    shared = isinstance(self.raw, np.ndarray) and np.may_share_memory(out, self.raw)
    return np.array(out) if shared else out

  def __array__(self, dtype=None, copy=None):
    del copy  # every read is a fresh array
    out = self[:]
    return out if dtype is None else out.astype(dtype)

  def _read(self, index):
    n = len(self)
    if isinstance(index, tuple):
      raise IndexError("index the image axis only (view[i], view[i:j], view[indices]) and "
                       "slice pixels of the result.")
    if isinstance(index, slice):
      start, stop, step = index.indices(n)
      if step > 0:
        return self.raw[start:stop:step]
      index = np.arange(start, stop, step)
    index = np.asarray(index)
    if index.dtype == bool:
      if index.shape != (n,):
        raise IndexError(f"boolean mask of shape {index.shape} for {n} images.")
      index = np.flatnonzero(index)
    if index.dtype.kind not in "iu":
      raise IndexError(f"images are indexed by integers, slices or masks, not {index.dtype}.")
    index = np.where(index < 0, index + n, index).astype(np.int64)
    if index.size and (index.min() < 0 or index.max() >= n):
      raise IndexError(f"image index out of range for {n} images.")
    if isinstance(self.raw, np.ndarray):
      return self.raw[index]
    # h5py's fancy selection is ~100x slower than one read per image (measured: 150 vs
    # 29,000 images/s on gzip chunks), so read each needed image once, in file order.
    uniq, inverse = np.unique(index.ravel(), return_inverse=True)
    block = np.empty((uniq.size,) + self.raw.shape[1:], self.raw.dtype)
    for k, i in enumerate(uniq):
      block[k] = self.raw[i]
    return block[inverse].reshape(index.shape + block.shape[1:])


@dataclasses.dataclass(frozen=True)
class Arrays:
  """Images and factor indices read from official files.

  Attributes:
    spec: the factor grid the file was checked against.
    images: lazy uint8 view [N, 64, 64, C] (see ``ImageView``).
    factor_indices: read-only int64 [N, num_factors]; row i belongs to ``images[i]``.
    files: the files read.
    source: data source for results, always ``official`` here.
  """
  spec: specs.DatasetSpec
  images: ImageView
  factor_indices: np.ndarray
  files: tuple[str, ...]
  source: str = "official"

  def __len__(self) -> int:
    return len(self.factor_indices)

  @property
  def flat_indices(self) -> np.ndarray:
    """Flat grid index of each record."""
    return self.spec.flat_index(self.factor_indices)


def default_filename(dataset: str, variant: str | None = None) -> str:
  """Name of a dataset's official file; MPI3D ``variant`` is toy, realistic or real (default)."""
  name = specs.get(dataset).name
  if name != "mpi3d":
    if variant is not None:
      raise ValueError(f"{name} has no variants; got variant={variant!r}.")
    return OFFICIAL_FILENAMES[name]
  variant = "real" if variant is None else variant
  if variant not in MPI3D_VARIANTS:
    raise ValueError(f"MPI3D variant must be one of {', '.join(MPI3D_VARIANTS)}; "
                     f"got {variant!r}.")
  return OFFICIAL_FILENAMES[name].format(variant=variant)


def find_official_file(dataset: str, data_dir: str | os.PathLike = "data",
                       variant: str | None = None) -> pathlib.Path:
  """Path of a dataset's official file under ``data_dir``.

  Raises:
    FileNotFoundError: the message names the exact file expected, where to put it, where
      it is published, and that the procedural data source needs no file.
  """
  name = default_filename(dataset, variant)
  path = pathlib.Path(data_dir) / name
  if not path.is_file():
    key = specs.get(dataset).name
    raise FileNotFoundError(
        f"official {key} file not found: expected {name} at {path.absolute()}. Download it "
        f"from {_DOWNLOAD_PAGES[key]} and put it in {pathlib.Path(data_dir).absolute()}/, or "
        f"use the procedural data source, which renders a stand-in and needs no file.")
  return path


def read_dsprites(path, expected_spec: specs.DatasetSpec = specs.DSPRITES) -> Arrays:
  """Reads the official dSprites npz (``imgs``, ``latents_classes``, ``latents_values``).

  Args:
    path: the npz file.
    expected_spec: the grid the file must hold (a reduced grid in tests).

  Returns:
    ``Arrays`` with images 0/255 [N, 64, 64, 1]; the colour column is checked and dropped.
  """
  path, spec = _existing(path), expected_spec
  with _open_zip(path) as zf:
    _require_keys(path, zf, ("imgs", "latents_classes"))
    imgs = _header(path, zf, "imgs")
    _check_array(path, imgs, (spec.num_images,) + spec.image_shape[:2], "uint8", "u")
    classes = _read_small(path, zf, "latents_classes")
    _check_array(path, _Member.of(classes, "latents_classes"),
                 (spec.num_images, spec.num_factors + 1), "an integer type", "iu")
    if np.any(classes[:, 0] != classes[0, 0]):
      raise OfficialFileError(
          f"{path}: latents_classes column 0 (colour) should be constant; it holds "
          f"{np.unique(classes[:, 0]).tolist()}.")
    indices = _check_grid_order(path, spec, classes[:, 1:], "latents_classes[:, 1:]")
    if "latents_values" in _keys(zf):
      values = _read_small(path, zf, "latents_values")
      _check_array(path, _Member.of(values, "latents_values"), classes.shape,
                   "a float type", "f")
      worst = np.abs(values[:, 1:] - spec.values(indices)).max(0)
      if np.any(worst > 1e-3):
        j = int(worst.argmax())
        raise OfficialFileError(
            f"{path}: latents_values disagree with latents_classes for factor "
            f"{spec.factor_names[j]} (off by up to {worst[j]:.3g} from its value table "
            f"{list(spec.factors[j].values)}).")
    raw = _array(path, zf, imgs, "nhw", binary=True)
  return Arrays(spec, raw, indices, (str(path),))


def dsprites_metadata(path) -> dict:
  """The pickled ``metadata`` dict of the dSprites npz (the one member that needs pickle)."""
  path = _existing(path)
  with _open_zip(path) as zf:
    _require_keys(path, zf, ("metadata",))
    with zf.open("metadata.npy") as fp:
      meta = np.lib.format.read_array(fp, allow_pickle=True,
                                      pickle_kwargs={"encoding": "latin1"})
  return meta[()] if meta.shape == () else meta


def read_shapes3d(path, expected_spec: specs.DatasetSpec = specs.SHAPES3D,
                  atol: float = 1e-3) -> Arrays:
  """Reads the official Shapes3D h5 (``images`` uint8, ``labels`` float64 factor values).

  Args:
    path: the h5 file.
    expected_spec: the grid the file must hold.
    atol: largest accepted distance of a label from its value table.

  Returns:
    ``Arrays``; images are memory-mapped when the h5 dataset is stored contiguously and
    read through h5py (chunk by chunk) otherwise.
  """
  import h5py  # pylint: disable=g-import-not-at-top  (only this reader needs it)
  path, spec = _existing(path), expected_spec
  try:
    h5 = h5py.File(path, "r")
  except OSError as e:
    raise OfficialFileError(f"{path}: not a readable HDF5 file ({_size(path)}); it may be "
                            f"truncated (an interrupted download?): {e}") from e
  missing = [k for k in ("images", "labels") if k not in h5]
  if missing:
    found = sorted(h5.keys())
    h5.close()
    raise OfficialFileError(f"{path}: expected datasets images and labels; missing "
                            f"{', '.join(missing)}, found {found}.")
  try:
    return _shapes3d_arrays(path, spec, h5, atol)
  except Exception:
    h5.close()
    raise


def _shapes3d_arrays(path, spec, h5, atol) -> Arrays:
  images, labels = h5["images"], h5["labels"]
  _check_array(path, _Member(images.shape, images.dtype, "images"),
               (spec.num_images,) + spec.image_shape, "uint8", "u")
  _check_array(path, _Member(labels.shape, labels.dtype, "labels"),
               (spec.num_images, spec.num_factors), "a float type", "f")
  try:
    values = labels[()]
  except OSError as e:
    raise OfficialFileError(f"{path}: labels unreadable, the file may be truncated: {e}") from e
  try:
    indices = spec.indices_from_values(values, atol=atol)
  except ValueError as e:
    raise OfficialFileError(f"{path}: labels are not on the value grid: {e}") from e
  indices = _check_grid_order(path, spec, indices, "labels")
  offset = images.id.get_offset()
  if images.chunks is None and images.compression is None and offset is not None:
    if os.path.getsize(path) < offset + images.size:
      raise OfficialFileError(f"{path}: truncated: images need bytes up to "
                              f"{offset + images.size:,}, {_size(path)}.")
    raw = np.memmap(path, np.uint8, "r", offset=offset, shape=images.shape)
    h5.close()
  else:
    raw = images  # keeps the file open for as long as the view lives
  return Arrays(spec, ImageView(raw, "nhwc"), indices, (str(path),))


def read_mpi3d(path, candidates: typing.Sequence[specs.DatasetSpec] = (
    specs.MPI3D, specs.MPI3D_LEGACY)) -> Arrays:
  """Memory-maps an official MPI3D npz (one uncompressed member ``images``).

  Args:
    path: ``mpi3d_{toy,realistic,real}.npz``.
    candidates: the grids a file may hold; its length picks one (the current 6 x 6 release
      or the older 4 x 4 one by default).

  Returns:
    ``Arrays`` whose ``images.raw`` is an ``np.memmap``; labels come from the flat index.
  """
  path = _existing(path)
  with _open_zip(path) as zf:
    _require_keys(path, zf, ("images",))
    member = _header(path, zf, "images")
    if member.data_offset is None:
      raise OfficialFileError(
          f"{path}: member images.npy is compressed (np.savez_compressed); the reader "
          f"memory-maps the images and a compressed member cannot be memory-mapped "
          f"(decompressing it would need ~{np.prod(member.shape) / 1e9:.1f} GB of RAM). "
          f"Use the file as published, or re-save it with np.savez.")
    _check_array(path, member, (None,) + specs.MPI3D.image_shape, "uint8", "u")
    n = member.shape[0]
    spec = next((c for c in candidates if c.num_images == n), None)
    if spec is None:
      allowed = " or ".join(f"{c.num_images:,} (grid {'x'.join(map(str, c.sizes))})"
                            for c in candidates)
      raise OfficialFileError(f"{path}: expected {allowed} images; found {n:,}.")
    view = _array(path, zf, member, "nhwc")
  return Arrays(spec, view, spec.all_factor_indices(), (str(path),))


def benchmark_filenames(dataset: str, variant: str, part: str) -> tuple[str, str]:
  """Names of the images and labels files of a published benchmark split."""
  name = specs.get(dataset).name
  if variant not in BENCHMARK_VARIANTS:
    raise ValueError(f"benchmark variant must be one of {', '.join(BENCHMARK_VARIANTS)}; "
                     f"got {variant!r}.")
  if part not in BENCHMARK_PARTS:
    raise ValueError(f"part must be 'train' or 'test'; got {part!r}.")
  return tuple(f"{name}_{variant}_{part}_{kind}.npz" for kind in ("images", "labels"))


def read_benchmark_split(directory, dataset: str, variant: str, part: str,
                         expected_spec: specs.DatasetSpec | None = None) -> Arrays:
  """Reads one part of a published benchmark split (``arr_0`` of two npz files).

  Args:
    directory: folder holding the split files.
    dataset: dsprites, shapes3d or mpi3d (MPI3D here is the real variant).
    variant: none, random, composition, interpolation or extrapolation.
    part: train or test.
    expected_spec: the grid (default: the dataset's).

  Returns:
    ``Arrays`` in file order (not grid order); images converted to channel-last uint8,
    memory-mapped if stored uncompressed, else decompressed once into uint8.
  """
  spec = expected_spec or specs.get(dataset)
  paths = [pathlib.Path(directory) / n for n in benchmark_filenames(dataset, variant, part)]
  for p in paths:
    if not p.is_file():
      raise FileNotFoundError(
          f"benchmark split file not found: expected {p.name} at {p.absolute()}; it is "
          f"published at {_BENCHMARK_PAGES[specs.get(dataset).name]}.")
  images_path, labels_path = paths
  with _open_zip(labels_path) as zf:
    _require_keys(labels_path, zf, ("arr_0",))
    labels = _read_small(labels_path, zf, "arr_0")
  indices = _check_labels(labels_path, spec, labels)
  h, w, c = spec.image_shape
  layouts = {(c, h, w): "nchw", (h, w, c): "nhwc"}
  if c == 1:
    layouts[(h, w)] = "nhw"
  with _open_zip(images_path) as zf:
    _require_keys(images_path, zf, ("arr_0",))
    member = _header(images_path, zf, "arr_0")
    layout = layouts.get(member.shape[1:])
    if layout is None or member.shape[0] != len(indices):
      raise OfficialFileError(
          f"{images_path}: expected images of shape ({len(indices)}, {c}, {h}, {w}) "
          f"(channel-first, one per label in {labels_path.name}); found {member.shape}.")
    _check_array(images_path, member, member.shape, "numeric", "uifb")
    view = _array(images_path, zf, member, layout, binary=spec.image_shape[-1] == 1)
  return Arrays(spec, view, indices, (str(images_path), str(labels_path)))


# ----------------------------------------------------------------------------- npz members


class _Member(typing.NamedTuple):
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


def _existing(path) -> pathlib.Path:
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file (looked at {path.absolute()}).")
  return path


def _size(path) -> str:
  return f"the file holds {os.path.getsize(path):,} bytes"


def _open_zip(path) -> zipfile.ZipFile:
  try:
    return zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise OfficialFileError(f"{path}: not a readable npz (zip) archive ({_size(path)}); it may "
                            f"be truncated (an interrupted download?): {e}") from e


def _keys(zf) -> list[str]:
  return [n[:-4] for n in zf.namelist() if n.endswith(".npy")]


def _require_keys(path, zf, keys):
  missing = [k for k in keys if k not in _keys(zf)]
  if missing:
    raise OfficialFileError(f"{path}: expected arrays {', '.join(keys)}; missing "
                            f"{', '.join(missing)}, found {sorted(_keys(zf))}.")


def _header(path, zf, key) -> _Member:
  """Parses a member's .npy header, and its zip local header when it is stored."""
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
  member = _Member(tuple(shape), dtype, key, fortran, None, info, header_size)
  need = header_size + int(np.prod(shape)) * dtype.itemsize
  if info.file_size < need:
    raise OfficialFileError(
        f"{path}: member {info.filename} is truncated: its header declares {dtype} "
        f"{tuple(shape)} ({need:,} bytes with the header) but it holds {info.file_size:,}.")
  if info.compress_type != zipfile.ZIP_STORED:
    return member
  # The local header's extra field (zip64 sizes, which np.savez always writes) can differ
  # from the central directory's, so the data offset must come from the local header.
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
                            f"but {_size(path)}.")
  return member._replace(data_offset=offset)


def _check_array(path, member: _Member, shape, dtype_name: str, kinds: str):
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


def _read_small(path, zf, key) -> np.ndarray:
  """Loads a (label-sized) member into memory, never unpickling."""
  _header(path, zf, key)  # refuses object arrays and truncated members with a clear error
  try:
    with zf.open(key + ".npy") as fp:
      return np.lib.format.read_array(fp, allow_pickle=False)
  except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise OfficialFileError(f"{path}: {key} unreadable, the file may be truncated: {e}") from e


def _array(path, zf, member: _Member, layout: str, binary: bool = False) -> ImageView:
  """An ImageView of an image member: memory-mapped if stored, else decompressed once."""
  order = "F" if member.fortran_order else "C"
  if member.data_offset is not None:
    raw = np.memmap(path, member.dtype, "r", offset=member.data_offset,
                    shape=member.shape, order=order)
    rows = np.unique(np.linspace(0, len(raw) - 1, 64).astype(np.int64)) if len(raw) else []
    return ImageView(raw, layout, _pixel_scale(path, member, raw[rows], binary))
  if member.fortran_order:
    raise OfficialFileError(f"{path}: {member.key} is a compressed Fortran-order array; "
                            f"re-save it in C order.")
  # Stream the member in blocks, converting each to uint8, so that float files never need
  # their full float size in RAM.
  n, row_shape = member.shape[0], member.shape[1:]
  row_bytes = int(np.prod(row_shape)) * member.dtype.itemsize
  out = np.empty((n,) + ImageView(np.empty((0,) + row_shape), layout).shape[1:], np.uint8)
  scale = 1
  block_rows = max(1, (64 << 20) // max(row_bytes, 1))
  try:
    with zf.open(member.info) as fp:
      fp.read(member.header_size)
      for start in range(0, n, block_rows):
        k = min(block_rows, n - start)
        data = fp.read(k * row_bytes)
        if len(data) != k * row_bytes:
          raise EOFError(f"member ended after {start * row_bytes + len(data):,} data bytes")
        block = np.frombuffer(data, member.dtype).reshape((k,) + row_shape)
        if start == 0:
          scale = _pixel_scale(path, member, block[:1024], binary)
        elif scale == 255 and block.max(initial=0) > 1:
          raise OfficialFileError(f"{path}: {member.key} mixes 0..1 and 0..255 images.")
        out[start:start + k] = _to_uint8(block, layout, scale)
  except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise OfficialFileError(f"{path}: {member.key} unreadable, the file may be "
                            f"truncated: {e}") from e
  return ImageView(out, "nhwc")


def _pixel_scale(path, member: _Member, sample, binary: bool) -> int:
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
  block = np.asarray(block)
  if layout == "nchw":
    block = np.moveaxis(block, -3, -1)
  elif layout == "nhw":
    block = block[..., None]
  if block.dtype.kind == "f":
    block = np.clip(np.rint(block * scale), 0, 255)
  elif scale != 1:
    block = block.astype(np.uint8) * np.uint8(scale)
  return np.ascontiguousarray(block, dtype=np.uint8)


# ----------------------------------------------------------------------------- labels


def _check_grid_order(path, spec, indices, what) -> np.ndarray:
  """Returns the (read-only) grid if ``indices`` lists the grid in flat order, else raises."""
  grid = spec.all_factor_indices()
  wrong = np.flatnonzero(np.any(np.asarray(indices) != grid, axis=1))
  if wrong.size:
    i = int(wrong[0])
    raise OfficialFileError(
        f"{path}: {what} are not in grid order (record i must be flat grid index i, "
        f"factors {', '.join(spec.factor_names)}, last fastest): record {i} holds "
        f"{np.asarray(indices[i]).tolist()}, expected {grid[i].tolist()}; "
        f"{wrong.size:,} of {len(grid):,} records are out of place.")
  return grid


def _check_labels(path, spec, labels) -> np.ndarray:
  """Integer factor indices [N, F] on the grid, each grid point at most once."""
  _check_array(path, _Member.of(labels, "arr_0"), (None, spec.num_factors),
               "integer factor indices", "iuf")
  if labels.dtype.kind == "f":
    if not np.all(np.isfinite(labels)) or np.any(labels != np.rint(labels)):
      raise OfficialFileError(f"{path}: labels should be integer factor indices; found "
                              f"non-integer {labels.dtype} values.")
  indices = labels.astype(np.int64)
  sizes = np.asarray(spec.sizes)
  bad = np.flatnonzero(np.any((indices < 0) | (indices >= sizes), axis=1))
  if bad.size:
    i = int(bad[0])
    raise OfficialFileError(f"{path}: labels outside the grid {spec.sizes} "
                            f"({', '.join(spec.factor_names)}): row {i} is "
                            f"{indices[i].tolist()} ({bad.size:,} rows out of range).")
  flat = spec.flat_index(indices)
  if np.unique(flat).size != flat.size:
    raise OfficialFileError(f"{path}: {flat.size - np.unique(flat).size:,} grid points "
                            f"appear more than once; a split lists each point once.")
  indices.flags.writeable = False
  return indices
