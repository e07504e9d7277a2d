"""Factor tables of the three benchmark datasets, as plain frozen data.

Synopsis::

  from gsgen import specs
  spec = specs.get("dsprites")
  spec.sizes                         # (3, 6, 40, 32, 32)
  idx = spec.factor_indices(12345)   # array([0, 0, 9, 20, 25])
  spec.flat_index(idx)               # 12345
  spec.targets(idx)                  # idx / (sizes - 1), in [0, 1]

Contract: every dataset is the full Cartesian grid of the factors below, each combination
once, in row-major (flat) order, the published files' order; targets are normalised indices
in [0, 1] (docs/metrics.md, "Factor grid, flat order, targets").

dSprites (737,280 images, 64x64x1, binary), cut ratio 0.2:
  0 shape        3   square, ellipse, heart                 categorical, never split
  1 scale        6   linspace(0.5, 1.0, 6)                  split
  2 orientation  40  linspace(0, 2*pi, 40)                  split
  3 x_position   32  linspace(0, 1, 32)                     split
  4 y_position   32  linspace(0, 1, 32)                     split

Shapes3D (480,000 images, 64x64x3), cut ratio 0.15:
  0 floor_hue    10  0.0, 0.1, ..., 0.9 (HSV hue)           split
  1 wall_hue     10  same                                   split
  2 object_hue   10  same                                   split
  3 scale        8   linspace(0.75, 1.25, 8)                split
  4 shape        4   cube, cylinder, sphere, capsule        categorical, never split
  5 orientation  15  linspace(-30, 30, 15) degrees azimuth  split

MPI3D (1,036,800 images, 64x64x3), cut ratio 0.1:
  0 object_color      6   white, green, red, blue, brown, olive   split (by index)
  1 object_shape      6   cone, cube, cylinder, hexagonal prism,  never split
                          pyramid, sphere
  2 object_size       2   small, large                            never split
  3 camera_height     3   top, center, bottom                     split
  4 background_color  3   purple, sea green, salmon               split (by index)
  5 horizontal_axis   40  arm rotation about the vertical axis    split
  6 vertical_axis     40  arm elevation                           split
The older MPI3D release (460,800 images) has 4 colours and 4 shapes; ``mpi3d_for_num_images``
picks the grid from a file's length.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Factor:
  """One generative factor.

  Attributes:
    name: factor name as used in metric keys (``rsquared_<name>``).
    values: the value of each index, in index order.
    categorical: whether the values are categories rather than a quantity.
    split: whether the splits hold out values of this factor.
    value_names: human-readable names of categorical values, or None.
  """
  name: str
  values: tuple[float, ...]
  categorical: bool = False
  split: bool = True
  value_names: tuple[str, ...] | None = None

  @property
  def size(self) -> int:
    return len(self.values)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A dataset's factor grid and image format.

  Attributes:
    name: dataset name (``dsprites``, ``shapes3d``, ``mpi3d``).
    factors: the factors in grid order.
    cut_ratio: the ratio ``r`` that sizes the held-out bands of the splits.
    image_shape: (height, width, channels) of one image.
  """
  name: str
  factors: tuple[Factor, ...]
  cut_ratio: float
  image_shape: tuple[int, int, int]

  @property
  def factor_names(self) -> tuple[str, ...]:
    return tuple(f.name for f in self.factors)

  @property
  def sizes(self) -> tuple[int, ...]:
    return tuple(f.size for f in self.factors)

  @property
  def num_factors(self) -> int:
    return len(self.factors)

  @property
  def num_images(self) -> int:
    return math.prod(self.sizes)

  @property
  def split_factors(self) -> tuple[int, ...]:
    """Positions of the factors whose values the splits hold out."""
    return tuple(i for i, f in enumerate(self.factors) if f.split)

  @property
  def categorical(self) -> np.ndarray:
    """Boolean vector, True for categorical factors."""
    return np.array([f.categorical for f in self.factors])

  @property
  def strides(self) -> tuple[int, ...]:
    """Flat-index stride of each factor (row-major, last factor fastest)."""
    sizes = self.sizes
    return tuple(math.prod(sizes[i + 1:]) for i in range(len(sizes)))

  def factor_index(self, name: str) -> int:
    """Position of the factor called ``name``."""
    if name not in self.factor_names:
      raise ValueError(f"{self.name} has no factor {name!r}; its factors are "
                       f"{', '.join(self.factor_names)}.")
    return self.factor_names.index(name)

  def flat_index(self, factor_indices):
    """Flat grid index of factor indices.

    Args:
      factor_indices: integer array ``[..., num_factors]`` (numpy or jax).

    Returns:
      Integer array ``[...]``: ``sum(idx[i] * prod(sizes[i+1:]))``.
    """
    strides = np.asarray(self.strides, dtype=np.int64)
    if isinstance(factor_indices, np.ndarray) or np.isscalar(factor_indices):
      return (np.asarray(factor_indices, np.int64) * strides).sum(-1)
    # jax arrays stay jax arrays (int32 is enough: the largest grid has ~1e6 points).
    return (factor_indices * strides.astype(factor_indices.dtype)).sum(-1)

  def factor_indices(self, flat_index) -> np.ndarray:
    """Factor indices ``[..., num_factors]`` of flat grid indices ``[...]``."""
    flat = np.asarray(flat_index, dtype=np.int64)
    if np.any(flat < 0) or np.any(flat >= self.num_images):
      raise ValueError(f"flat index out of range [0, {self.num_images}) for {self.name}.")
    return np.stack(np.unravel_index(flat, self.sizes), axis=-1).astype(np.int64)

  def values(self, factor_indices) -> np.ndarray:
    """Factor values ``[..., num_factors]`` (float64) of factor indices."""
    idx = np.asarray(factor_indices, dtype=np.int64)
    return np.stack([np.asarray(f.values, np.float64)[idx[..., i]]
                     for i, f in enumerate(self.factors)], axis=-1)

  def indices_from_values(self, values, atol: float = 1e-3) -> np.ndarray:
    """Factor indices of factor values, by nearest entry of each value table.

    Args:
      values: float array ``[..., num_factors]``.
      atol: largest accepted distance to a table entry.

    Returns:
      int64 array of the same shape.

    Raises:
      ValueError: a value is further than ``atol`` from every table entry.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[-1:] != (self.num_factors,):
      raise ValueError(f"expected values of shape [..., {self.num_factors}] for "
                       f"{self.name}, got {values.shape}.")
    out = np.empty(values.shape, np.int64)
    for i, f in enumerate(self.factors):
      table = np.asarray(f.values, np.float64)
      dist = np.abs(values[..., i, None] - table)
      out[..., i] = dist.argmin(-1)
      worst = dist.min(-1).max(initial=0.0)
      if worst > atol:
        raise ValueError(f"{self.name} factor {f.name}: a value is {worst:.3g} away from "
                         f"its value table {table.tolist()}.")
    return out

  def targets(self, factor_indices):
    """Normalised targets ``idx / (size - 1)`` (float32), numpy or jax in, same out."""
    scale = 1.0 / (np.asarray(self.sizes, np.float32) - 1.0)
    if isinstance(factor_indices, np.ndarray) or isinstance(factor_indices, (list, tuple)):
      return np.asarray(factor_indices, np.float32) * scale
    return factor_indices.astype(np.float32) * scale

  def subgrid(self, sizes) -> DatasetSpec:
    """The same dataset on the first ``sizes[i]`` values of each factor.

    Indices keep their meaning (a renderer draws them as on the full grid), so a subgrid is
    a small, fast stand-in for tests and smoke runs.

    Args:
      sizes: one size per factor, each at least 2 and at most the full size.
    """
    sizes = tuple(int(n) for n in sizes)
    if len(sizes) != self.num_factors or any(
        not 2 <= n <= f.size for n, f in zip(sizes, self.factors)):
      raise ValueError(f"subgrid sizes for {self.name} need one size in [2, full size] per "
                       f"factor, full sizes {self.sizes}; got {sizes}.")
    return dataclasses.replace(self, factors=tuple(
        dataclasses.replace(f, values=f.values[:n],
                            value_names=f.value_names and f.value_names[:n])
        for f, n in zip(self.factors, sizes)))

  def all_factor_indices(self) -> np.ndarray:
    """Factor indices of the whole grid in flat order, ``[num_images, num_factors]``."""
    return _grid(self.sizes)

  def grid_mean(self) -> np.ndarray:
    """Mean of each normalised target over the full grid (0.5 for every factor)."""
    return np.full(self.num_factors, 0.5)

  def grid_variance(self) -> np.ndarray:
    """Variance of each normalised target over the full grid.

    Each factor is uniform over its indices on a full grid, so the variance of
    ``idx / (n - 1)`` is ``(n^2 - 1) / 12 / (n - 1)^2 = (n + 1) / (12 (n - 1))``.
    """
    n = np.asarray(self.sizes, np.float64)
    return (n + 1.0) / (12.0 * (n - 1.0))


@functools.lru_cache(maxsize=8)
def _grid(sizes: tuple[int, ...]) -> np.ndarray:
  grid = np.stack(np.unravel_index(np.arange(math.prod(sizes)), sizes), -1)
  grid = grid.astype(np.int64)
  grid.flags.writeable = False
  return grid


def _linspace(start, stop, num):
  return tuple(float(v) for v in np.linspace(start, stop, num))


def _categories(names):
  return tuple(float(i) for i in range(len(names)))


_DSPRITES_SHAPES = ("square", "ellipse", "heart")
_SHAPES3D_SHAPES = ("cube", "cylinder", "sphere", "capsule")
_MPI3D_COLORS = ("white", "green", "red", "blue", "brown", "olive")
_MPI3D_SHAPES = ("cone", "cube", "cylinder", "hexagonal prism", "pyramid", "sphere")

DSPRITES = DatasetSpec(
    name="dsprites",
    factors=(
        # The published latents_values hold 1, 2, 3 for the shapes.
        Factor("shape", (1.0, 2.0, 3.0), categorical=True, split=False,
               value_names=_DSPRITES_SHAPES),
        Factor("scale", _linspace(0.5, 1.0, 6)),
        Factor("orientation", _linspace(0.0, 2 * np.pi, 40)),
        Factor("x_position", _linspace(0.0, 1.0, 32)),
        Factor("y_position", _linspace(0.0, 1.0, 32)),
    ),
    cut_ratio=0.2,
    image_shape=(64, 64, 1),
)

_HUES = tuple(i / 10 for i in range(10))
SHAPES3D = DatasetSpec(
    name="shapes3d",
    factors=(
        Factor("floor_hue", _HUES),
        Factor("wall_hue", _HUES),
        Factor("object_hue", _HUES),
        Factor("scale", _linspace(0.75, 1.25, 8)),
        Factor("shape", _categories(_SHAPES3D_SHAPES), categorical=True, split=False,
               value_names=_SHAPES3D_SHAPES),
        Factor("orientation", _linspace(-30.0, 30.0, 15)),
    ),
    cut_ratio=0.15,
    image_shape=(64, 64, 3),
)


def _mpi3d(num_colors: int, num_shapes: int) -> DatasetSpec:
  colors, shapes = _MPI3D_COLORS[:num_colors], _MPI3D_SHAPES[:num_shapes]
  heights = ("top", "center", "bottom")
  backgrounds = ("purple", "sea green", "salmon")
  return DatasetSpec(
      name="mpi3d",
      factors=(
          # Colours are categories, but the benchmark splits them by index.
          Factor("object_color", _categories(colors), categorical=True, split=True,
                 value_names=colors),
          Factor("object_shape", _categories(shapes), categorical=True, split=False,
                 value_names=shapes),
          # Small < large is an order, so size counts as a quantity.
          Factor("object_size", (0.0, 1.0), split=False, value_names=("small", "large")),
          Factor("camera_height", _categories(heights), split=True, value_names=heights),
          Factor("background_color", _categories(backgrounds), categorical=True,
                 split=True, value_names=backgrounds),
          Factor("horizontal_axis", _categories(range(40))),
          Factor("vertical_axis", _categories(range(40))),
      ),
      cut_ratio=0.1,
      image_shape=(64, 64, 3),
  )


MPI3D = _mpi3d(6, 6)
# The first MPI3D release: 4 colours x 4 shapes, 460,800 images.
MPI3D_LEGACY = _mpi3d(4, 4)

SPECS = {"dsprites": DSPRITES, "shapes3d": SHAPES3D, "mpi3d": MPI3D}
DATASETS = tuple(SPECS)
# The benchmark's split names (their rules live in `gsgen.splits`); named here so that every
# layer, the data layer included, shares one vocabulary without importing the rules.
SPLITS = ("random", "composition", "interpolation", "extrapolation")


def get(name: str | DatasetSpec) -> DatasetSpec:
  """The spec of a dataset by name (a spec passes through unchanged).

  Raises:
    ValueError: unknown name; the message lists the valid ones.
  """
  if isinstance(name, DatasetSpec):
    return name
  if name not in SPECS:
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
  return SPECS[name]


def mpi3d_for_num_images(num_images: int) -> DatasetSpec:
  """The MPI3D grid that has ``num_images`` points.

  Raises:
    ValueError: neither the current (1,036,800) nor the older (460,800) release.
  """
  for spec in (MPI3D, MPI3D_LEGACY):
    if spec.num_images == num_images:
      return spec
  raise ValueError(f"an MPI3D file must hold {MPI3D.num_images:,} images (6 colours x 6 "
                   f"shapes) or {MPI3D_LEGACY.num_images:,} (the older 4 x 4 release); "
                   f"found {num_images:,}.")
