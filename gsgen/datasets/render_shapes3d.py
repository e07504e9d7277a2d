"""Procedural Shapes3D renderer: factor indices -> 64x64 RGB images, in pure JAX.

Contract: ``render`` traces every ray (the reference); ``render_recoloured``, which training
steps and preparation use, gives the same images from a per-process table of the 480
geometries. Both are jitted and stand in for the published images, never the same data. The
scene, shading and the recolouring: docs/datasets.md, "Shapes3D".

Synopsis::

  import numpy as np
  from gsgen import specs
  from gsgen.datasets import render_shapes3d
  idx = specs.SHAPES3D.factor_indices(np.arange(8))    # int [8, 6]
  images = render_shapes3d.render(idx)                 # uint8 [8, 64, 64, 3]
  same = render_shapes3d.render_recoloured(idx)        # equal, after a one-off table
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from gsgen import specs

_SPEC = specs.SHAPES3D
IMAGE_SIZE = 64
# Sub-samples per pixel side; 2 gives 2x2 supersampling (smooth object outlines).
SUPERSAMPLE = 2

# Scene, in world units: y up, object at the origin, camera at azimuth 0 on the +z axis.
_CAMERA_DISTANCE = 5.0
_CAMERA_HEIGHT = 1.5
_TARGET_HEIGHT = 0.6
_VERTICAL_FOV_DEG = 42.0
_CORNER_DISTANCE = 3.0     # the wall corner sits at (0, 0, -_CORNER_DISTANCE)
_WALL_HEIGHT = 1.9
_SKY_RGB = (153 / 255, 226 / 255, 249 / 255)
# Direction towards the light: up, to the left of the camera at azimuth 0, a bit in front.
_LIGHT = (-0.55, 1.0, 0.45)
_AMBIENT = 0.45
_FADE_DISTANCE = 9.0       # floor/wall brightness falls off with the distance from the camera
_FADE_FLOOR = 0.45         # brightness far away, relative to close by
_SHADOW_STRENGTH = 0.55
_SHADOW_SOFTNESS = 0.12    # world units over which the shadow edge fades

# Object sizes at scale 1 (every length is multiplied by the scale factor).
_CUBE_HALF = 0.5
_CYLINDER_RADIUS = 0.5
_CYLINDER_HEIGHT = 1.0
_SPHERE_RADIUS = 0.55
_CAPSULE_RADIUS = 0.4
_CAPSULE_LENGTH = 0.6      # length of the straight part between the two half spheres
_SHAPE_CUBE, _SHAPE_CYLINDER, _SHAPE_SPHERE, _SHAPE_CAPSULE = (
    _SPEC.factors[_SPEC.factor_index("shape")].value_names.index(name)
    for name in ("cube", "cylinder", "sphere", "capsule"))

_FAR = 1e6                 # "no hit"; finite so that 0 * _FAR stays 0


def _factor_table(name: str) -> np.ndarray:
  return np.asarray(_SPEC.factors[_SPEC.factor_index(name)].values, np.float32)


def _dot(a, b):
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _normalize(v):
  n = jnp.sqrt(_dot(v, v))
  return tuple(c / n for c in v)


def _hsv_full(hue):
  """RGB of HSV(hue, 1, 1) for a scalar hue in [0, 1)."""
  k = (jnp.asarray([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
  return 1.0 - jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def _subsample_offsets() -> np.ndarray:
  """Sub-sample offsets from the pixel centre in normalised image units, [k, 2]."""
  steps = (np.arange(SUPERSAMPLE, dtype=np.float32) + 0.5) / SUPERSAMPLE - 0.5
  ox, oy = np.meshgrid(steps, steps)
  return np.stack([ox.ravel(), oy.ravel()], -1) * (2.0 / IMAGE_SIZE)


def _camera_rays(azimuth, offset):
  """Camera position (3 scalars) and unit ray directions (3 arrays [64 * 64])."""
  origin = (_CAMERA_DISTANCE * jnp.sin(azimuth), jnp.float32(_CAMERA_HEIGHT),
            _CAMERA_DISTANCE * jnp.cos(azimuth))
  forward = _normalize((-origin[0], _TARGET_HEIGHT - origin[1], -origin[2]))
  # right = forward x up, up' = right x forward (up = +y).
  right = _normalize((-forward[2], jnp.float32(0.0), forward[0]))
  up = (right[1] * forward[2] - right[2] * forward[1],
        right[2] * forward[0] - right[0] * forward[2],
        right[0] * forward[1] - right[1] * forward[0])
  # Pixel centres in normalised image coordinates, x right and y up, row-major.
  centres = (np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5) / IMAGE_SIZE * 2.0 - 1.0
  tan = math.tan(math.radians(_VERTICAL_FOV_DEG) / 2)
  x = (jnp.asarray(np.tile(centres, IMAGE_SIZE)) + offset[0]) * tan
  y = (jnp.asarray(np.repeat(-centres, IMAGE_SIZE)) + offset[1]) * tan
  direction = _normalize(tuple(forward[i] + x * right[i] + y * up[i] for i in range(3)))
  return origin, direction


def _hit_sphere(o, d, centre_y, radius, enabled):
  oc = (o[0], o[1] - centre_y, o[2])
  b = _dot(oc, d)
  disc = b * b - (_dot(oc, oc) - radius * radius)
  t = -b - jnp.sqrt(jnp.maximum(disc, 0.0))
  hit = enabled & (disc > 0) & (t > 0)
  inv_r = 1.0 / jnp.maximum(radius, 1e-6)
  normal = ((o[0] + t * d[0]) * inv_r, (o[1] + t * d[1] - centre_y) * inv_r,
            (o[2] + t * d[2]) * inv_r)
  return jnp.where(hit, t, _FAR), normal


def _hit_cylinder(o, d, radius, y0, y1, enabled):
  """Vertical capped cylinder around the y axis, y in [y0, y1]."""
  a = jnp.maximum(d[0] * d[0] + d[2] * d[2], 1e-12)
  b = o[0] * d[0] + o[2] * d[2]
  c = o[0] * o[0] + o[2] * o[2] - radius * radius
  disc = b * b - a * c
  t_side = (-b - jnp.sqrt(jnp.maximum(disc, 0.0))) / a
  y_side = o[1] + t_side * d[1]
  side = enabled & (disc > 0) & (t_side > 0) & (y_side >= y0) & (y_side <= y1)
  # Only the cap facing the camera can be a first hit.
  cap_y = jnp.where(o[1] > y1, y1, y0)
  t_cap = (cap_y - o[1]) / jnp.where(jnp.abs(d[1]) < 1e-9, 1e-9, d[1])
  cx, cz = o[0] + t_cap * d[0], o[2] + t_cap * d[2]
  cap = enabled & (t_cap > 0) & (cx * cx + cz * cz <= radius * radius)
  t_side = jnp.where(side, t_side, _FAR)
  t_cap = jnp.where(cap, t_cap, _FAR)
  use_cap = t_cap < t_side
  inv_r = 1.0 / jnp.maximum(radius, 1e-6)
  zero = jnp.zeros_like(t_side)
  normal = (jnp.where(use_cap, zero, (o[0] + t_side * d[0]) * inv_r),
            jnp.where(use_cap, jnp.sign(o[1] - cap_y), zero),
            jnp.where(use_cap, zero, (o[2] + t_side * d[2]) * inv_r))
  return jnp.minimum(t_side, t_cap), normal


def _hit_box(o, d, half, enabled):
  """Axis-aligned cube standing on the floor: x, z in [-half, half], y in [0, 2 half]."""
  lo = (-half, 0.0, -half)
  hi = (half, 2.0 * half, half)
  near, far = [], []
  for i in range(3):
    di = jnp.where(jnp.abs(d[i]) < 1e-9, 1e-9, d[i])
    t1, t2 = (lo[i] - o[i]) / di, (hi[i] - o[i]) / di
    near.append(jnp.minimum(t1, t2))
    far.append(jnp.maximum(t1, t2))
  t_near = jnp.maximum(jnp.maximum(near[0], near[1]), near[2])
  t_far = jnp.minimum(jnp.minimum(far[0], far[1]), far[2])
  hit = enabled & (t_near < t_far) & (t_near > 0)
  # The face entered last is the one hit.
  normal = tuple(jnp.where(near[i] >= t_near, -jnp.sign(d[i]), 0.0) for i in range(3))
  return jnp.where(hit, t_near, _FAR), normal


def _nearest(hits):
  """The nearest of several (t, normal) hits."""
  t, normal = hits[0]
  for t_i, n_i in hits[1:]:
    closer = t_i < t
    t = jnp.where(closer, t_i, t)
    normal = tuple(jnp.where(closer, a, b) for a, b in zip(n_i, normal))
  return t, normal


def _segment_distance_2d(px, pz, vx, vz):
  """Distance from the origin to the 2-D segment p + s v, s in [0, 1]."""
  s = jnp.clip(-(px * vx + pz * vz) / jnp.maximum(vx * vx + vz * vz, 1e-12), 0.0, 1.0)
  qx, qz = px + s * vx, pz + s * vz
  return jnp.sqrt(qx * qx + qz * qz)


def _shadow_distance(px, pz, light, shape, size):
  """Signed distance between the shadow ray of floor point (px, 0, pz) and the object.

  Negative inside the shadow; used only to fade the shadow edge, so the cube's mitred
  corners (an underestimate of the true distance) do not matter.
  """
  lx, ly, lz = light
  cube_half, cyl_radius, cyl_height, ball_radius, ball_y0, ball_y1 = size
  # Prisms: the shadow is the cross-section swept along the light's horizontal direction
  # over the height of the prism.
  height = jnp.where(shape == _SHAPE_CUBE, 2.0 * cube_half, cyl_height)
  vx, vz = lx * height / ly, lz * height / ly
  cylinder = _segment_distance_2d(px, pz, vx, vz) - cyl_radius
  # A square swept by v is a hexagon: the square's four sides pushed out along v where v
  # points away from them, and two sides parallel to v.
  cube = jnp.maximum(jnp.maximum(px - cube_half - jnp.maximum(-vx, 0.0),
                                 -px - cube_half - jnp.maximum(vx, 0.0)),
                     jnp.maximum(pz - cube_half - jnp.maximum(-vz, 0.0),
                                 -pz - cube_half - jnp.maximum(vz, 0.0)))
  vn = math.hypot(lx, lz)
  nx, nz = -lz / vn, lx / vn
  reach = cube_half * (abs(nx) + abs(nz))
  cube = jnp.maximum(cube, jnp.abs(px * nx + pz * nz) - reach)
  # Sphere and capsule: distance from the ray p + t L to the segment of ball centres on
  # the y axis, minus the radius; the squared distance is convex in the segment's height,
  # so clamping the unconstrained optimum is exact.
  lh2 = lx * lx + lz * lz
  t_axis = -(px * lx + pz * lz) / lh2
  y = jnp.clip(t_axis * ly, ball_y0, ball_y1)
  # Distance from (0, y, 0) to the line through (px, 0, pz) with unit direction light.
  wx, wy, wz = -px, y, -pz
  along = wx * lx + wy * ly + wz * lz
  perp2 = wx * wx + wy * wy + wz * wz - along * along
  ball = jnp.sqrt(jnp.maximum(perp2, 0.0)) - ball_radius
  return jnp.where(shape == _SHAPE_CUBE, cube,
                   jnp.where(shape == _SHAPE_CYLINDER, cylinder, ball))


def _surface_weights_one(geometry, offset):
  """Weights [64 * 64, 4] (floor, walls, object, sky) of one sub-sample of each pixel.

  ``geometry`` holds the scale, shape and orientation indices, ``offset`` the sub-sample
  offset in normalised image units. A ray gets the shading factor of the surface it sees.
  """
  scale = jnp.asarray(_factor_table("scale"))[geometry[0]]
  shape = geometry[1]
  azimuth = jnp.deg2rad(jnp.asarray(_factor_table("orientation"))[geometry[2]])

  o, d = _camera_rays(azimuth, offset)
  light = tuple(c / math.sqrt(sum(x * x for x in _LIGHT)) for c in _LIGHT)

  # Room: the camera is inside the convex region bounded by the floor and the two walls,
  # so the first surface hit is the nearest plane the ray leaves through.
  t_floor = jnp.where(d[1] < 0, -o[1] / jnp.minimum(d[1], -1e-9), _FAR)
  s2 = 1.0 / math.sqrt(2.0)
  room = [t_floor]
  wall_normals = ((s2, 0.0, s2), (-s2, 0.0, s2))   # left wall, right wall; into the room
  for n in wall_normals:
    gap = n[0] * o[0] + n[2] * (o[2] + _CORNER_DISTANCE)
    nd = n[0] * d[0] + n[2] * d[2]
    room.append(jnp.where(nd < 0, -gap / jnp.minimum(nd, -1e-9), _FAR))
  t_room = jnp.minimum(jnp.minimum(room[0], room[1]), room[2])
  is_floor = room[0] <= t_room
  is_left = ~is_floor & (room[1] <= room[2])
  hx, hy, hz = (o[i] + t_room * d[i] for i in range(3))
  is_sky = ~is_floor & (hy > _WALL_HEIGHT)

  # Object pieces; the unused ones are disabled, which costs compute but keeps the
  # vmapped program free of per-image branches.
  is_capsule = shape == _SHAPE_CAPSULE
  cube_half = _CUBE_HALF * scale
  cyl_radius = jnp.where(is_capsule, _CAPSULE_RADIUS, _CYLINDER_RADIUS) * scale
  ball_radius = jnp.where(is_capsule, _CAPSULE_RADIUS, _SPHERE_RADIUS) * scale
  cyl_y0 = jnp.where(is_capsule, ball_radius, 0.0)
  cyl_y1 = jnp.where(is_capsule, ball_radius + _CAPSULE_LENGTH * scale,
                     _CYLINDER_HEIGHT * scale)
  ball_y1 = jnp.where(is_capsule, cyl_y1, ball_radius)
  t_obj, n_obj = _nearest([
      _hit_box(o, d, cube_half, shape == _SHAPE_CUBE),
      _hit_cylinder(o, d, cyl_radius, cyl_y0, cyl_y1,
                    (shape == _SHAPE_CYLINDER) | is_capsule),
      _hit_sphere(o, d, ball_radius, ball_radius,
                  (shape == _SHAPE_SPHERE) | is_capsule),
      _hit_sphere(o, d, ball_y1, ball_radius, is_capsule),
  ])
  is_object = t_obj < t_room

  # Light fades with the distance from the camera: the far floor and the corner are darker.
  fade = _FADE_FLOOR + (1.0 - _FADE_FLOOR) * jnp.exp(-jnp.square(t_room / _FADE_DISTANCE))
  sdf = _shadow_distance(hx, hz, light, shape,
                         (cube_half, cyl_radius, cyl_y1, ball_radius, ball_radius, ball_y1))
  shadow = 1.0 - _SHADOW_STRENGTH * jnp.clip(0.5 - sdf / (2 * _SHADOW_SOFTNESS), 0.0, 1.0)
  floor_shade = (_AMBIENT + (1 - _AMBIENT) * light[1]) * fade * shadow
  wall_lambert = [max(_dot(n, light), 0.0) for n in wall_normals]
  wall_shade = fade * (_AMBIENT + (1 - _AMBIENT) * jnp.where(is_left, wall_lambert[0],
                                                             wall_lambert[1]))
  obj_shade = _AMBIENT + (1 - _AMBIENT) * jnp.maximum(_dot(n_obj, light), 0.0)

  room_visible = ~is_object & ~is_sky
  return jnp.stack([
      jnp.where(room_visible & is_floor, floor_shade, 0.0),
      jnp.where(room_visible & ~is_floor, wall_shade, 0.0),
      jnp.where(is_object, obj_shade, 0.0),
      jnp.where(is_sky & ~is_object, 1.0, 0.0),
  ], axis=-1)


@jax.jit
def surface_weights(geometry_indices):
  """Per-pixel shading weights of each surface, averaged over the sub-samples.

  An image is linear in its surface colours, so these weights are all that the geometry
  (scale, shape, orientation) contributes; ``compose`` adds the hues.

  Args:
    geometry_indices: int array [batch, 3] of scale, shape and orientation indices
      (columns 3, 4, 5 of the Shapes3D factor indices).

  Returns:
    float32 array [batch, 64, 64, 4]: weights of floor, walls, object and sky. A pixel
    inside one surface has that surface's shading factor and zeros elsewhere.
  """
  geometry = jnp.asarray(geometry_indices).astype(jnp.int32)
  weights_batch = jax.vmap(_surface_weights_one, in_axes=(0, None))

  # One pass per sub-sample keeps the intermediates at 64 x 64 per image; evaluating all
  # sub-samples at once made them 4x larger and ran several times slower on CPU.
  def add_pass(total, offset):
    return total + weights_batch(geometry, offset), None

  offsets = _subsample_offsets()
  zeros = jnp.zeros((geometry.shape[0], IMAGE_SIZE * IMAGE_SIZE, 4), jnp.float32)
  total, _ = jax.lax.scan(add_pass, zeros, jnp.asarray(offsets))
  return total.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 4) / len(offsets)


def _colours(hue_indices):
  """RGB of floor, walls, object and sky [batch, 4, 3] from the three hue indices."""
  hue_idx = jnp.asarray(hue_indices).astype(jnp.int32)
  tables = [jnp.asarray(_factor_table(name))
            for name in ("floor_hue", "wall_hue", "object_hue")]
  colours = jnp.stack([jax.vmap(_hsv_full)(table[hue_idx[:, i]])
                       for i, table in enumerate(tables)], axis=1)        # [b, 3, 3]
  sky = jnp.broadcast_to(jnp.asarray(_SKY_RGB, jnp.float32), colours[:, :1].shape)
  return jnp.concatenate([colours, sky], axis=1)


@jax.jit
def compose(weights, hue_indices):
  """Colour surface weights with the floor, wall and object hues.

  Args:
    weights: float32 [batch, 64, 64, 4] from ``surface_weights``.
    hue_indices: int array [batch, 3] of floor, wall and object hue indices (columns 0,
      1, 2 of the Shapes3D factor indices).

  Returns:
    uint8 array [batch, 64, 64, 3].
  """
  planes = weights.reshape(weights.shape[0], IMAGE_SIZE * IMAGE_SIZE, 4).transpose(0, 2, 1)
  return _colour_planes(planes, hue_indices)


def _colour_planes(planes, hue_indices):
  """``compose`` for surface-major weights [batch, 4, 64 * 64]."""
  colours = _colours(hue_indices)                                         # [b, 4, 3]
  # Elementwise rather than a dot: no reduced-precision matmul on accelerators.
  rgb = sum(planes[:, s, None, :] * colours[:, s, :, None] for s in range(4))  # [b, 3, px]
  rgb = jnp.round(jnp.clip(rgb, 0.0, 1.0) * 255.0).astype(jnp.uint8)
  return rgb.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)


@jax.jit
def render(factor_indices):
  """Render Shapes3D-like images from factor indices.

  Args:
    factor_indices: integer array [batch, 6] of indices into the Shapes3D factor tables
      (floor_hue, wall_hue, object_hue, scale, shape, orientation), as in
      ``specs.SHAPES3D``.

  Returns:
    uint8 array [batch, 64, 64, 3], RGB in 0..255.
  """
  idx = jnp.asarray(factor_indices)
  return compose(surface_weights(idx[:, 3:]), idx[:, :3])


_GEOMETRY_SIZES = _SPEC.sizes[3:]
_NUM_GEOMETRIES = math.prod(_GEOMETRY_SIZES)
# Geometries per jitted call while building the table (480 = 4 x 120: one compilation).
_TABLE_CHUNK = 120
# Images coloured per step of a loop: larger batches are split into chunks of this many, which
# keeps the gathered weights in the CPU's cache (a whole batch of 512 is 32 MB).
_COLOUR_CHUNK = 64


@functools.cache
def geometry_table() -> np.ndarray:
  """The surface weights of all 480 geometries, computed once per process.

  Returns:
    float32 numpy array [480, 4, 64 * 64] (about 31 MB): geometry (flat index over scale,
    shape and orientation) x surface (floor, walls, object, sky, as in `surface_weights`) x
    pixel (row-major). Surface-major, so colouring runs over contiguous pixels.
  """
  # Eager even when first asked for while a jitted function is being traced.
  with jax.ensure_compile_time_eval():
    geometry = np.stack(np.unravel_index(np.arange(_NUM_GEOMETRIES), _GEOMETRY_SIZES), -1)
    chunks = [np.asarray(surface_weights(geometry[i:i + _TABLE_CHUNK].astype(np.int32)))
              for i in range(0, _NUM_GEOMETRIES, _TABLE_CHUNK)]
  weights = np.concatenate(chunks).reshape(_NUM_GEOMETRIES, IMAGE_SIZE * IMAGE_SIZE, 4)
  return np.ascontiguousarray(weights.transpose(0, 2, 1))


def _geometry_ids(factor_indices):
  """Flat geometry index (into `geometry_table`) of Shapes3D factor indices [batch, 6]."""
  scale, shape, orientation = (factor_indices[:, 3 + i] for i in range(3))
  return (scale * _GEOMETRY_SIZES[1] + shape) * _GEOMETRY_SIZES[2] + orientation


@jax.jit
def render_recoloured(factor_indices):
  """`render` by recolouring the precomputed weights of each geometry: the same images.

  What depends only on the geometry (scale, shape, orientation) is `geometry_table`,
  computed once per process and built into the compiled program; each call only gathers
  the weights of its geometries and colours them with its hues. This is the renderer that
  training steps use.

  Args:
    factor_indices: integer array [batch, 6] of Shapes3D factor indices, as for `render`.

  Returns:
    uint8 array [batch, 64, 64, 3], equal to ``render(factor_indices)``.
  """
  idx, table = jnp.asarray(factor_indices).astype(jnp.int32), jnp.asarray(geometry_table())

  def colour(chunk):
    return _colour_planes(table[_geometry_ids(chunk)], chunk[:, :3])

  batch = idx.shape[0]
  if batch <= _COLOUR_CHUNK or batch % _COLOUR_CHUNK:
    return colour(idx)
  images = jax.lax.map(colour, idx.reshape(batch // _COLOUR_CHUNK, _COLOUR_CHUNK, -1))
  return images.reshape((batch,) + images.shape[2:])
