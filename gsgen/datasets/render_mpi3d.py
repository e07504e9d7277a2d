"""Procedural stand-in for MPI3D-toy: a robot arm holding an object, in pure JAX.

Contract: ``render`` is a pure, jitted function of factor indices (the older 4 x 4 grid's
indices render unchanged); its images stand in for the published data and are never the same
data. The scene: docs/datasets.md, "MPI3D".

Synopsis::

  import numpy as np
  from gsgen import specs
  from gsgen.datasets import procedural, render_mpi3d
  idx = specs.MPI3D.factor_indices(np.arange(8))        # int [8, 7]
  images = render_mpi3d.render(idx)                      # uint8 [8, 64, 64, 3]
  many = procedural.render_numpy("mpi3d", np.arange(5000))   # numpy, in chunks
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gsgen import specs

IMAGE_SIZE = 64
NUM_FACTORS = specs.MPI3D.num_factors

FLOOR_COLOR = np.array([52.0, 52.0, 52.0], np.float32)
# Indexed like the value tables of specs.MPI3D: white, green, red, blue, brown, olive.
OBJECT_COLORS = np.array([[220, 220, 220], [37, 145, 36], [200, 0, 0],
                          [41, 100, 191], [82, 51, 34], [118, 117, 47]], np.float32)
# Purple, sea green, salmon.
BACKGROUND_COLORS = np.array([[92, 68, 130], [67, 92, 88], [100, 72, 80]], np.float32)
BASE_COLOR = np.array([235.0, 235.0, 235.0], np.float32)
ARM_COLOR = np.array([185.0, 185.0, 190.0], np.float32)

# Camera: a pinhole at distance _CAM_DISTANCE from _CAM_TARGET, above it by the elevation.
_FOCAL = 120.0  # pixels
_CAM_TARGET = np.array([0.0, 0.62, 0.35], np.float32)
_CAM_DISTANCE = 4.5
_CAM_ELEVATION_DEG = np.array([30.0, 17.0, 5.0], np.float32)  # top, center, bottom

# Arm geometry: post from the floor to the shoulder, then one link to the object.
_SHOULDER = np.array([0.0, 0.55, 0.0], np.float32)
_LINK_LENGTH = 1.0
_POST_RADIUS = 0.07
_LINK_RADIUS = 0.05
_BASE_RADIUS = 0.38
# The ring is not part of the 3D scene: an image-space arc whose apex row and curvature
# follow the camera height (top, center, bottom), as a far ring seen from above would.
_RING_APEX_ROW = np.array([9.0, 15.0, 21.0], np.float32)
_RING_SEMI_Y = np.array([34.0, 26.0, 18.0], np.float32)
_RING_SEMI_X = 46.0
_RING_WIDTH = (9.0, 7.0)  # (horizontal, vertical) thickness in pixels
_HORIZONTAL_DEG = np.linspace(-60.0, 60.0, 40).astype(np.float32)
_VERTICAL_DEG = np.linspace(-20.0, 55.0, 40).astype(np.float32)
_OBJECT_SCALE = np.array([0.13, 0.19], np.float32)  # small, large (world units per unit)

# Light direction (towards the light) in camera coordinates: from the upper left, in front.
_LIGHT = np.array([-0.4, 0.6, -0.7], np.float32)
_LIGHT /= np.linalg.norm(_LIGHT)
_AMBIENT = 0.4

_SIDES = 12  # facets that stand in for the round sides of the cone and cylinder
_NUM_PLANES = _SIDES + 2
_NO_SPHERE = 1e3  # bounding sphere radius of the polyhedra: never the binding constraint


def _planes_to_table(planes):
  """Pads a list of (normal, offset) half-spaces ``n.p <= c`` to _NUM_PLANES rows."""
  normals = np.array([n for n, _ in planes], np.float64)
  offsets = np.array([c for _, c in planes], np.float64)
  norm = np.linalg.norm(normals, axis=1)
  normals, offsets = normals / norm[:, None], offsets / norm
  # Repeating a half-space leaves the intersection unchanged.
  reps = np.resize(np.arange(len(planes)), _NUM_PLANES)
  return normals[reps], offsets[reps]


def _prism(sides, radius, half_height, phase):
  planes = [((np.cos(a), 0.0, np.sin(a)), radius)
            for a in phase + 2 * np.pi * np.arange(sides) / sides]
  return planes + [((0.0, 1.0, 0.0), half_height), ((0.0, -1.0, 0.0), half_height)]


def _pyramid(sides, radius, half_height, phase):
  # Each side contains the apex (0, h, 0) and a base edge at apothem ``radius``.
  h = half_height
  planes = [((2 * h * np.cos(a), radius, 2 * h * np.sin(a)), radius * h)
            for a in phase + 2 * np.pi * np.arange(sides) / sides]
  return planes + [((0.0, -1.0, 0.0), h)]


def _shape_tables():
  """Half-spaces and bounding-sphere radius of each shape, in a unit-sized local frame."""
  shapes = [
      _pyramid(_SIDES, 0.8, 1.0, 0.0),                           # cone: slim, tall
      [((1.0, 0.0, 0.0), 0.75), ((-1.0, 0.0, 0.0), 0.75), ((0.0, 1.0, 0.0), 0.75),
       ((0.0, -1.0, 0.0), 0.75), ((0.0, 0.0, 1.0), 0.75), ((0.0, 0.0, -1.0), 0.75)],
      _prism(_SIDES, 0.75, 0.9, 0.0),                            # cylinder
      _prism(6, 0.95, 0.5, 0.0),                                 # hexagonal prism
      _pyramid(4, 1.0, 0.7, np.pi / 4),                          # pyramid: squat
      [((0.0, 1.0, 0.0), _NO_SPHERE)],                           # sphere: planes inert
  ]
  tables = [_planes_to_table(p) for p in shapes]
  normals = np.stack([n for n, _ in tables]).astype(np.float32)
  offsets = np.stack([c for _, c in tables]).astype(np.float32)
  radius = np.array([_NO_SPHERE] * 5 + [0.9], np.float32)
  return normals, offsets, radius


_SHAPE_NORMALS, _SHAPE_OFFSETS, _SHAPE_RADIUS = _shape_tables()

# Pixel centres; rows and columns stay separate vectors so that per-pixel terms are outer
# sums of a per-row and a per-column part (cheap, and XLA fuses them).
_PIX = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
_PIX_X = _PIX[None, :]
_PIX_Y = _PIX[:, None]
_BIG = 1e9
# Layers, back to front; each pixel shows one of them.
_FLOOR, _RING, _BASE, _ARM, _OBJECT = range(5)


def _rot_y(a):
  c, s = jnp.cos(a), jnp.sin(a)
  zero, one = jnp.zeros_like(a), jnp.ones_like(a)
  return jnp.array([[c, zero, s], [zero, one, zero], [-s, zero, c]])


def _rot_x(a):
  c, s = jnp.cos(a), jnp.sin(a)
  zero, one = jnp.zeros_like(a), jnp.ones_like(a)
  return jnp.array([[one, zero, zero], [zero, c, -s], [zero, s, c]])


def _camera(elevation):
  """Camera position and world-to-camera rotation (rows: right, up, forward)."""
  ce, se = jnp.cos(elevation), jnp.sin(elevation)
  position = jnp.asarray(_CAM_TARGET) + _CAM_DISTANCE * jnp.array([0.0, se, ce])
  rot = jnp.array([[1.0, 0.0, 0.0], [0.0, ce, -se], [0.0, -se, -ce]])
  return position, rot


def _project(p_cam):
  """Pixel coordinates (x, y) and depth of a camera-space point."""
  z = p_cam[2]
  return (IMAGE_SIZE / 2 + _FOCAL * p_cam[0] / z,
          IMAGE_SIZE / 2 - _FOCAL * p_cam[1] / z, z)


def _capsule(a, b, radius_px):
  """Coverage and a rounded-tube shading term of a 2D capsule from a to b (pixels)."""
  ax, ay = a
  dx, dy = b[0] - ax, b[1] - ay
  px, py = _PIX_X - ax, _PIX_Y - ay
  s = jnp.clip((px * dx + py * dy) / (dx * dx + dy * dy + 1e-6), 0.0, 1.0)
  ex, ey = px - s * dx, py - s * dy
  d2 = (ex * ex + ey * ey) / (radius_px * radius_px)
  return d2 <= 1.0, 1.0 - 0.3 * d2


def _shade(cos_light):
  return _AMBIENT + (1.0 - _AMBIENT) * jnp.maximum(cos_light, 0.0)


def _object(shape, scale, rot, center_cam):
  """Coverage and shading of the object, ray cast per pixel.

  The object is small and far compared to its size, so its rays are taken parallel to
  the optical axis (weak perspective, scaled by its centre's depth). Then each face
  plane's depth along a ray is affine in the pixel coordinates, with no per-pixel
  division, and whether a plane is where rays enter or leave is decided once per image.

  Args:
    shape: object_shape index.
    scale: world units per unit of the shape tables.
    rot: local-to-camera rotation of the object.
    center_cam: camera-space position of the object's centre.

  Returns:
    (hit [64, 64] bool, tone [64, 64] float).
  """
  normals = jnp.asarray(_SHAPE_NORMALS)[shape] @ rot.T            # [P, 3], camera space
  offsets = jnp.asarray(_SHAPE_OFFSETS)[shape] * scale             # relative to the centre
  center_x, center_y, depth = _project(center_cam)
  unit = depth / _FOCAL                                            # camera units per pixel
  # Offsets from the centre in the plane of the object: X = (x - cx) unit, Y = (cy - y) unit.
  nx, ny, nz = normals[:, 0], normals[:, 1], normals[:, 2]
  nz = jnp.where(nz < 0, jnp.minimum(nz, -1e-6), jnp.maximum(nz, 1e-6))
  # Depth of plane p along the ray: (c - nx X - ny Y) / nz = col_p * x + row_p(y).
  col = (-nx * unit / nz)[:, None] * _PIX[None, :]                                 # [P, x]
  row = ((ny * unit / nz)[:, None] * _PIX[None, :]  # the same centres, now as rows
         + ((offsets + nx * unit * center_x - ny * unit * center_y) / nz)[:, None])  # [P, y]
  entering = nz < 0
  enter_row = jnp.where(entering[:, None], row, -_BIG)
  leave_row = jnp.where(entering[:, None], _BIG, row)
  plane_shade = _shade(normals @ jnp.asarray(_LIGHT))
  radius = jnp.asarray(_SHAPE_RADIUS)[shape] * scale
  # A running maximum over the (few) planes, unrolled: one fused elementwise pass over the
  # image, where a reduction over a plane axis would materialise [P, 64, 64] per image.
  t_enter = jnp.full((IMAGE_SIZE, IMAGE_SIZE), -_BIG)
  t_leave = jnp.full((IMAGE_SIZE, IMAGE_SIZE), _BIG)
  plane_tone = jnp.zeros((IMAGE_SIZE, IMAGE_SIZE))
  for p in range(_NUM_PLANES):
    enter = enter_row[p][:, None] + col[p][None, :]
    plane_tone = jnp.where(enter > t_enter, plane_shade[p], plane_tone)
    t_enter = jnp.maximum(t_enter, enter)
    t_leave = jnp.minimum(t_leave, leave_row[p][:, None] + col[p][None, :])

  # The bounding sphere: the object itself for the sphere, far outside for polyhedra.
  dx = (_PIX_X - center_x) * unit
  dy = (center_y - _PIX_Y) * unit
  half_chord = jnp.sqrt(jnp.maximum(radius * radius - dx * dx - dy * dy, 0.0))
  light = jnp.asarray(_LIGHT)
  sphere_tone = _shade((dx * light[0] + dy * light[1] - half_chord * light[2]) / radius)
  hit = (half_chord > 0) & (jnp.maximum(t_enter, -half_chord)
                            <= jnp.minimum(t_leave, half_chord))
  tone = jnp.where(-half_chord >= t_enter, sphere_tone, plane_tone)
  return hit, tone


def _draw(idx):
  """Layer index and shading [64, 64] of every pixel, for one factor index vector [7]."""
  color, shape, size, height, background, horizontal, vertical = (idx[i] for i in range(7))
  cam_pos, cam_rot = _camera(jnp.deg2rad(jnp.asarray(_CAM_ELEVATION_DEG)[height]))
  to_cam = lambda p: cam_rot @ (p - cam_pos)

  # Ring band: the upper half of an elliptical annulus drawn in image space.
  semi_y = jnp.asarray(_RING_SEMI_Y)[height]
  ex = ((_PIX_X - IMAGE_SIZE / 2) / _RING_SEMI_X) ** 2
  ex_in = ((_PIX_X - IMAGE_SIZE / 2) / (_RING_SEMI_X - _RING_WIDTH[0])) ** 2
  dy = _PIX_Y - (jnp.asarray(_RING_APEX_ROW)[height] + semi_y)
  ring = ((ex + (dy / semi_y) ** 2 <= 1.0)
          & (ex_in + (dy / (semi_y - _RING_WIDTH[1])) ** 2 > 1.0) & (dy < 0))

  # Base: the floor disc under the arm, by intersecting each pixel's ray with the floor.
  ray_v = (IMAGE_SIZE / 2 - _PIX_Y) / _FOCAL
  ray_y = cam_rot[1, 1] * ray_v + cam_rot[2, 1]
  ray_z = cam_rot[1, 2] * ray_v + cam_rot[2, 2]
  t = jnp.where(ray_y < 0, -cam_pos[1] / jnp.minimum(ray_y, -1e-6), _BIG)
  floor_x = cam_pos[0] + t * (_PIX_X - IMAGE_SIZE / 2) / _FOCAL
  floor_z = cam_pos[2] + t * ray_z
  base = floor_x * floor_x + floor_z * floor_z <= _BASE_RADIUS ** 2

  # Arm: world-space joints projected, then drawn as 2D capsules of projected width.
  yaw = jnp.deg2rad(jnp.asarray(_HORIZONTAL_DEG)[horizontal])
  pitch = jnp.deg2rad(jnp.asarray(_VERTICAL_DEG)[vertical])
  link_dir = jnp.array([jnp.cos(pitch) * jnp.sin(yaw), jnp.sin(pitch),
                        jnp.cos(pitch) * jnp.cos(yaw)])
  shoulder = jnp.asarray(_SHOULDER)
  tip_cam = to_cam(shoulder + _LINK_LENGTH * link_dir)
  foot_px = _project(to_cam(jnp.zeros(3)))
  shoulder_px = _project(to_cam(shoulder))
  tip_px = _project(tip_cam)
  post, post_tone = _capsule(foot_px[:2], shoulder_px[:2],
                             _FOCAL * _POST_RADIUS / (0.5 * (foot_px[2] + shoulder_px[2])))
  link, link_tone = _capsule(shoulder_px[:2], tip_px[:2],
                             _FOCAL * _LINK_RADIUS / (0.5 * (shoulder_px[2] + tip_px[2])))
  arm = post | link
  arm_tone = jnp.where(link, link_tone, post_tone)

  # The object turns with the link, by half as much and offset so that the cube never
  # shows a single face head-on (its yaw stays within 15..75 degrees).
  rot = cam_rot @ _rot_y(0.5 * yaw + 0.78) @ _rot_x(0.35 - 0.6 * pitch)
  obj, obj_tone = _object(shape, jnp.asarray(_OBJECT_SCALE)[size], rot, tip_cam)

  # Painter's order: floor, ring, base, arm, object (the object is always in front of
  # the arm, which ends inside it).
  layer = jnp.where(obj, _OBJECT, jnp.where(arm, _ARM, jnp.where(
      base, _BASE, jnp.where(ring, _RING, _FLOOR)))).astype(jnp.int32)
  tone = jnp.where(obj, obj_tone, jnp.where(arm, arm_tone, 1.0))
  return layer, tone


def _palette(idx):
  """Colour of each layer [5, 3] of one factor index vector [7]."""
  return jnp.stack([jnp.asarray(FLOOR_COLOR), jnp.asarray(BACKGROUND_COLORS)[idx[4]],
                    jnp.asarray(BASE_COLOR), jnp.asarray(ARM_COLOR),
                    jnp.asarray(OBJECT_COLORS)[idx[0]]])


@jax.jit
def render(factor_indices):
  """Renders MPI3D-toy-like images from factor indices.

  Args:
    factor_indices: int array [batch, 7] of MPI3D factor indices (object_color,
      object_shape, object_size, camera_height, background_color, horizontal_axis,
      vertical_axis), as in ``specs.MPI3D``; indices of the older 4 x 4 grid
      (``specs.MPI3D_LEGACY``) mean the same and render the same.

  Returns:
    uint8 array [batch, 64, 64, 3]. Out-of-range indices are clamped, as JAX indexing
    does; ``procedural.render_numpy`` rejects them.

  Raises:
    ValueError: factor_indices is not [batch, 7].
  """
  idx = jnp.asarray(factor_indices, jnp.int32)
  if idx.ndim != 2 or idx.shape[1] != NUM_FACTORS:
    raise ValueError(f"expected factor indices of shape [batch, {NUM_FACTORS}], got "
                     f"{idx.shape}.")
  # Conditionals with two identical branches, as fusion barriers: without them XLA fuses
  # the per-pixel work into its consumers and repeats it for every colour channel, in a
  # loop over the interleaved RGB output that does not vectorise (3x slower on CPU).
  # Any predicate that XLA cannot fold will do.
  pred = jnp.all(idx >= 0)
  draw = jax.vmap(_draw)
  layer, tone = jax.lax.cond(pred, draw, draw, idx)
  palette = jax.vmap(_palette)(idx)
  planes = jax.lax.cond(pred, _color_planes, _color_planes, layer, tone, palette)
  return jnp.stack(planes, axis=-1)


def _color_planes(layer, tone, palette):
  """The R, G and B planes (uint8 [batch, 64, 64] each) of layer indices and shading."""
  palette = palette[:, None, None]                              # [batch, 1, 1, 5, 3]
  planes = []
  for c in range(3):
    value = palette[..., _FLOOR, c]
    for i in (_RING, _BASE, _ARM, _OBJECT):
      value = jnp.where(layer == i, palette[..., i, c], value)
    planes.append(jnp.clip(jnp.round(value * tone), 0, 255).astype(jnp.uint8))
  return tuple(planes)
