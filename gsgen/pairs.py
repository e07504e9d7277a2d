"""Pairs of training points that share some factors: the data of the weakly supervised learners.

Ada-GVAE sees pairs that differ in a few factors ("locatello", Locatello et al. 2020) and
SlowVAE and PCL pairs of frames of a sparse, Laplace-distributed transition ("laplace",
Klindt et al. 2021). The benchmark asks that training never touch a test point, not even as
the second image of a pair, so the second point is built factor by factor from the values
that keep it inside the train split given its other current factors (docs/learners.md). All of it
is numpy on a boolean train mask over the grid; the random draws of a batch are a pure
function of (seed, step), so a resumed run sees exactly the pairs of an uninterrupted one.

Synopsis::

  import numpy as np
  from gsgen import pairs, specs, splits
  spec = specs.get("dsprites")
  train, _ = splits.masks(spec, "extrapolation")
  sampler = pairs.PairSampler(spec, spec.factor_indices(np.flatnonzero(train)), "laplace")
  first = spec.factor_indices(np.flatnonzero(train)[:64])
  second = sampler.second(first, step=0, seed=0)    # [64, 5], inside the train split
  sampler.positions(second)                         # their rows in the train records
"""

from __future__ import annotations

import numpy as np

from gsgen import specs as specs_lib

# What the input pipeline draws per example, and the learner options each sampler reads.
SAMPLERS: dict[str, tuple[str, ...]] = {
    "single": (),
    "locatello": ("k",),
    "laplace": ("transition_rate",),
}
PAIR_SAMPLERS = ("locatello", "laplace")
# Separates the pair draws from every other random stream of a run.
_STREAM = 0x9A125


def images_per_example(sampler: str) -> int:
  """1 for single points, 2 for pairs (a batch of 64 pairs is 128 images)."""
  return 2 if sampler in PAIR_SAMPLERS else 1


def available(train_mask: np.ndarray, spec: specs_lib.DatasetSpec, current: np.ndarray,
              factor) -> np.ndarray:
  """Which values of ``factor`` keep each point inside the train split, the others fixed.

  Args:
    train_mask: bool ``[num_images]`` over the flat grid of ``spec``.
    spec: the factor grid.
    current: ``[n, num_factors]`` factor indices.
    factor: the factor to vary, one for all rows or ``[n]``, one per row.

  Returns:
    bool ``[n, max(spec.sizes)]``; False beyond each factor's size.
  """
  sizes, strides = np.asarray(spec.sizes), np.asarray(spec.strides)
  current = np.asarray(current, np.int64)
  rows = np.arange(len(current))
  factor = np.broadcast_to(np.asarray(factor, np.int64), rows.shape)
  base = current @ strides - current[rows, factor] * strides[factor]
  values = np.arange(sizes.max())[None, :]
  inside = values < sizes[factor][:, None]
  flat = base[:, None] + np.where(inside, values, 0) * strides[factor][:, None]
  return inside & train_mask[flat]


def locatello(first: np.ndarray, train_mask: np.ndarray, spec: specs_lib.DatasetSpec,
              k: np.ndarray, order: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
  """Second points that differ from ``first`` in up to ``k`` factors.

  The factors are visited in ``order``; a factor with another value available (given the
  point built so far) changes to one of them, chosen uniformly, until ``k`` have changed.
  Factors with a single available value do not count.

  Args:
    first: ``[n, F]`` train points.
    train_mask: bool ``[num_images]`` over the flat grid.
    spec: the factor grid.
    k: ``[n]`` changes wanted per pair.
    order: ``[n, F]`` a permutation of the factors per pair.
    uniforms: ``[n, F]`` in [0, 1): the draw of the value at each visit.

  Returns:
    int64 ``[n, F]``.
  """
  second = np.array(first, np.int64)
  rows = np.arange(len(second))
  changes = np.zeros(len(second), np.int64)
  for t in range(spec.num_factors):
    j = order[:, t]
    current = second[rows, j]
    other = available(train_mask, spec, second, j)
    other[rows, current] = False
    count = other.sum(1)
    change = (changes < k) & (count > 0)
    pick = np.minimum((uniforms[:, t] * count).astype(np.int64), np.maximum(count - 1, 0))
    value = np.argmax(np.cumsum(other, 1) > pick[:, None], axis=1)
    second[rows, j] = np.where(change, value, current)
    changes += change
  return second


def laplace_weights(values: np.ndarray, centre: np.ndarray, size: int,
                    rate: float) -> np.ndarray:
  """The unnormalised Laplace density of ``values`` around ``centre``, scale log(size)/rate."""
  return np.exp(-np.abs(values - centre) * (rate / np.log(size)))


def laplace(first: np.ndarray, train_mask: np.ndarray, spec: specs_lib.DatasetSpec,
            rate: float, uniforms: np.ndarray) -> np.ndarray:
  """Second points of a sparse transition from ``first``.

  Categorical factors stay; every other factor, in order, is redrawn from its available
  values (given the point built so far) with probability proportional to a Laplace density
  centred at the first point's value, scale ``log(size) / rate``. Nothing forces a change.

  Args:
    first: ``[n, F]`` train points.
    train_mask: bool ``[num_images]`` over the flat grid.
    spec: the factor grid.
    rate: the transition's rate (larger: smaller steps).
    uniforms: ``[n, F]`` in [0, 1): the draw of each factor's value.

  Returns:
    int64 ``[n, F]``.
  """
  second = np.array(first, np.int64)
  for j, factor in enumerate(spec.factors):
    size = factor.size
    if factor.categorical or size < 2:
      continue
    ok = available(train_mask, spec, second, j)[:, :size]
    weights = ok * laplace_weights(np.arange(size)[None, :], second[:, j:j + 1], size, rate)
    cdf = np.cumsum(weights, 1)
    above = cdf > uniforms[:, j:j + 1] * cdf[:, -1:]
    # A draw that rounds up to the total takes the last available value.
    last = size - 1 - np.argmax(ok[:, ::-1], axis=1)
    second[:, j] = np.where(above.any(1), np.argmax(above, axis=1), last)
  return second


class PairSampler:
  """Second points inside the train records, by step: `locatello` or `laplace`."""

  def __init__(self, spec: specs_lib.DatasetSpec, train_factor_indices: np.ndarray,
               kind: str, options: dict | None = None):
    """Args:
      spec: the factor grid of the train records.
      train_factor_indices: ``[num_train, F]`` the train records; their set is the train
        mask (for published split files, exactly the files' train records).
      kind: ``locatello`` or ``laplace``.
      options: ``k`` (locatello: changes per pair, 0 for a uniform draw from 1 .. n - 1
        with n the factors of more than one value) or ``transition_rate`` (laplace).

    Raises:
      ValueError: an unknown kind or option, or an option out of range.
    """
    if kind not in PAIR_SAMPLERS:
      raise ValueError(f"unknown pair sampler {kind!r}; choose one of "
                       f"{', '.join(PAIR_SAMPLERS)}.")
    options = dict(options or {})
    unknown = set(options) - set(SAMPLERS[kind])
    if unknown:
      raise ValueError(f"pair sampler {kind!r} takes options {SAMPLERS[kind]}, not "
                       f"{sorted(unknown)}.")
    self.spec, self.kind = spec, kind
    self.k = int(options.get("k", 0))
    self.rate = float(options.get("transition_rate", 1.0))
    active = sum(s > 1 for s in spec.sizes)
    if not 0 <= self.k < max(active, 2):
      raise ValueError(f"k = {self.k} changed factors out of range: {spec.name} on grid "
                       f"{spec.sizes} has {active} factors of more than one value; choose "
                       f"k in 1..{max(active - 1, 1)}, or 0 to draw it.")
    if not self.rate > 0:
      raise ValueError(f"transition_rate must be positive; got {self.rate}.")
    self._max_k = max(active - 1, 1)
    flat = spec.flat_index(np.asarray(train_factor_indices))
    self._position = np.full(spec.num_images, -1, np.int64)
    self._position[flat] = np.arange(len(flat))
    self.train_mask = self._position >= 0

  def second(self, first: np.ndarray, step: int, seed: int) -> np.ndarray:
    """The second points of the pairs that start at ``first`` in the batch of ``step``.

    Args:
      first: ``[n, F]`` train points (the whole global batch, so every process draws the
        same pairs).
      step: the stage's step (0-based batch number).
      seed: the run's data seed.

    Returns:
      int64 ``[n, F]``, every row inside the train records.
    """
    n, num_factors = np.shape(first)
    rng = np.random.default_rng([seed, step, _STREAM])
    uniforms = rng.random((n, num_factors))
    if self.kind == "laplace":
      return laplace(first, self.train_mask, self.spec, self.rate, uniforms)
    k = (rng.integers(1, self._max_k + 1, size=n) if self.k == 0
         else np.full(n, self.k, np.int64))
    order = np.argsort(rng.random((n, num_factors)), axis=1)
    return locatello(first, self.train_mask, self.spec, k, order, uniforms)

  def positions(self, factor_indices: np.ndarray) -> np.ndarray:
    """Rows of the train records holding ``factor_indices`` (``[..., F]``).

    Raises:
      RuntimeError: a point outside the train records (a sampler bug, never silent).
    """
    pos = self._position[self.spec.flat_index(np.asarray(factor_indices))]
    if np.any(pos < 0):
      raise RuntimeError(f"a pair left the train split of {self.spec.name}: "
                         f"{np.asarray(factor_indices)[pos < 0][:3].tolist()}.")
    return pos
