"""Tests of gsgen.datasets.official on tiny fake files in the official formats.

Run: python -m pytest tests/test_official.py -q
"""

import dataclasses
import io
import os
import resource
import struct

import h5py
import numpy as np
import pytest

from gsgen.datasets import official
from gsgen import specs

Error = official.OfficialFileError


def _reduced(spec, sizes):
  """The spec with each factor cut to its first ``sizes[i]`` values."""
  factors = tuple(
      dataclasses.replace(f, values=f.values[:n],
                          value_names=None if f.value_names is None else f.value_names[:n])
      for f, n in zip(spec.factors, sizes))
  return dataclasses.replace(spec, factors=factors)


DSPRITES = _reduced(specs.DSPRITES, (3, 2, 2, 2, 2))          # 48 images
SHAPES3D = _reduced(specs.SHAPES3D, (2, 2, 1, 2, 2, 3))        # 48 images
MPI3D = _reduced(specs.MPI3D, (1, 1, 2, 1, 1, 2, 3))           # 12 images


def _images(n, channels, high=256, seed=0):
  return np.random.default_rng(seed).integers(0, high, (n, 64, 64, channels), np.uint8)


def _write_dsprites(path, spec=DSPRITES, imgs=None, classes=None, values=None,
                    compressed=True, drop=(), metadata=True):
  grid = spec.all_factor_indices()
  n = len(grid)
  arrays = {
      "imgs": _images(n, 1, high=2)[..., 0] if imgs is None else imgs,
      "latents_classes": (np.concatenate([np.zeros((n, 1), np.int64), grid], 1)
                          if classes is None else classes),
      "latents_values": (np.concatenate([np.ones((n, 1)), spec.values(grid)], 1)
                         if values is None else values),
  }
  if metadata:
    arrays["metadata"] = np.array({"description": "fake", "latents_sizes": spec.sizes},
                                  dtype=object)
  arrays = {k: v for k, v in arrays.items() if k not in drop}
  (np.savez_compressed if compressed else np.savez)(path, **arrays)
  return arrays


def _write_shapes3d(path, spec=SHAPES3D, labels=None, images=None, **kwargs):
  grid = spec.all_factor_indices()
  if labels is None:
    # The published labels carry float noise, e.g. -30.000000000000004.
    noise = np.random.default_rng(1).normal(0, 1e-9, grid.shape)
    labels = spec.values(grid) + noise
  images = _images(len(grid), 3) if images is None else images
  with h5py.File(path, "w") as f:
    f.create_dataset("images", data=images, **kwargs)
    f.create_dataset("labels", data=labels)
  return images, labels


def _npy_header(shape, dtype=np.uint8):
  buf = io.BytesIO()
  np.lib.format.write_array_header_1_0(
      buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False, "shape": tuple(shape)})
  return buf.getvalue()


def _write_stored_zip64(path, name, header, data_size, member_size=None):
  """A zip64 archive with one uncompressed member: ``header`` then a hole of zeros.

  The data region is skipped with seek, so on file systems with sparse files a
  multi-gigabyte member costs no disk space. ``member_size`` is the size the zip
  headers claim (default: the true size).
  """
  member_size = len(header) + data_size if member_size is None else member_size
  name = name.encode()
  extra = struct.pack("<HHQQ", 1, 16, member_size, member_size)
  with open(path, "wb") as f:
    f.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0, 0, 0, 0, 0,
                        0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra)))
    f.write(name + extra + header)
    f.seek(member_size - len(header), os.SEEK_CUR)
    cd_offset = f.tell()
    f.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0, 0, 0, 0, 0,
                        0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0))
    f.write(name + extra)
    cd_size = f.tell() - cd_offset
    eocd64 = f.tell()
    f.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1,
                        cd_size, cd_offset))
    f.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd64, 1))
    f.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, 0xFFFFFFFF,
                        0xFFFFFFFF, 0))


def _truncate(path, keep):
  with open(path, "r+b") as f:
    f.truncate(int(os.path.getsize(path) * keep))


# ----------------------------------------------------------------------------- file names


def test_default_filename_and_find(tmp_path):
  assert official.default_filename("dsprites") == (
      "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")
  assert official.default_filename("shapes3d") == "3dshapes.h5"
  assert official.default_filename("mpi3d") == "mpi3d_real.npz"
  assert official.default_filename("mpi3d", "toy") == "mpi3d_toy.npz"
  with pytest.raises(ValueError, match="toy, realistic, real"):
    official.default_filename("mpi3d", "cartoon")
  with pytest.raises(ValueError, match="no variants"):
    official.default_filename("shapes3d", "real")
  with pytest.raises(FileNotFoundError) as e:
    official.find_official_file("mpi3d", tmp_path, "toy")
  msg = str(e.value)
  assert "mpi3d_toy.npz" in msg and str(tmp_path.absolute()) in msg and "procedural" in msg
  (tmp_path / "3dshapes.h5").touch()
  assert official.find_official_file("shapes3d", tmp_path) == tmp_path / "3dshapes.h5"


def test_benchmark_filenames():
  assert official.benchmark_filenames("mpi3d", "extrapolation", "test") == (
      "mpi3d_extrapolation_test_images.npz", "mpi3d_extrapolation_test_labels.npz")
  with pytest.raises(ValueError, match="extrapolation"):
    official.benchmark_filenames("dsprites", "extrapolate", "test")
  with pytest.raises(ValueError, match="train"):
    official.benchmark_filenames("dsprites", "random", "val")


@pytest.mark.parametrize("reader", [official.read_dsprites, official.read_shapes3d,
                                    official.read_mpi3d])
def test_missing_file_names_the_path(tmp_path, reader):
  with pytest.raises(FileNotFoundError, match="nothing_here"):
    reader(tmp_path / "nothing_here")


# ----------------------------------------------------------------------------- dSprites


@pytest.mark.parametrize("compressed", [True, False])
def test_dsprites_round_trip(tmp_path, compressed):
  path = tmp_path / "d.npz"
  written = _write_dsprites(path, compressed=compressed)
  arrays = official.read_dsprites(path, DSPRITES)
  assert arrays.data_source == "official" and arrays.files == (str(path),)
  assert arrays.images.shape == (48, 64, 64, 1) and len(arrays) == 48
  np.testing.assert_array_equal(arrays.images[:], written["imgs"][..., None] * 255)
  assert set(np.unique(arrays.images[:]).tolist()) == {0, 255}
  np.testing.assert_array_equal(arrays.factor_indices, written["latents_classes"][:, 1:])
  np.testing.assert_array_equal(arrays.flat_indices, np.arange(48))
  # A stored member is memory-mapped, a compressed one decompressed once.
  assert isinstance(arrays.images.raw, np.memmap) != compressed
  assert official.dsprites_metadata(path)["latents_sizes"] == DSPRITES.sizes


def test_dsprites_accepts_0_255_and_no_metadata(tmp_path):
  path = tmp_path / "d.npz"
  imgs = _images(48, 1, high=2)[..., 0] * 255
  _write_dsprites(path, imgs=imgs, metadata=False)
  np.testing.assert_array_equal(official.read_dsprites(path, DSPRITES).images[:][..., 0], imgs)


def _dsprites_case(tmp_path, **kwargs):
  path = tmp_path / "d.npz"
  _write_dsprites(path, **kwargs)
  return path


def test_dsprites_errors(tmp_path):
  grid = DSPRITES.all_factor_indices()
  colour = np.zeros((48, 1), np.int64)
  cases = [
      (dict(drop=("latents_classes",)), "missing latents_classes"),
      (dict(imgs=np.zeros((48, 32, 32), np.uint8)), r"imgs should have shape \(48, 64, 64\)"),
      (dict(imgs=np.zeros((48, 64, 64), np.float32)), "imgs should be uint8; found float32"),
      (dict(imgs=np.full((48, 64, 64), 7, np.uint8)), "must be 0/1 or 0/255"),
      (dict(classes=np.concatenate([colour, grid[:, :4]], 1)), "latents_classes should "
       r"have shape \(48, 6\)"),
      (dict(classes=np.concatenate([np.arange(48)[:, None] % 2, grid], 1)),
       "column 0 .colour. should be constant"),
      (dict(classes=np.concatenate([colour, grid[::-1]], 1)),
       r"not in grid order.*record 0 holds \[2, 1, 1, 1, 1\], expected \[0, 0, 0, 0, 0\]"),
      (dict(values=np.concatenate([np.ones((48, 1)), DSPRITES.values(grid) + [0, 0.05, 0, 0, 0]],
                                  1)), "latents_values disagree.*factor scale .off by up to 0.05"),
  ]
  for kwargs, message in cases:
    path = _dsprites_case(tmp_path, **kwargs)
    with pytest.raises(Error, match=message) as e:
      official.read_dsprites(path, DSPRITES)
    assert str(path) in str(e.value)
  with pytest.raises(Error, match="48, 64, 64.*found .48, 64, 64.|should have shape"):
    official.read_dsprites(_dsprites_case(tmp_path), specs.DSPRITES)  # full grid expected


def test_dsprites_truncated(tmp_path):
  path = _dsprites_case(tmp_path)
  _truncate(path, 0.6)
  with pytest.raises(Error, match="truncated") as e:
    official.read_dsprites(path, DSPRITES)
  assert str(path) in str(e.value)


# ----------------------------------------------------------------------------- Shapes3D


@pytest.mark.parametrize("kwargs", [{}, {"compression": "gzip", "chunks": (4, 64, 64, 3)}])
def test_shapes3d_round_trip(tmp_path, kwargs):
  path = tmp_path / "3dshapes.h5"
  labels = SHAPES3D.values(SHAPES3D.all_factor_indices())
  labels[:, 5] += 4e-15  # -30.000000000000004 as in the published file
  images, _ = _write_shapes3d(path, labels=labels, **kwargs)
  arrays = official.read_shapes3d(path, SHAPES3D)
  np.testing.assert_array_equal(arrays.factor_indices, SHAPES3D.all_factor_indices())
  # Contiguous h5 data is memory-mapped; chunked data is read through h5py.
  assert isinstance(arrays.images.raw, np.memmap) == (not kwargs)
  view = arrays.images
  np.testing.assert_array_equal(view[:], images)
  np.testing.assert_array_equal(view[5], images[5])
  np.testing.assert_array_equal(view[-1], images[-1])
  np.testing.assert_array_equal(view[10:2:-3], images[10:2:-3])
  idx = np.array([[7, 3], [7, 40]])  # unsorted, repeated, 2-d
  np.testing.assert_array_equal(view[idx], images[idx])
  mask = np.arange(48) % 5 == 0
  np.testing.assert_array_equal(view[mask], images[mask])
  assert view[np.array([], np.int64)].shape == (0, 64, 64, 3)
  np.testing.assert_array_equal(np.asarray(view), images)
  batch = view[:4]
  assert type(batch) is np.ndarray and batch.flags.writeable
  batch[:] = 0  # a copy: the view still reads the file's pixels
  np.testing.assert_array_equal(view[:4], images[:4])
  with pytest.raises(IndexError):
    view[48]
  with pytest.raises(IndexError):
    view[np.array([0.5])]
  with pytest.raises(IndexError, match="image axis only"):
    view[:, 0]


def test_shapes3d_errors(tmp_path):
  grid = SHAPES3D.all_factor_indices()
  values = SHAPES3D.values(grid)
  off_grid = values.copy()
  off_grid[3, 0] = 0.05  # half way between two hues
  swapped = values.copy()
  swapped[[4, 5]] = swapped[[5, 4]]
  cases = [
      (dict(labels=off_grid), "not on the value grid.*floor_hue"),
      (dict(labels=swapped), r"not in grid order.*record 4 holds \[0, 0, 0, 0, 1, 2\], "
       r"expected \[0, 0, 0, 0, 1, 1\]; 2 of 48"),
      (dict(labels=values[:, :5]), r"labels should have shape \(48, 6\)"),
      (dict(labels=values[:40]), r"labels should have shape \(48, 6\)"),
      (dict(images=_images(48, 1)), r"images should have shape \(48, 64, 64, 3\)"),
      (dict(images=_images(48, 3).astype(np.float32)), "images should be uint8; found float32"),
  ]
  for kwargs, message in cases:
    path = tmp_path / "3dshapes.h5"
    _write_shapes3d(path, **kwargs)
    with pytest.raises(Error, match=message) as e:
      official.read_shapes3d(path, SHAPES3D)
    assert str(path) in str(e.value)

  path = tmp_path / "nolabels.h5"
  with h5py.File(path, "w") as f:
    f.create_dataset("images", data=_images(48, 3))
    f.create_dataset("factors", data=values)
  with pytest.raises(Error, match=r"missing labels, found \['factors', 'images'\]"):
    official.read_shapes3d(path, SHAPES3D)


def test_shapes3d_truncated(tmp_path):
  path = tmp_path / "3dshapes.h5"
  _write_shapes3d(path)
  _truncate(path, 0.5)
  with pytest.raises(Error, match="truncated") as e:
    official.read_shapes3d(path, SHAPES3D)
  assert str(path) in str(e.value)


# ----------------------------------------------------------------------------- MPI3D


def test_mpi3d_round_trip_is_memory_mapped(tmp_path):
  path = tmp_path / "mpi3d_toy.npz"
  images = _images(12, 3)
  np.savez(path, images=images)  # np.savez writes zip64 extra fields in the local header
  arrays = official.read_mpi3d(path, candidates=(MPI3D,))
  assert arrays.spec is MPI3D
  assert isinstance(arrays.images.raw, np.memmap)
  assert os.fspath(arrays.images.raw.filename) == os.fspath(path.resolve())
  np.testing.assert_array_equal(arrays.images[:], images)
  np.testing.assert_array_equal(arrays.images[[11, 0]], images[[11, 0]])
  np.testing.assert_array_equal(arrays.factor_indices, MPI3D.all_factor_indices())


def _sparse_files_supported(tmp_path):
  probe = tmp_path / "probe"
  with open(probe, "wb") as f:
    f.seek(1 << 30)
    f.write(b"x")
  sparse = os.stat(probe).st_blocks * 512 < (1 << 20)
  probe.unlink()
  return sparse


def test_mpi3d_full_size_legacy_file_is_not_loaded(tmp_path):
  """A genuine 460,800-image zip64 file (5.7 GB, sparse) is accepted and only mapped."""
  if not _sparse_files_supported(tmp_path):
    pytest.skip("needs a file system with sparse files")
  path = tmp_path / "mpi3d_real.npz"
  n = specs.MPI3D_LEGACY.num_images
  _write_stored_zip64(path, "images.npy", _npy_header((n, 64, 64, 3)), n * 64 * 64 * 3)
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  arrays = official.read_mpi3d(path)  # the default candidates: the real grids
  assert arrays.spec is specs.MPI3D_LEGACY and len(arrays.images) == n
  assert isinstance(arrays.images.raw, np.memmap)
  assert arrays.images[-1].shape == (64, 64, 3) and not arrays.images[-1].any()
  # ru_maxrss is in KiB: far below the 5.7 GB a full read would take.
  assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 300_000
  np.testing.assert_array_equal(arrays.factor_indices[-1], np.array(specs.MPI3D_LEGACY.sizes) - 1)


def test_mpi3d_errors(tmp_path):
  path = tmp_path / "mpi3d_real.npz"
  np.savez(path, images=_images(5, 3))
  with pytest.raises(Error, match=r"expected 1,036,800 \(grid 6x6x2x3x3x40x40\) or "
                     r"460,800 \(grid 4x4x2x3x3x40x40\) images; found 5") as e:
    official.read_mpi3d(path)
  assert str(path) in str(e.value)
  cases = [
      (dict(images=_images(12, 3)), np.savez_compressed, "is compressed.*cannot be memory-mapped"),
      (dict(images=_images(12, 3).astype(np.float32)), np.savez, "should be uint8; found float32"),
      (dict(images=_images(12, 1)), np.savez, r"should have shape \(N, 64, 64, 3\)"),
      (dict(imgs=_images(12, 3)), np.savez, r"missing images, found \['imgs'\]"),
      (dict(images=np.array([{"a": 1}] * 12, dtype=object)), np.savez, "refusing to unpickle"),
  ]
  for arrays, save, message in cases:
    save(path, **arrays)
    with pytest.raises(Error, match=message) as e:
      official.read_mpi3d(path, candidates=(MPI3D,))
    assert str(path) in str(e.value)


def test_mpi3d_truncated(tmp_path):
  path = tmp_path / "mpi3d_real.npz"
  np.savez(path, images=_images(12, 3))
  _truncate(path, 0.9)
  with pytest.raises(Error, match="truncated"):
    official.read_mpi3d(path, candidates=(MPI3D,))
  # A member shorter than its .npy header says.
  header = _npy_header((12, 64, 64, 3))
  _write_stored_zip64(path, "images.npy", header, 5 * 12288)
  with pytest.raises(Error, match=r"images.npy is truncated: .*\(12, 64, 64, 3\)") as e:
    official.read_mpi3d(path, candidates=(MPI3D,))
  assert str(path) in str(e.value)


# ----------------------------------------------------------------------------- benchmark splits


def _write_split(directory, dataset, images, labels, save=np.savez):
  names = official.benchmark_filenames(dataset, "extrapolation", "test")
  save(directory / names[0], images)
  save(directory / names[1], labels)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_benchmark_split_round_trip(tmp_path, save):
  order = np.random.default_rng(2).permutation(48)[:30]
  labels = SHAPES3D.all_factor_indices()[order]
  images = _images(30, 3)
  _write_split(tmp_path, "shapes3d", images.transpose(0, 3, 1, 2), labels, save)
  arrays = official.read_benchmark_split(tmp_path, "shapes3d", "extrapolation", "test",
                                         SHAPES3D)
  np.testing.assert_array_equal(arrays.images[:], images)  # channel-first -> last
  np.testing.assert_array_equal(arrays.images[3], images[3])
  np.testing.assert_array_equal(arrays.factor_indices, labels)
  np.testing.assert_array_equal(arrays.flat_indices, order)
  assert len(arrays.files) == 2 and arrays.data_source == "official"


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
@pytest.mark.parametrize("dtype,high", [(np.uint8, 1), (np.uint8, 255), (np.float32, 1.0),
                                        (np.float64, 255.0)])
def test_benchmark_split_dsprites_pixels(tmp_path, save, dtype, high):
  binary = _images(48, 1, high=2).transpose(0, 3, 1, 2)
  _write_split(tmp_path, "dsprites", (binary * high).astype(dtype),
               DSPRITES.all_factor_indices(), save)
  arrays = official.read_benchmark_split(tmp_path, "dsprites", "extrapolation", "test",
                                         DSPRITES)
  out = arrays.images[:]
  assert out.dtype == np.uint8 and out.shape == (48, 64, 64, 1)
  np.testing.assert_array_equal(out, binary.transpose(0, 2, 3, 1) * 255)


def test_benchmark_split_errors(tmp_path):
  grid = SHAPES3D.all_factor_indices()
  chw = _images(48, 3).transpose(0, 3, 1, 2)
  out_of_range = grid.copy()
  out_of_range[7, 5] = 3
  cases = [
      (chw[:40], grid, r"images.npz: expected images of shape \(48, 3, 64, 64\).*found "
       r"\(40, 3, 64, 64\)"),
      (chw[:, :, :32], grid, r"images.npz: expected images of shape"),
      (chw, grid[:, :5], r"labels.npz: arr_0 should have shape \(N, 6\)"),
      (chw, out_of_range, r"labels.npz: labels outside the grid.*row 7 is \[0, 0, 0, 1, 0, 3\]"),
      (chw, grid + 0.5, "labels.npz: labels should be integer factor indices"),
      (chw, np.concatenate([grid[:47], grid[:1]]), "1 grid points appear more than once"),
      (chw.astype(np.float32) * 2, grid, r"pixel values should lie in \[0, 255\]"),
  ]
  for images, labels, message in cases:
    _write_split(tmp_path, "shapes3d", images, labels)
    with pytest.raises(Error, match=message):
      official.read_benchmark_split(tmp_path, "shapes3d", "extrapolation", "test", SHAPES3D)
  with pytest.raises(FileNotFoundError, match="mpi3d_random_train_images.npz.*zenodo"):
    official.read_benchmark_split(tmp_path, "mpi3d", "random", "train")


# ----------------------------------------------------------------------------- every pixel


def _stray_pixel_file(tmp_path, sizes, compressed, sampled_rows):
  """A 0/1 dSprites file with one pixel 7 in a row the opening sample does not see."""
  spec = specs.DSPRITES.subgrid(sizes)
  imgs = _images(spec.num_images, 1, high=2)[..., 0]
  row = next(r for r in range(1, spec.num_images) if r not in set(sampled_rows(spec)))
  imgs[row, 10, 20] = 7
  path = tmp_path / "dsprites.npz"
  _write_dsprites(path, spec, imgs=imgs, compressed=compressed)
  return path, spec, row, imgs


def test_a_stray_pixel_in_an_unsampled_row_is_refused_when_read(tmp_path):
  # A stored member is memory-mapped; opening samples 64 rows to tell 0/1 from 0/255.
  path, spec, row, imgs = _stray_pixel_file(
      tmp_path, (3, 2, 4, 4, 4), compressed=False,
      sampled_rows=lambda s: np.linspace(0, s.num_images - 1, 64).astype(np.int64))
  recs = official.read_dsprites(path, spec)
  clean = np.delete(np.arange(len(recs)), row)
  np.testing.assert_array_equal(recs.images[clean], imgs[clean][..., None] * 255)
  for index in (row, slice(None), [0, row], np.arange(len(recs)) == row):
    with pytest.raises(Error, match=f"record {row} holds pixel value 7; binary") as e:
      recs.images[index]
    assert str(path) in str(e.value)
  with pytest.raises(Error, match=f"record {row} holds pixel value 7"):
    recs.subset([row]).images[0]


def test_a_stray_pixel_past_the_first_block_of_a_compressed_file(tmp_path):
  # Opening a compressed member samples its first 1,024 rows, then converts every block.
  path, spec, row, _ = _stray_pixel_file(
      tmp_path, (3, 2, 4, 8, 8), compressed=True, sampled_rows=lambda s: range(1024))
  with pytest.raises(Error, match=f"record {row} holds pixel value 7") as e:
    official.read_dsprites(path, spec)
  assert str(path) in str(e.value)


def test_float_pixels_outside_the_sampled_range_are_refused(tmp_path):
  spec = specs.SHAPES3D.subgrid((2, 2, 2, 2, 2, 3))  # 96 images, 64 sampled on opening
  sampled = set(np.linspace(0, 95, 64).astype(np.int64).tolist())
  row = max(set(range(96)) - sampled)
  chw = _images(96, 3).transpose(0, 3, 1, 2).astype(np.float32) / 255  # floats in [0, 1]
  chw[row, 0, 5, 5] = 3.0
  names = official.benchmark_filenames("shapes3d", "random", "test")
  np.savez(tmp_path / names[0], chw)
  np.savez(tmp_path / names[1], spec.all_factor_indices())
  recs = official.read_benchmark_split(tmp_path, "shapes3d", "random", "test", spec)
  np.testing.assert_array_equal(recs.images[:row], np.rint(
      chw[:row].transpose(0, 2, 3, 1) * 255).astype(np.uint8))  # scaled by 255
  with pytest.raises(Error, match=rf"record {row} holds pixel value 3.0; pixel values should "
                                  rf"lie in \[0, 1\]"):
    recs.images[row]
