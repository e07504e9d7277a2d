"""Tests of the procedural MPI3D-toy renderer: format, scene layout, and that every factor
changes the image the way its name says."""

import jax
import numpy as np
import pytest

from gsgen import specs
from gsgen.datasets import procedural, render_mpi3d

SPEC = specs.MPI3D
# object_color, object_shape, object_size, camera_height, background_color,
# horizontal_axis, vertical_axis
POSE = (0, 1, 1, 1, 0, 20, 20)


def _render(rows):
  # One batch shape for the whole file: each new shape costs a compilation.
  return procedural.render_numpy(SPEC, factor_indices=np.asarray(rows, np.int32),
                                 batch_size=40)


def _with(factor, values, base=POSE):
  rows = np.tile(np.asarray(base), (len(values), 1))
  rows[:, factor] = values
  return rows


def _object_masks(rows):
  """Object pixels: those that change when only the object's colour changes."""
  rows = np.asarray(rows)
  recolored = rows.copy()
  recolored[:, 0] = np.where(rows[:, 0] == 0, 2, 0)  # white <-> red
  a, b = _render(rows).astype(int), _render(recolored).astype(int)
  return np.abs(a - b).max(-1) > 0


def _centroids(masks):
  rows, cols = np.indices(masks.shape[1:])
  count = masks.sum((1, 2))
  assert np.all(count > 0), "object not visible"
  return (masks * cols).sum((1, 2)) / count, (masks * rows).sum((1, 2)) / count


def _is_color(images, color, atol=2):
  return np.all(np.abs(images.astype(int) - np.asarray(color, int)) <= atol, axis=-1)


@pytest.fixture(scope="module")
def random_indices():
  rng = np.random.default_rng(0)
  return SPEC.factor_indices(rng.choice(SPEC.num_images, 200, replace=False))


@pytest.fixture(scope="module")
def random_images(random_indices):
  return _render(random_indices)


def test_shape_and_dtype(random_images):
  assert random_images.shape == (200, 64, 64, 3)
  assert random_images.dtype == np.uint8


def test_jit_matches_eager(random_indices):
  idx = random_indices[:2]
  with jax.disable_jit():
    eager = np.asarray(render_mpi3d.render(idx))
  np.testing.assert_array_equal(np.asarray(render_mpi3d.render(idx)), eager)


def test_bottom_corners_are_grey_floor(random_images):
  for corner in (random_images[:, -1, 0], random_images[:, -1, -1]):
    np.testing.assert_allclose(corner, np.full_like(corner, 52), atol=2)


@pytest.mark.parametrize("height", range(3))
def test_ring_band_has_background_color(height):
  # Arm swung far right and low, so it hides little of the ring.
  rows = _with(4, range(3), base=(0, 1, 0, height, 0, 39, 0))
  images = _render(rows)
  for image, color in zip(images, render_mpi3d.BACKGROUND_COLORS):
    band = _is_color(image, color)
    assert band.sum() > 300
    # A band across the upper-middle rows, curving down to the sides.
    band_rows = np.nonzero(band[:, 32])[0]
    assert 4 <= band_rows.min() and band_rows.max() <= 32
    assert band_rows.size >= 4  # thick
    side_rows = np.nonzero(band[:, 0])[0]
    assert side_rows.min() > band_rows.min()


def test_camera_height_moves_ring_rows():
  images = _render(_with(3, range(3), base=(0, 1, 0, 0, 1, 39, 0)))
  color = render_mpi3d.BACKGROUND_COLORS[1]
  top_rows = [np.nonzero(_is_color(image, color)[:, 32])[0].min() for image in images]
  # top, center, bottom: the ring sits lower in the image as the camera goes down.
  assert top_rows[0] < top_rows[1] < top_rows[2]


@pytest.mark.parametrize("color", range(6))
def test_object_color_appears(color):
  rows = _with(0, [color] * 6)
  rows[:, 1] = range(6)
  masks = _object_masks(rows)
  images = _render(rows).astype(float)
  target = render_mpi3d.OBJECT_COLORS[color]
  pixels = images[masks]
  assert len(pixels) > 6 * 40
  # Every object pixel is the object colour under some shading in [ambient, 1] ...
  scale = pixels @ target / (target @ target)
  residual = np.abs(pixels - scale[:, None] * target).max(-1)
  assert residual.max() <= 2.0
  assert scale.min() >= 0.35 and scale.max() <= 1.01
  # ... and the lit faces come close to the colour itself.
  assert scale.max() >= 0.85


def test_horizontal_axis_moves_object_sideways():
  for height in range(3):
    for vertical in (0, 20, 39):
      masks = _object_masks(_with(5, range(40), base=(0, 1, 0, height, 0, 0, vertical)))
      x, _ = _centroids(masks)
      assert np.all(np.diff(x) > 0), (height, vertical)
      assert x[-1] - x[0] > 20


def test_horizontal_axis_moves_object_in_depth():
  masks = _object_masks(_with(5, range(0, 40, 3), base=(0, 5, 1, 1, 0, 0, 10)))
  area = masks.sum((1, 2))
  # The link points at the camera halfway: the object is nearest, so largest, there.
  assert area[len(area) // 2] > area[0] and area[len(area) // 2] > area[-1]


def test_vertical_axis_raises_object():
  for height in range(3):
    for horizontal in (0, 20, 39):
      masks = _object_masks(_with(6, range(40), base=(0, 1, 0, height, 0, horizontal, 0)))
      _, y = _centroids(masks)
      assert np.all(np.diff(y) < 0), (height, horizontal)
      assert y[0] - y[-1] > 20


def test_large_objects_have_more_pixels():
  rows = np.array([[0, shape, size, 1, 0, 20, 20] for shape in range(6) for size in (0, 1)])
  area = _object_masks(rows).sum((1, 2)).reshape(6, 2)
  assert np.all(area[:, 1] > 1.5 * area[:, 0])


@pytest.mark.parametrize("size", range(2))
def test_shapes_have_different_silhouettes(size):
  masks = _object_masks(_with(1, range(6), base=(0, 0, size, 1, 0, 20, 20)))
  for i in range(6):
    for j in range(i):
      assert (masks[i] ^ masks[j]).sum() >= 8, (i, j)


def test_legacy_grid_renders_like_current_grid():
  legacy = specs.MPI3D_LEGACY
  rng = np.random.default_rng(1)
  idx = legacy.factor_indices(rng.choice(legacy.num_images, 16, replace=False))
  images = _render(idx)
  assert images.shape == (16, 64, 64, 3)
  # The same factor indices mean the same scene in both grids.
  np.testing.assert_array_equal(images, _render(SPEC.factor_indices(SPEC.flat_index(idx))))


def test_random_grid_points_are_distinct(random_images):
  assert len({image.tobytes() for image in random_images}) == len(random_images)


@pytest.mark.parametrize("factor", range(7))
def test_one_step_of_any_factor_changes_image(random_indices, random_images, factor):
  size = SPEC.sizes[factor]
  moved = random_indices[:60].copy()
  moved[:, factor] = np.where(moved[:, factor] + 1 < size, moved[:, factor] + 1,
                              moved[:, factor] - 1)
  changed = (_render(moved) != random_images[:60]).any(-1).sum((1, 2))
  assert changed.min() >= 10


def test_render_numpy_matches_render_and_pads(random_indices, random_images):
  # Three chunks, the last one padded (the batch size matches _render's: no recompilation).
  out = _render(random_indices[:85])
  assert out.shape == (85, 64, 64, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out, random_images[:85])
  np.testing.assert_array_equal(out[:2], np.asarray(render_mpi3d.render(random_indices[:2])))
  assert _render(random_indices[:0]).shape == (0, 64, 64, 3)


def test_render_numpy_rejects_bad_indices():
  with pytest.raises(ValueError, match="shape"):
    render_mpi3d.render(np.zeros((3, 6), np.int32))
  with pytest.raises(ValueError, match="shape"):
    _render(np.zeros((3, 6), np.int32))
  with pytest.raises(ValueError, match="range"):
    _render(np.array([[0, 6, 0, 0, 0, 0, 0]]))
