"""Readers of the official dataset files, validated and memory-mapped where possible.

Contract: each reader checks a file against its grid (shape, dtype, labels in grid order,
pixel values) and raises `OfficialFileError` naming the file, what was expected and what was
found; images stay on disk behind a lazy `records.ImageView`, uint8 ``[n, 64, 64, C]``,
dSprites pixels 0 or 255. File formats: docs/datasets.md, "The official files".

Synopsis::

  from gsgen.datasets import official
  path = official.find_official_file("mpi3d", "data", variant="real")
  recs = official.read_mpi3d(path)       # memory-mapped: nothing is loaded yet
  recs.images[:8].shape                  # (8, 64, 64, 3), uint8
  recs.factor_indices[1]                 # array([0, 0, 0, 0, 0, 0, 1])
  test = official.read_benchmark_split("data", "shapes3d", "extrapolation", "test")
"""

from __future__ import annotations

import os
import pathlib
import typing

import numpy as np

from gsgen import specs
from gsgen.datasets import npz
from gsgen.datasets import pixels
from gsgen.datasets import records
from gsgen.datasets import sources
from gsgen.datasets.npz import OfficialFileError

OFFICIAL_FILENAMES = {
    "dsprites": "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
    "shapes3d": "3dshapes.h5",
    "mpi3d": "mpi3d_{variant}.npz",
}
MPI3D_VARIANTS = sources.MPI3D_VARIANTS
BENCHMARK_VARIANTS = specs.SPLITS
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


def read_official(data: sources.DataSource, official_dir,
                  grid: specs.DatasetSpec | None = None) -> records.Records:
  """Reads and validates the official grid file of a source (kind ``official``).

  Args:
    data: the data source, e.g. ``sources.parse("mpi3d", "toy")``.
    official_dir: the folder holding the file.
    grid: a reduced grid the file must hold (tests); default the dataset's.
  """
  if data.kind != "official":
    raise ValueError(f"{data.name} is not an official grid file source.")
  variant = data.config if data.dataset == "mpi3d" else None
  path = find_official_file(data.dataset, official_dir, variant=variant)
  if data.dataset == "dsprites":
    return read_dsprites(path, expected_spec=grid or specs.DSPRITES)
  if data.dataset == "shapes3d":
    return read_shapes3d(path, expected_spec=grid or specs.SHAPES3D)
  candidates = (grid,) if grid is not None else (specs.MPI3D, specs.MPI3D_LEGACY)
  return read_mpi3d(path, candidates=candidates, variant=variant)


def read_dsprites(path, expected_spec: specs.DatasetSpec = specs.DSPRITES) -> records.Records:
  """Reads the official dSprites npz (``imgs``, ``latents_classes``, ``latents_values``).

  Args:
    path: the npz file.
    expected_spec: the grid the file must hold (a reduced grid in tests).

  Returns:
    `records.Records` with images 0/255 [N, 64, 64, 1]; the colour column is checked and
    dropped. Pixels are checked on every read: a value other than 0/1 (or 0/255) is refused.
  """
  path, spec = npz.existing(path), expected_spec
  with npz.open_zip(path) as zf:
    npz.require_keys(path, zf, ("imgs", "latents_classes"))
    imgs = npz.header(path, zf, "imgs")
    npz.check_array(path, imgs, (spec.num_images,) + spec.image_shape[:2], "uint8", "u")
    classes = npz.read_small(path, zf, "latents_classes")
    npz.check_array(path, npz.Member.of(classes, "latents_classes"),
                    (spec.num_images, spec.num_factors + 1), "an integer type", "iu")
    if np.any(classes[:, 0] != classes[0, 0]):
      raise OfficialFileError(
          f"{path}: latents_classes column 0 (colour) should be constant; it holds "
          f"{np.unique(classes[:, 0]).tolist()}.")
    indices = _check_grid_order(path, spec, classes[:, 1:], "latents_classes[:, 1:]")
    if "latents_values" in npz.keys(zf):
      values = npz.read_small(path, zf, "latents_values")
      npz.check_array(path, npz.Member.of(values, "latents_values"), classes.shape,
                      "a float type", "f")
      worst = np.abs(values[:, 1:] - spec.values(indices)).max(0)
      if np.any(worst > 1e-3):
        j = int(worst.argmax())
        raise OfficialFileError(
            f"{path}: latents_values disagree with latents_classes for factor "
            f"{spec.factor_names[j]} (off by up to {worst[j]:.3g} from its value table "
            f"{list(spec.factors[j].values)}).")
    view = pixels.image_view(path, zf, imgs, "nhw", binary=True)
  return records.Records(spec, indices, view, sources.parse("dsprites", "official"),
                         (str(path),))


def dsprites_metadata(path) -> dict:
  """The pickled ``metadata`` dict of the dSprites npz (the one member that needs pickle)."""
  path = npz.existing(path)
  with npz.open_zip(path) as zf:
    npz.require_keys(path, zf, ("metadata",))
    with zf.open("metadata.npy") as fp:
      meta = np.lib.format.read_array(fp, allow_pickle=True,
                                      pickle_kwargs={"encoding": "latin1"})
  return meta[()] if meta.shape == () else meta


def read_shapes3d(path, expected_spec: specs.DatasetSpec = specs.SHAPES3D,
                  atol: float = 1e-3) -> records.Records:
  """Reads the official Shapes3D h5 (``images`` uint8, ``labels`` float64 factor values).

  Args:
    path: the h5 file.
    expected_spec: the grid the file must hold.
    atol: largest accepted distance of a label from its value table.

  Returns:
    `records.Records`; images are memory-mapped when the h5 dataset is stored contiguously
    and read through h5py (chunk by chunk) otherwise.
  """
  import h5py  # pylint: disable=g-import-not-at-top  (only this reader needs it)
  path, spec = npz.existing(path), expected_spec
  try:
    h5 = h5py.File(path, "r")
  except OSError as e:
    raise OfficialFileError(f"{path}: not a readable HDF5 file ({npz.size_note(path)}); it "
                            f"may be truncated (an interrupted download?): {e}") from e
  missing = [k for k in ("images", "labels") if k not in h5]
  if missing:
    found = sorted(h5.keys())
    h5.close()
    raise OfficialFileError(f"{path}: expected datasets images and labels; missing "
                            f"{', '.join(missing)}, found {found}.")
  try:
    return _shapes3d_records(path, spec, h5, atol)
  except Exception:
    h5.close()
    raise


def _shapes3d_records(path, spec, h5, atol) -> records.Records:
  images, labels = h5["images"], h5["labels"]
  npz.check_array(path, npz.Member(images.shape, images.dtype, "images"),
                  (spec.num_images,) + spec.image_shape, "uint8", "u")
  npz.check_array(path, npz.Member(labels.shape, labels.dtype, "labels"),
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
                              f"{offset + images.size:,}, {npz.size_note(path)}.")
    raw = np.memmap(path, np.uint8, "r", offset=offset, shape=images.shape)
    h5.close()
  else:
    raw = images  # keeps the file open for as long as the view lives
  return records.Records(spec, indices, records.ImageView(raw),
                         sources.parse("shapes3d", "official"), (str(path),))


def read_mpi3d(path, candidates: typing.Sequence[specs.DatasetSpec] = (
    specs.MPI3D, specs.MPI3D_LEGACY), variant: str | None = None) -> records.Records:
  """Memory-maps an official MPI3D npz (one uncompressed member ``images``).

  Args:
    path: ``mpi3d_{toy,realistic,real}.npz``.
    candidates: the grids a file may hold; its length picks one (the current 6 x 6 release
      or the older 4 x 4 one by default).
    variant: toy, realistic or real; default from the file name, else real.

  Returns:
    `records.Records` whose ``images.raw`` is an ``np.memmap``; labels come from the flat
    index.
  """
  path = npz.existing(path)
  if variant is None:
    variant = next((v for v in MPI3D_VARIANTS if path.name == default_filename("mpi3d", v)),
                   "real")
  with npz.open_zip(path) as zf:
    npz.require_keys(path, zf, ("images",))
    member = npz.header(path, zf, "images")
    if member.data_offset is None:
      raise OfficialFileError(
          f"{path}: member images.npy is compressed (np.savez_compressed); the reader "
          f"memory-maps the images and a compressed member cannot be memory-mapped "
          f"(decompressing it would need ~{np.prod(member.shape) / 1e9:.1f} GB of RAM). "
          f"Use the file as published, or re-save it with np.savez.")
    npz.check_array(path, member, (None,) + specs.MPI3D.image_shape, "uint8", "u")
    n = member.shape[0]
    spec = next((c for c in candidates if c.num_images == n), None)
    if spec is None:
      allowed = " or ".join(f"{c.num_images:,} (grid {'x'.join(map(str, c.sizes))})"
                            for c in candidates)
      raise OfficialFileError(f"{path}: expected {allowed} images; found {n:,}.")
    view = pixels.image_view(path, zf, member, "nhwc")
  return records.Records(spec, spec.all_factor_indices(), view,
                         sources.parse("mpi3d", variant), (str(path),))


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
                         expected_spec: specs.DatasetSpec | None = None) -> records.Records:
  """Reads one part of a published benchmark split (``arr_0`` of two npz files).

  Args:
    directory: folder holding the split files.
    dataset: dsprites, shapes3d or mpi3d (MPI3D here is the real variant).
    variant: the split: random, composition, interpolation or extrapolation.
    part: train or test.
    expected_spec: the grid (default: the dataset's).

  Returns:
    `records.Records` in file order (not grid order); images converted to channel-last
    uint8, memory-mapped if stored uncompressed, else decompressed once into uint8.
  """
  spec = expected_spec or specs.get(dataset)
  paths = [pathlib.Path(directory) / n for n in benchmark_filenames(dataset, variant, part)]
  for p in paths:
    if not p.is_file():
      raise FileNotFoundError(
          f"benchmark split file not found: expected {p.name} at {p.absolute()}; it is "
          f"published at {_BENCHMARK_PAGES[specs.get(dataset).name]}.")
  images_path, labels_path = paths
  with npz.open_zip(labels_path) as zf:
    npz.require_keys(labels_path, zf, ("arr_0",))
    labels = npz.read_small(labels_path, zf, "arr_0")
  indices = _check_labels(labels_path, spec, labels)
  h, w, c = spec.image_shape
  layouts = {(c, h, w): "nchw", (h, w, c): "nhwc"}
  if c == 1:
    layouts[(h, w)] = "nhw"
  with npz.open_zip(images_path) as zf:
    npz.require_keys(images_path, zf, ("arr_0",))
    member = npz.header(images_path, zf, "arr_0")
    layout = layouts.get(member.shape[1:])
    if layout is None or member.shape[0] != len(indices):
      raise OfficialFileError(
          f"{images_path}: expected images of shape ({len(indices)}, {c}, {h}, {w}) "
          f"(channel-first, one per label in {labels_path.name}); found {member.shape}.")
    npz.check_array(images_path, member, member.shape, "numeric", "uifb")
    view = pixels.image_view(images_path, zf, member, layout, binary=spec.image_shape[-1] == 1)
  data = sources.parse(spec.name, sources.BENCHMARK_PREFIX + variant)
  return records.Records(spec, indices, view, data, (str(images_path), str(labels_path)))


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
  npz.check_array(path, npz.Member.of(labels, "arr_0"), (None, spec.num_factors),
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
