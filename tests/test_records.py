"""Tests of the one records type and the one lazy image view, over every kind of storage."""

import h5py
import numpy as np
import pytest

from gsgen import specs
from gsgen.datasets import records
from gsgen.datasets import sources

GRID = specs.DSPRITES.subgrid((3, 2, 2, 2, 2))  # 48 points
DATA = sources.parse("dsprites", "procedural:stored")


def _images(n=48, channels=1, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 4, 4, channels), np.uint8)


class _RowReader:
  """Stands in for prepared TFDS records: rows read by sorted unique ids, reads counted."""

  def __init__(self, images):
    self.images, self.calls = images, []

  def __len__(self):
    return len(self.images)

  def read_rows(self, ids):
    ids = np.asarray(ids)
    assert np.all(np.diff(ids) > 0), "rows are read sorted and once each"
    self.calls.append(ids.tolist())
    return self.images[ids]


def _views(tmp_path, images):
  """The same images behind each kind of storage the view reads."""
  path = tmp_path / "x.h5"
  with h5py.File(path, "w") as f:
    f.create_dataset("images", data=images, chunks=(4,) + images.shape[1:])
  h5 = h5py.File(path, "r")
  mm_path = tmp_path / "x.bin"
  images.tofile(mm_path)
  mm = np.memmap(mm_path, np.uint8, "r", shape=images.shape)
  return {"array": records.ImageView(images.copy()), "memmap": records.ImageView(mm),
          "h5py": records.ImageView(h5["images"]),
          "reader": records.ImageView(_RowReader(images), images.shape[1:])}


@pytest.mark.parametrize("kind", ["array", "memmap", "h5py", "reader"])
def test_indexing_is_numpy_indexing(tmp_path, kind):
  images = _images()
  view = _views(tmp_path, images)[kind]
  assert len(view) == 48 and view.shape == (48, 4, 4, 1) and view.dtype == np.uint8
  for index in (5, -1, np.int64(7), slice(None), slice(3, 40, 4), slice(30, 2, -3),
                slice(-5, None), np.array([[7, 3], [7, 40]]), np.array([-1, 0, -48]),
                np.arange(48) % 5 == 0, [2, 2, 2]):
    np.testing.assert_array_equal(view[index], images[index])
  assert view[np.array([], np.int64)].shape == (0, 4, 4, 1)
  assert view[[]].shape == (0, 4, 4, 1)
  np.testing.assert_array_equal(np.asarray(view), images)
  batch = view[:4]
  assert type(batch) is np.ndarray and batch.flags.writeable
  batch[:] = 0  # a fresh array: the view still reads the stored pixels
  np.testing.assert_array_equal(view[:4], images[:4])
  for bad in (48, -49, np.array([0.5]), np.ones(47, bool)):
    with pytest.raises(IndexError):
      view[bad]
  with pytest.raises(IndexError, match="image axis only"):
    view[:, 0]


@pytest.mark.parametrize("kind", ["array", "memmap", "h5py", "reader"])
def test_subsets_compose_and_stay_lazy(tmp_path, kind):
  images = _images()
  view = _views(tmp_path, images)[kind]
  outer = np.array([40, 3, 17, 3, 9, 0])
  inner = np.array([5, 1, 2])
  sub = view.subset(outer).subset(inner)
  assert sub.raw is view.raw and len(sub) == 3 and sub.shape == (3, 4, 4, 1)
  np.testing.assert_array_equal(sub[:], images[outer][inner])
  np.testing.assert_array_equal(sub[-1], images[outer[inner[-1]]])
  np.testing.assert_array_equal(view.subset(np.arange(48) < 3)[:], images[:3])


def test_reader_rows_are_read_once_in_order():
  images = _images()
  reader = _RowReader(images)
  view = records.ImageView(reader, images.shape[1:])
  np.testing.assert_array_equal(view[[9, 2, 9, 30, 2]], images[[9, 2, 9, 30, 2]])
  assert reader.calls == [[2, 9, 30]]


def test_conversion_sees_the_stored_rows():
  stored = np.arange(48 * 3 * 2 * 2, dtype=np.float32).reshape(48, 3, 2, 2)  # channel-first
  seen = []

  def convert(block, rows):
    seen.append(np.asarray(rows).tolist())
    return np.moveaxis(block, 1, -1).astype(np.uint8)

  view = records.ImageView(stored, (2, 2, 3), convert)
  np.testing.assert_array_equal(view[[4, 1]], np.moveaxis(stored[[4, 1]], 1, -1))
  view.subset([10, 20])[1]
  assert seen == [[4, 1], [20]]
  with pytest.raises(ValueError, match="float32, not uint8"):
    records.ImageView(stored)


def test_records_hold_a_private_read_only_copy():
  idx = GRID.all_factor_indices().copy().astype(np.int32)
  recs = records.Records(GRID, idx, records.ImageView(_images()), DATA, ("a",))
  assert recs.factor_indices.dtype == np.int64 and not recs.factor_indices.flags.writeable
  idx[0, 0] = 2  # the caller's array is not the records' array
  assert recs.factor_indices[0, 0] == 0
  assert len(recs) == 48 and recs.data_source == "procedural" and recs.files == ("a",)
  np.testing.assert_array_equal(recs.flat_indices, np.arange(48))
  part = recs.subset(np.array([7, 2]))
  np.testing.assert_array_equal(part.flat_indices, [7, 2])
  np.testing.assert_array_equal(part.images[:], _images()[[7, 2]])
  assert not part.factor_indices.flags.writeable and part.data is DATA
  rendered = records.Records(GRID, GRID.all_factor_indices(), None, DATA)
  assert rendered.subset(np.arange(48) % 2 == 0).images is None
  assert len(rendered.subset(np.arange(48) % 2 == 0)) == 24


def test_records_refuse_mismatched_rows():
  with pytest.raises(ValueError, match=r"shape \[n, 5\]"):
    records.Records(GRID, np.zeros((48, 4), np.int64), None, DATA)
  with pytest.raises(ValueError, match="47 images for 48 factor rows"):
    records.Records(GRID, GRID.all_factor_indices(), records.ImageView(_images(47)), DATA)
