"""Tests of the procedural Shapes3D renderer: known answers and properties.

  python -m pytest tests/test_render_shapes3d.py -q
"""

import colorsys

import jax
import numpy as np
import pytest

from gsgen import specs
from gsgen.datasets import procedural
from gsgen.datasets import render_shapes3d

SPEC = specs.SHAPES3D
SKY = (153, 226, 249)
# floor_hue, wall_hue, object_hue, scale, shape, orientation
BASE = (0, 4, 7, 3, 2, 7)
BATCH = 64   # one compiled program for every test that goes through render_numpy


def _render(rows):
  return procedural.render_numpy("shapes3d", factor_indices=np.asarray(rows), batch_size=BATCH)


def _with(**changes):
  row = list(BASE)
  for name, value in changes.items():
    row[SPEC.factor_index(name)] = value
  return row


def _hue(rgb):
  return colorsys.rgb_to_hsv(*(np.asarray(rgb, np.float64) / 255.0))


def _hue_distance(a, b):
  d = abs(a - b) % 1.0
  return min(d, 1.0 - d)


def _object_mask(rows):
  """Pixels that change when only the object hue changes (red vs cyan)."""
  red = [list(r[:2]) + [0] + list(r[3:]) for r in rows]
  cyan = [list(r[:2]) + [5] + list(r[3:]) for r in rows]
  images = _render(red + cyan).astype(int)
  return np.abs(images[:len(rows)] - images[len(rows):]).sum(-1) > 0


def test_shape_dtype_and_sky():
  images = render_shapes3d.render(np.array([BASE, _with(shape=0)]))
  assert images.shape == (2, 64, 64, 3)
  assert images.dtype == np.uint8
  # The top rows are sky, exactly the published light blue.
  np.testing.assert_array_equal(np.asarray(images)[:, :4].reshape(-1, 3),
                                np.tile(SKY, (2 * 4 * 64, 1)))


def test_jit_equals_eager():
  idx = np.array([_with(shape=0, orientation=2), _with(shape=3, scale=7)])
  jitted = np.asarray(render_shapes3d.render(idx))
  with jax.disable_jit():
    eager = np.asarray(render_shapes3d.render(idx))
  np.testing.assert_array_equal(jitted, eager)


def test_render_numpy_matches_render_with_padding():
  rng = np.random.default_rng(0)
  idx = SPEC.factor_indices(rng.integers(0, SPEC.num_images, 70))   # 70 = 64 + 6 padded
  np.testing.assert_array_equal(_render(idx), np.asarray(render_shapes3d.render(idx)))
  assert _render(np.zeros((0, 6), int)).shape == (0, 64, 64, 3)


@pytest.mark.parametrize("batch", [1, 64, 70, 192])   # 192: coloured in three chunks of 64
def test_recoloured_renders_the_same_images_as_tracing_every_ray(batch):
  rng = np.random.default_rng(batch)
  idx = SPEC.factor_indices(rng.integers(0, SPEC.num_images, batch)).astype(np.int32)
  np.testing.assert_array_equal(np.asarray(render_shapes3d.render_recoloured(idx)),
                                np.asarray(render_shapes3d.render(idx)))


def test_recoloured_covers_every_geometry_and_hue_extreme():
  """Every one of the 480 geometries, with the first and last value of each hue."""
  geometry = np.stack(np.unravel_index(np.arange(480), SPEC.sizes[3:]), -1)
  hues = np.where((np.arange(480) % 2)[:, None] == 0, 0, np.asarray(SPEC.sizes[:3]) - 1)
  idx = np.concatenate([hues, geometry], -1).astype(np.int32)
  np.testing.assert_array_equal(np.asarray(render_shapes3d.render_recoloured(idx)),
                                np.asarray(render_shapes3d.render(idx)))
  table = render_shapes3d.geometry_table()
  assert table.shape == (480, 4, 64 * 64) and table.dtype == np.float32


@pytest.mark.parametrize("bad", [np.zeros((3, 5), int), np.array([[10, 0, 0, 0, 0, 0]]),
                                 np.array([[0, 0, 0, 0, 0, -1]])])
def test_render_numpy_rejects_bad_indices(bad):
  with pytest.raises(ValueError):
    procedural.render_numpy("shapes3d", factor_indices=bad)


def test_hues_colour_the_right_surfaces():
  values = SPEC.factors[0].values
  rows = ([_with(floor_hue=h) for h in range(10)] + [_with(wall_hue=h) for h in range(10)]
          + [_with(object_hue=h) for h in range(10)])
  images = _render(rows)
  floor, wall, obj = images[:10], images[10:20], images[20:]
  mask = _object_mask([BASE])[0]
  centre = np.argwhere(mask).mean(0).round().astype(int)
  assert mask[tuple(centre)]
  for h in range(10):
    # Bottom rows, away from the object and its shadow: the floor.
    for rgb in floor[h, 58:, 4:60].reshape(-1, 3):
      hue, sat, _ = _hue(rgb)
      assert _hue_distance(hue, values[h]) < 0.01 and sat > 0.99
    # Rows below the sky at both image borders: the two walls.
    for rgb in np.concatenate([wall[h, 18:24, :6], wall[h, 18:24, -6:]]).reshape(-1, 3):
      hue, sat, _ = _hue(rgb)
      assert _hue_distance(hue, values[h]) < 0.01 and sat > 0.99
    hue, sat, _ = _hue(obj[h, centre[0], centre[1]])
    assert _hue_distance(hue, values[h]) < 0.01 and sat > 0.99


def test_each_hue_changes_only_its_surface():
  images = _render([BASE, _with(floor_hue=5), _with(wall_hue=9), _with(object_hue=2)])
  changed = [np.abs(images[k].astype(int) - images[0]).sum(-1) > 0 for k in (1, 2, 3)]
  for mask in changed:
    assert mask.sum() > 100          # every hue factor shows
    assert not mask[:8].any()        # the sky never changes
  floor, wall, obj = changed
  # Only anti-aliased outline pixels mix two surfaces.
  assert (floor & wall).sum() < 64
  assert (floor & obj).sum() < 40 and (wall & obj).sum() < 40
  assert floor[-1].all() and not floor[16].any()
  assert wall[16, :5].all() and not wall[-1].any()


def test_orientation_slides_the_corner():
  # A small sphere leaves the corner visible in the wall rows above it.
  images = _render([_with(scale=0, orientation=o) for o in range(15)])
  row = images[:, 16].astype(int).sum(-1)                     # [15, 64]
  corner = np.abs(np.diff(row, axis=1)).argmax(1)
  assert np.all(np.diff(corner) > 0), corner
  assert corner[7] in (31, 32)                                # straight ahead at 0 degrees
  assert corner[0] < 20 and corner[-1] > 44


def test_object_area_grows_with_scale():
  rows = [_with(shape=s, scale=k) for s in range(4) for k in range(8)]
  area = _object_mask(rows).sum((1, 2)).reshape(4, 8)
  assert np.all(np.diff(area, axis=1) > 0), area
  assert np.all(area[:, 0] > 50)


def test_shapes_differ_in_silhouette():
  masks = _object_mask([_with(shape=s) for s in range(4)])
  for a in range(4):
    for b in range(a + 1, 4):
      assert (masks[a] ^ masks[b]).sum() > 20, (a, b)


def test_sphere_images_differ_by_orientation():
  images = _render([_with(shape=2, orientation=o) for o in range(15)])
  flat = images.reshape(15, -1)
  assert len({row.tobytes() for row in flat}) == 15


def test_distinct_factor_combinations_give_distinct_images():
  rng = np.random.default_rng(1)
  flat = rng.choice(SPEC.num_images, 200, replace=False)
  images = _render(SPEC.factor_indices(flat)).reshape(200, -1)
  assert len({row.tobytes() for row in images}) == 200
  # Not just one differing pixel: the closest pair differs in many.
  nearest = min(np.sum(images[i] != images[j])
                for i in range(200) for j in range(i + 1, 200))
  assert nearest > 100
