"""The benchmark's train/test splits as pure functions of factor indices.

Synopsis::

  from gsgen import splits
  train, test = splits.masks("dsprites", "extrapolation")   # boolean masks over the grid
  int(train.sum()), int(test.sum())                          # (240000, 497280)
  splits.marked_values("dsprites", "extrapolation")["scale"]  # (4, 5): held-out indices

Contract: each split (extrapolation, interpolation, composition, random) marks values of the
split factors from the dataset's cut ratio and decides every grid point's part by the rules of
docs/metrics.md, "Splits"; masks are in flat grid order. ``is_test`` works on numpy arrays and
on jax arrays inside ``jax.jit``. ``python -m gsgen.splits`` prints every dataset x split.
"""

from __future__ import annotations

import functools
import math
import sys

import numpy as np

from gsgen import specs as specs_lib

SPLITS = specs_lib.SPLITS
# Splits whose test points lie outside the training range of single factors; only these
# have one-factor-OOD subsets.
OOD_SPLITS = ("interpolation", "extrapolation")


def check_split(split: str) -> str:
  """Returns ``split`` if it names a split, else raises a ValueError listing them."""
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
  return split


def _marked_indices(size: int, split: str, cut_ratio: float, num_split: int) -> tuple[int, ...]:
  if split == "extrapolation":
    pad = math.ceil(size * cut_ratio)
    return tuple(range(size - pad, size))
  if split == "interpolation":
    pad = math.ceil(size * cut_ratio)
    kept = set(np.round(np.linspace(0, size - 1, size - pad)).astype(int).tolist())
    return tuple(i for i in range(size) if i not in kept)
  if split == "composition":
    q = 1.0 - (1.0 - (1.0 - cut_ratio) ** num_split) ** (1.0 / num_split)
    return tuple(range(math.floor(size * q)))
  raise ValueError(f"split {split!r} marks no factor values.")


@functools.lru_cache(maxsize=None)
def _marked(spec: specs_lib.DatasetSpec, split: str) -> dict[str, tuple[int, ...]]:
  num_split = len(spec.split_factors)
  return {spec.factors[i].name: _marked_indices(spec.factors[i].size, split,
                                                spec.cut_ratio, num_split)
          for i in spec.split_factors}


def marked_values(dataset, split: str) -> dict[str, tuple[int, ...]]:
  """The marked value indices of each split factor.

  For extrapolation and interpolation these are the held-out (test) values; for composition
  they are the low bands that the training set is built from.

  Args:
    dataset: dataset name or `specs.DatasetSpec`.
    split: ``composition``, ``interpolation`` or ``extrapolation`` (the random split marks no
      values and gives an empty dict).

  Returns:
    Dict from split-factor name to the sorted tuple of marked indices.
  """
  spec = specs_lib.get(dataset)
  if check_split(split) == "random":
    return {}
  return dict(_marked(spec, split))


def _marked_table(spec: specs_lib.DatasetSpec, split: str) -> list[np.ndarray | None]:
  """Per factor a boolean lookup table over its values (None for factors never split)."""
  marked = _marked(spec, split)
  tables = []
  for f in spec.factors:
    if f.name in marked:
      table = np.zeros(f.size, bool)
      table[list(marked[f.name])] = True
      tables.append(table)
    else:
      tables.append(None)
  return tables


def _extrapolation_test_count(spec: specs_lib.DatasetSpec) -> int:
  train = 1  # the grid's train part is the product of the unmarked values
  for f, table in zip(spec.factors, _marked_table(spec, "extrapolation")):
    train *= f.size if table is None else int((~table).sum())
  return spec.num_images - train


def test_fraction(dataset) -> float:
  """Share of the grid in the extrapolation test set, which the random split copies."""
  spec = specs_lib.get(dataset)
  return _extrapolation_test_count(spec) / spec.num_images


@functools.lru_cache(maxsize=None)
def _random_test_mask(spec: specs_lib.DatasetSpec) -> np.ndarray:
  n = spec.num_images
  mask = np.zeros(n, bool)
  # int(n * fraction) in exact arithmetic: float rounding can lose one point.
  mask[:_extrapolation_test_count(spec)] = True
  np.random.RandomState(0).shuffle(mask)
  mask.flags.writeable = False
  return mask


def _namespace(x):
  if isinstance(x, np.ndarray):
    return np
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jnp


def _per_factor_marked(factor_indices, spec, split, xp):
  """List of (factor position, boolean array [...] 'factor is at a marked value')."""
  out = []
  for i, table in enumerate(_marked_table(spec, split)):
    if table is not None:
      out.append((i, xp.asarray(table)[factor_indices[..., i]]))
  return out


def is_test(factor_indices, dataset, split: str):
  """Whether grid points belong to the test set of a split.

  Args:
    factor_indices: integer array ``[..., num_factors]``, numpy or jax (also traced inside
      ``jax.jit``).
    dataset: dataset name or `specs.DatasetSpec`.
    split: one of `SPLITS`.

  Returns:
    Boolean array ``[...]`` of the same kind as the input.
  """
  spec = specs_lib.get(dataset)
  check_split(split)
  if isinstance(factor_indices, (list, tuple)):
    factor_indices = np.asarray(factor_indices)
  if factor_indices.shape[-1] != spec.num_factors:
    raise ValueError(f"factor indices of {spec.name} have {spec.num_factors} columns "
                     f"({', '.join(spec.factor_names)}); got shape {factor_indices.shape}.")
  xp = _namespace(factor_indices)
  if split == "random":
    return xp.asarray(_random_test_mask(spec))[spec.flat_index(factor_indices)]
  marked = [m for _, m in _per_factor_marked(factor_indices, spec, split, xp)]
  any_marked = functools.reduce(xp.logical_or, marked)
  # Composition trains on the low bands and tests on what lies above all of them.
  return xp.logical_not(any_marked) if split == "composition" else any_marked


def masks(dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Train and test masks over the full grid in flat order.

  Returns:
    ``(train_mask, test_mask)``, boolean arrays ``[num_images]``; disjoint and covering.
  """
  spec = specs_lib.get(dataset)
  test = is_test(spec.all_factor_indices(), spec, split)
  return ~test, test


def indices(dataset, split: str, part: str) -> np.ndarray:
  """Flat grid indices of a split's ``train`` or ``test`` part, ascending."""
  if part not in ("train", "test"):
    raise ValueError(f"unknown part {part!r}; choose 'train' or 'test'.")
  train, test = masks(dataset, split)
  return np.flatnonzero(train if part == "train" else test)


def is_one_factor_ood(factor_indices, dataset, split: str, factor: str):
  """Whether points are test points where exactly one split factor, ``factor``, is marked.

  Args:
    factor_indices: integer array ``[..., num_factors]``, numpy or jax.
    dataset: dataset name or `specs.DatasetSpec`.
    split: ``interpolation`` or ``extrapolation``.
    factor: name of a split factor.

  Returns:
    Boolean array ``[...]``.
  """
  spec = specs_lib.get(dataset)
  if check_split(split) not in OOD_SPLITS:
    raise ValueError(f"one-factor-OOD subsets exist for {' and '.join(OOD_SPLITS)} only, "
                     f"not for {split!r}.")
  j = spec.factor_index(factor)
  if not spec.factors[j].split:
    names = [spec.factors[i].name for i in spec.split_factors]
    raise ValueError(f"{factor!r} is never split in {spec.name}; split factors: "
                     f"{', '.join(names)}.")
  xp = _namespace(np.asarray(factor_indices) if isinstance(factor_indices, (list, tuple))
                  else factor_indices)
  factor_indices = xp.asarray(factor_indices)
  out = None
  for i, m in _per_factor_marked(factor_indices, spec, split, xp):
    term = m if i == j else xp.logical_not(m)
    out = term if out is None else xp.logical_and(out, term)
  return out


def ood_factors(factor_indices, dataset, split: str):
  """Which factors of each point are out of their training range.

  For interpolation and extrapolation a factor is out of distribution at a marked value; the
  random and composition splits hold out no value of a single factor, so every factor of a
  test point counts (their test points are new combinations, or just unseen images).

  Args:
    factor_indices: integer array ``[..., num_factors]``, numpy or jax.
    dataset: dataset name or `specs.DatasetSpec`.
    split: one of `SPLITS`.

  Returns:
    Boolean array ``[..., num_factors]`` (factors never split are False for OOD splits).
  """
  spec = specs_lib.get(dataset)
  if isinstance(factor_indices, (list, tuple)):
    factor_indices = np.asarray(factor_indices)
  xp = _namespace(factor_indices)
  if check_split(split) not in OOD_SPLITS:
    return xp.ones(factor_indices.shape, bool)
  marked = dict(_per_factor_marked(factor_indices, spec, split, xp))
  false = xp.zeros(factor_indices.shape[:-1], bool)
  return xp.stack([marked.get(i, false) for i in range(spec.num_factors)], axis=-1)


def one_factor_ood(dataset, split: str) -> dict[str, np.ndarray]:
  """The one-factor-OOD subsets of a split, which measure modularity.

  Returns:
    Dict from split-factor name to a boolean mask over the full grid (flat order): the test
    points where exactly one split factor is at a marked value and it is this one.
  """
  spec = specs_lib.get(dataset)
  grid = spec.all_factor_indices()
  return {spec.factors[i].name: is_one_factor_ood(grid, spec, split, spec.factors[i].name)
          for i in spec.split_factors}


def summary_table() -> str:
  """A text table of every dataset x split: sizes and marked values per factor."""
  lines = []
  for name in specs_lib.DATASETS:
    spec = specs_lib.get(name)
    lines.append(f"{name}: {spec.num_images:,} images, factors "
                 + ", ".join(f"{f.name}({f.size})" for f in spec.factors)
                 + f", cut ratio {spec.cut_ratio}")
    for split in SPLITS:
      train, test = masks(spec, split)
      head = (f"  {split:<13} train {int(train.sum()):>9,}  test {int(test.sum()):>9,}  "
              f"({test.mean():.1%} test)")
      if split == "random":
        lines.append(f"{head}  random mask, seed 0")
        continue
      role = "train-only low bands" if split == "composition" else "held out"
      marked = "; ".join(f"{k} {_ranges(v)}" for k, v in _marked(spec, split).items())
      lines.append(f"{head}  {role}: {marked}")
  return "\n".join(lines)


def _ranges(values: tuple[int, ...]) -> str:
  """Compact text of sorted indices, e.g. (1, 2, 3, 7) -> '[1-3, 7]'."""
  if not values:
    return "[]"
  parts, start = [], values[0]
  for a, b in zip(values, values[1:] + (None,)):
    if b != a + 1:
      parts.append(str(start) if start == a else f"{start}-{a}")
      start = b
  return "[" + ", ".join(parts) + "]"


if __name__ == "__main__":
  if len(sys.argv) > 1:
    sys.exit("usage: python -m gsgen.splits  (prints every dataset x split)")
  print(summary_table())
