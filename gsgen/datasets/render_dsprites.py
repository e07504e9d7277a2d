"""Procedural dSprites: a pure, jitted JAX renderer of factor indices.

Contract: ``render`` maps factor indices to the published recipe's images, pixels 0 or 255,
on the CPU or inside a training step alike. The recipe, the heart's exact test and which
images coincide: docs/datasets.md, "dSprites".

Synopsis::

  import numpy as np
  from gsgen import specs
  from gsgen.datasets import render_dsprites
  idx = specs.DSPRITES.factor_indices(np.arange(512))      # [512, 5]
  images = render_dsprites.render(idx)                       # jax uint8 [512, 64, 64, 1]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gsgen import specs

SIZE = 64
SQUARE_HALF_SIDE = 9.6
ELLIPSE_SEMI_AXES = (12.76, 7.215)
HEART_NUM_POINTS = 240
HEART_STAR_Y = -2.0  # A point of the heart's kernel; see docs/datasets.md.
# Bins of the pseudo-angle table: with 4096 bins no bin holds more than a couple of
# vertices (they crowd near the tip and the dimple), so a few fixed steps finish
# the lookup.
_NUM_BINS = 4096

_SHAPE, _SCALE, _ORIENTATION, _X, _Y = range(5)


def heart_polygon() -> np.ndarray:
  """The 240 heart vertices at scale 1, local coordinates with y up, float64 [240, 2]."""
  t = 2 * np.pi * np.arange(HEART_NUM_POINTS) / HEART_NUM_POINTS
  x = 9.59625 * np.sin(t) ** 3
  y = 0.66225 * (13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t)
                 - np.cos(4 * t)) + 1.4375
  return np.stack([x, y], axis=-1)


def _pseudo_angle(x, y):
  """A cheap stand-in for atan2(y, x) on x >= 0: in [-1, 1], increasing with angle."""
  return y / (x + abs(y))


def _heart_tables():
  """Edge lookup tables of the right half of the heart, as seen from the star point.

  Returns:
    A dict of numpy arrays: ``bin_start`` [bins] edge index at each bin's lower end;
    ``next_vertex`` [edges + steps] pseudo-angle of the vertex ending each edge
    (+inf past the last edge); ``edges`` [edges, 3] (nx, ny, d) with a folded point q
    relative to the star point inside the edge's half-plane iff nx qx + ny qy < d;
    ``steps`` how many vertices one bin holds at most.
  """
  half = heart_polygon()[:HEART_NUM_POINTS // 2 + 1]  # t in [0, pi]: x >= 0.
  half = half[::-1] - np.array([0.0, HEART_STAR_Y])  # Tip first: angle increases.
  half[:, 0] = np.abs(half[:, 0])  # sin^3(pi) is 1e-48, not 0.
  angle = _pseudo_angle(half[:, 0], half[:, 1])
  if not np.all(np.diff(angle) > 0):
    raise AssertionError("the heart is not star-shaped around its star point")
  num_edges = len(half) - 1
  inner = angle[1:-1]  # Vertices between edges; edge j starts after j of them.
  lows = -1.0 + 2.0 * np.arange(_NUM_BINS) / _NUM_BINS
  bin_start = np.searchsorted(inner, lows, side="left")  # Count of inner < low.
  per_bin = np.bincount(
      np.clip(np.floor((inner + 1) * _NUM_BINS / 2).astype(int), 0, _NUM_BINS - 1),
      minlength=_NUM_BINS)
  steps = int(per_bin.max())
  next_vertex = np.concatenate([inner, np.full(steps + 1, np.inf)])
  a, b = half[:-1], half[1:]
  normal = np.stack([b[:, 1] - a[:, 1], a[:, 0] - b[:, 0]], axis=-1)
  offset = (normal * a).sum(-1)
  # The star point (the origin here) is inside: orient every half-plane to hold it.
  flip = np.where(offset > 0, 1.0, -1.0)
  edges = np.concatenate([normal * flip[:, None], (offset * flip)[:, None]], axis=-1)
  if len(edges) != num_edges or not np.all(edges[:, 2] > 0):
    raise AssertionError("the heart's star point is not strictly inside every edge")
  return dict(bin_start=bin_start.astype(np.int32),
              next_vertex=next_vertex.astype(np.float32),
              edges=edges.astype(np.float32), steps=steps)


_HEART = _heart_tables()


def _value_tables():
  """Per-index constants from the spec's value tables, computed in float64."""
  spec = specs.DSPRITES
  scale = np.asarray(spec.factors[_SCALE].values, np.float64)
  # Reduced modulo 2 pi so orientation 2 pi turns by exactly nothing, like 0.
  angle = np.mod(np.asarray(spec.factors[_ORIENTATION].values, np.float64), 2 * np.pi)
  x_centre = 16.0 + 32.0 * np.asarray(spec.factors[_X].values, np.float64)
  y_centre = 16.0 + 32.0 * np.asarray(spec.factors[_Y].values, np.float64)
  as32 = lambda v: np.asarray(v, np.float32)
  return dict(inv_scale=as32(1.0 / scale), cos=as32(np.cos(angle)),
              sin=as32(np.sin(angle)), x_centre=as32(x_centre), y_centre=as32(y_centre))


_VALUES = _value_tables()

# The shapes are tested on a WINDOW x WINDOW square of pixels around the centre, the rest of
# the image left black: a quarter of the pixels, and the heart's table lookups were most of
# the time. The window holds every pixel whose centre lies within MARGIN of the shape's
# centre on both axes, and no shape reaches that far (checked below).
WINDOW = 32
MARGIN = WINDOW // 2 - 1.5


def _window_origin(centre):
  """The first pixel of the window on an axis: its centres span at least ``centre +-
  MARGIN`` (or reach the image's edge)."""
  start = jnp.floor(centre).astype(jnp.int32) - (WINDOW // 2 - 1)
  return jnp.clip(start, 0, SIZE - WINDOW)


def _largest_extent() -> float:
  """The farthest any shape reaches from its centre, in pixels, at the largest scale."""
  radius = max(SQUARE_HALF_SIDE * np.sqrt(2), max(ELLIPSE_SEMI_AXES),
               float(np.hypot(*heart_polygon().T).max()))
  return radius * max(specs.DSPRITES.factors[_SCALE].values)


if not _largest_extent() < MARGIN:
  raise AssertionError("a shape reaches past the rendering window; widen WINDOW")


def _render_one(idx):
  """uint8 [64, 64, 1] image of one int vector of 5 factor indices."""
  v = {k: jnp.asarray(t) for k, t in _VALUES.items()}
  cos, sin = v["cos"][idx[_ORIENTATION]], v["sin"][idx[_ORIENTATION]]
  inv_scale = v["inv_scale"][idx[_SCALE]]
  x_centre, y_centre = v["x_centre"][idx[_X]], v["y_centre"][idx[_Y]]
  top, left = _window_origin(y_centre), _window_origin(x_centre)
  offsets = jnp.arange(WINDOW, dtype=jnp.int32)
  # Pixel centres as in the whole image (integers plus a half: exact in float32).
  dx = ((left + offsets).astype(jnp.float32) + 0.5 - x_centre)[None, :]
  dy = (y_centre - ((top + offsets).astype(jnp.float32) + 0.5))[:, None]  # Rows grow down.
  # Undo the counter-clockwise turn (in y-up coordinates) and the scaling, so the
  # pixel can be tested against the fixed unit-scale shape.
  lx = (cos * dx + sin * dy) * inv_scale
  ly = (cos * dy - sin * dx) * inv_scale

  square = jnp.maximum(jnp.abs(lx), jnp.abs(ly)) < SQUARE_HALF_SIDE
  ax, ay = ELLIPSE_SEMI_AXES
  ellipse = jnp.square(lx * (1.0 / ax)) + jnp.square(ly * (1.0 / ay)) < 1.0

  qx, qy = jnp.abs(lx), ly - HEART_STAR_Y
  denom = qx + jnp.abs(qy)
  angle = jnp.where(denom > 0, qy / jnp.where(denom > 0, denom, 1.0), 0.0)
  bin_ = jnp.clip(jnp.floor((angle + 1.0) * (_NUM_BINS / 2)).astype(jnp.int32),
                  0, _NUM_BINS - 1)
  edge = jnp.asarray(_HEART["bin_start"])[bin_]
  next_vertex = jnp.asarray(_HEART["next_vertex"])
  for _ in range(_HEART["steps"]):
    edge = edge + (next_vertex[edge] <= angle).astype(jnp.int32)
  nx, ny, d = jnp.moveaxis(jnp.asarray(_HEART["edges"])[edge], -1, 0)
  heart = nx * qx + ny * qy < d

  inside = jnp.select([idx[_SHAPE] == 0, idx[_SHAPE] == 1], [square, ellipse], heart)
  window = jnp.where(inside, jnp.uint8(255), jnp.uint8(0))
  image = jax.lax.dynamic_update_slice(jnp.zeros((SIZE, SIZE), jnp.uint8), window, (top, left))
  return image[..., None]


@jax.jit
def render(factor_indices: jax.Array) -> jax.Array:
  """Renders dSprites images of factor indices.

  Args:
    factor_indices: int array [batch, 5] (shape, scale, orientation, x_position,
      y_position), each within ``specs.DSPRITES.sizes``. Being jitted, this does not
      check ranges: out-of-range indices are clamped like any JAX gather.

  Returns:
    uint8 array [batch, 64, 64, 1] holding 0 or 255.
  """
  return jax.vmap(_render_one)(jnp.asarray(factor_indices, jnp.int32))
