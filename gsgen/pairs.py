"""Pairs of training points that share some factors: the data of the weakly supervised learners.

Contract: ``locatello`` (Ada-GVAE, pairs differing in ``k`` factors) and ``laplace`` (SlowVAE
and PCL, a sparse truncated Laplace transition) draw the second point from the reference
transition conditioned on lying in the train split, so training never touches a test point;
PCL's negatives are uniform over the train records. A batch's draws are a pure function of
(seed, step). The laws, the rejection rounds and why the conditioning is joint:
docs/learners.md, "Pair samplers".

Synopsis::

  import numpy as np
  from gsgen import pairs, specs, splits
  spec = specs.get("dsprites")
  train, _ = splits.masks(spec, "extrapolation")
  sampler = pairs.PairSampler(spec, spec.factor_indices(np.flatnonzero(train)), "laplace")
  first = spec.factor_indices(np.flatnonzero(train)[:64])
  second = sampler.second(first, step=0, seed=0)    # [64, 5], inside the train split
  sampler.positions(second)                         # their rows in the train records
  law = sampler.law(first[0])                       # [num_images]: the conditioned law
"""

from __future__ import annotations

import math

import numpy as np

from gsgen import specs as specs_lib

# What the input pipeline draws per example, and the learner options each sampler reads.
# "laplace_negative" adds a third point per example: PCL's negative, uniform over the train
# records.
SAMPLERS: dict[str, tuple[str, ...]] = {
    "single": (),
    "locatello": ("k",),
    "laplace": ("transition_rate",),
    "laplace_negative": ("transition_rate",),
}
PAIR_SAMPLERS = ("locatello", "laplace", "laplace_negative")
# The factors the Laplace transition never moves, as slow_disentanglement's datasets mark
# them (their ``categorical`` vectors): dSprites and Shapes3D shape, MPI3D object shape.
# MPI3D's colours move like any other factor there, unlike `specs.DatasetSpec.categorical`.
LAPLACE_FIXED: dict[str, tuple[str, ...]] = {
    "dsprites": ("shape",),
    "shapes3d": ("shape",),
    "mpi3d": ("object_shape",),
}
# Separate the pair and negative draws from every other random stream of a run.
_STREAM = 0x9A125
_NEGATIVE_STREAM = 0x9A126
# Rejection rounds and proposals per row per round before the exact draw takes over.
_ROUNDS, _PROPOSALS = 4, 8


def images_per_example(sampler: str) -> int:
  """1 for single points, 2 for pairs, 3 for pairs with a negative."""
  return {"single": 1, "laplace_negative": 3}.get(sampler, 2)


def laplace_table(size: int, rate: float) -> np.ndarray:
  """``[size, size]``: row ``s`` the transition law of one factor from value ``s``.

  The Laplace density ``exp(-|v - s| / b)``, ``b = log(size) / rate``, on the factor's
  values, normalised (slow_disentanglement's ``laplace.pdf`` over ``np.arange(size)``).
  """
  v = np.arange(size)
  w = np.exp(-np.abs(v[None, :] - v[:, None]) * (rate / math.log(size)))
  return w / w.sum(1, keepdims=True)


def _draw(cdf: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
  """Inverse-CDF draws: row i takes the first value whose cumulative weight exceeds
  ``uniforms[i]`` times the row's total (a draw that rounds up to the total takes the last
  value of positive weight)."""
  total = cdf[:, -1:]
  above = cdf > uniforms[:, None] * total
  return np.where(above.any(1), np.argmax(above, axis=1), np.argmax(cdf >= total, axis=1))


def _cumulative(table: np.ndarray) -> np.ndarray:
  """Row-wise cumulative sums ending at exactly 1, so that counting the entries <= u, for u
  in [0, 1), is an inverse-CDF draw that never runs past the last value."""
  cdf = np.cumsum(table, axis=1)
  cdf[:, -1] = 1.0
  return cdf


def _choose(weights: np.ndarray, u: float) -> int:
  """One draw from unnormalised ``weights`` by a uniform ``u``."""
  return int(_draw(np.cumsum(weights)[None, :], np.array([u]))[0])


def check_options(spec: specs_lib.DatasetSpec, sampler: str, options: dict) -> None:
  """Refuses sampler options the run cannot use on ``spec``, the grid it trains on.

  The one check of ``k`` and ``transition_rate`` (`gsgen.validate` runs it at a run's start,
  `PairSampler` when built): ``k`` changed factors need that many factors of more than one
  value on the grid, which a reduced grid may lack.

  Args:
    spec: the grid trained on (`gsgen.split_data.SplitData.spec`).
    sampler: one of `SAMPLERS`.
    options: the options it reads (``k``: locatello; ``transition_rate``: laplace).

  Raises:
    ValueError: an unknown sampler or option, or an option out of range, naming the field
      of ``config.learner_kwargs``.
  """
  if sampler not in SAMPLERS:
    raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")
  unknown = set(options) - set(SAMPLERS[sampler])
  if unknown:
    raise ValueError(f"pair sampler {sampler!r} takes options {SAMPLERS[sampler]}, not "
                     f"{sorted(unknown)}.")
  if "k" in options:
    k = options["k"]
    active = int(np.count_nonzero(np.asarray(spec.sizes) > 1))
    top = max(active - 1, 1)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= top:
      raise ValueError(f"config.learner_kwargs.k must be an integer from 0 (drawn per pair) "
                       f"to {top}; k = {k!r} changed factors out of range: {spec.name} on "
                       f"grid {spec.sizes} has {active} factors of more than one value; "
                       f"choose k in 1..{top}, or 0 to draw it.")
  if "transition_rate" in options:
    rate = options["transition_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)) or not rate > 0:
      raise ValueError(f"config.learner_kwargs.transition_rate must be positive (a number "
                       f"> 0); got {rate!r}.")


class PairSampler:
  """Second points (and negatives) inside the train records, by step."""

  def __init__(self, spec: specs_lib.DatasetSpec, train_factor_indices: np.ndarray,
               kind: str, options: dict | None = None, *, train_rows: np.ndarray | None = None):
    """Args:
      spec: the factor grid of the train records.
      train_factor_indices: ``[num_train, F]`` the train records; their set is the train
        mask (for published split files, exactly the files' train records).
      kind: ``locatello``, ``laplace`` or ``laplace_negative``.
      options: ``k`` (locatello: changes per pair, 0 for a uniform draw from 1 .. n - 1
        with n the factors of more than one value) or ``transition_rate`` (laplace); see
        `check_options`.
      train_rows: ``[num_images]`` each grid point's row in the train records, -1 outside,
        when already at hand (`gsgen.split_data.SplitData.train_rows`); else computed here.

    Raises:
      ValueError: an unknown kind or option, or an option out of range.
    """
    if kind not in PAIR_SAMPLERS:
      raise ValueError(f"unknown pair sampler {kind!r}; choose one of "
                       f"{', '.join(PAIR_SAMPLERS)}.")
    options = dict(options or {})
    check_options(spec, kind, options)
    self.spec, self.kind = spec, kind
    self.k = int(options.get("k", 0))
    self.rate = float(options.get("transition_rate", 1.0))
    sizes = np.asarray(spec.sizes)
    # Locatello's factors: every factor of more than one value (on a full grid, all).
    self.changeable = np.flatnonzero(sizes > 1)
    active = len(self.changeable)
    self._max_k = max(active - 1, 1)
    fixed = LAPLACE_FIXED.get(spec.name, ())
    self.moving = np.array([j for j, f in enumerate(spec.factors)
                            if f.name not in fixed and f.size > 1], np.int64)
    if kind != "locatello" and not len(self.moving):
      raise ValueError(f"the Laplace transition of {spec.name} on grid {spec.sizes} has no "
                       f"factor to move.")
    self._tables = {j: laplace_table(spec.sizes[j], self.rate) for j in self.moving}
    self._cdfs = {j: _cumulative(t) for j, t in self._tables.items()}
    self._strides = np.asarray(spec.strides)
    self.num_train = len(train_factor_indices)
    if train_rows is None:
      train_rows = np.full(spec.num_images, -1, np.int64)
      train_rows[spec.flat_index(np.asarray(train_factor_indices))] = np.arange(self.num_train)
    self._position = train_rows
    self.train_mask = self._position >= 0

  # --- the reference transitions (unconditioned proposals) ---------------------------------

  def _propose_laplace(self, start: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """slow_disentanglement's ``truncated_laplace``: every moving factor drawn on its own;
    if none moved, one moving factor, chosen uniformly, is drawn again with its own value
    excluded."""
    end = start.copy()
    n = len(start)
    u = rng.random((n, len(self.moving)))
    for c, j in enumerate(self.moving):
      end[:, j] = np.sum(self._cdfs[j][start[:, j]] <= u[:, c:c + 1], axis=1)
    still = np.flatnonzero((end == start).all(1))
    pick = self.moving[rng.integers(len(self.moving), size=len(still))]
    u = rng.random(len(still))
    for j in self.moving:
      rows = still[pick == j]
      weights = self._tables[j][start[rows, j]].copy()
      weights[np.arange(len(rows)), start[rows, j]] = 0.0
      end[rows, j] = _draw(np.cumsum(weights, 1), u[pick == j])
    return end

  def _propose_locatello(self, start: np.ndarray, k: np.ndarray,
                         rng: np.random.Generator) -> np.ndarray:
    """The "uniform" prior: ``k`` distinct factors chosen uniformly, each moved to another
    of its values, uniformly."""
    end = start.copy()
    n, ch = len(start), self.changeable
    rank = np.argsort(np.argsort(rng.random((n, len(ch))), axis=1), axis=1)
    sizes = np.asarray(self.spec.sizes)[ch]
    other = (rng.random((n, len(ch))) * (sizes - 1)).astype(np.int64)
    other += other >= start[:, ch]
    end[:, ch] = np.where(rank < k[:, None], other, start[:, ch])
    return end

  # --- the exact laws over the grid ----------------------------------------------------------

  def law(self, start: np.ndarray, k: int | None = None) -> np.ndarray:
    """The transition law from one point over the flat grid, before the train condition.

    Args:
      start: ``[F]`` factor indices.
      k: locatello's number of changed factors (locatello only).

    Returns:
      float64 ``[num_images]`` summing to 1; 0 at ``start``.
    """
    spec, start = self.spec, np.asarray(start, np.int64)
    grid = spec.all_factor_indices()
    if self.kind == "locatello":
      sizes = np.asarray(spec.sizes)
      moved = grid[:, self.changeable] != start[self.changeable]
      p = np.prod(np.where(moved, 1.0 / (sizes[self.changeable] - 1), 1.0), axis=1)
      p = np.where(moved.sum(1) == k, p / math.comb(len(self.changeable), k), 0.0)
      return p
    fixed = np.setdiff1d(np.arange(spec.num_factors), self.moving)
    same = (grid[:, fixed] == start[fixed]).all(1)
    each = [self._tables[j][start[j]][grid[:, j]] for j in self.moving]
    p = np.where(same, np.prod(each, axis=0), 0.0)
    # The forced change: when no factor moved (probability `stay`), one of them, chosen
    # uniformly, moves with its own value excluded.
    stay = np.prod([self._tables[j][start[j], start[j]] for j in self.moving])
    moved = grid[:, self.moving] != start[self.moving]
    only = same & (moved.sum(1) == 1)
    for c, j in enumerate(self.moving):
      row = self._tables[j][start[j]]
      one = only & moved[:, c]
      p[one] += stay / len(self.moving) * row[grid[one, j]] / (1.0 - row[start[j]])
    p[spec.flat_index(start)] = 0.0
    return p

  def _exact(self, start: np.ndarray, k: int | None, u: float) -> np.ndarray | None:
    """One draw of the law conditioned on the train split, or None if it has no mass."""
    p = self.law(start, k) * self.train_mask
    if not p.sum() > 0:
      return None
    return self.spec.factor_indices(_choose(p, u))

  def _locatello_exact(self, start: np.ndarray, k: int, u: float) -> np.ndarray:
    """The exact draw at ``k`` changes, or at the nearest ``k`` the train split allows
    (the smaller on a tie)."""
    for kk in sorted(range(1, len(self.changeable) + 1), key=lambda c: (abs(c - k), c)):
      end = self._exact(start, kk, u)
      if end is not None:
        return end
    raise RuntimeError(f"no other train point of {self.spec.name} differs from "
                       f"{start.tolist()} in any number of factors.")

  # --- batches ---------------------------------------------------------------------------------

  def second(self, first: np.ndarray, step: int, seed: int) -> np.ndarray:
    """The second points of the pairs that start at ``first`` in the batch of ``step``.

    Args:
      first: ``[n, F]`` train points (the whole global batch, so every process draws the
        same pairs).
      step: the stage's step (0-based batch number).
      seed: the run's data seed.

    Returns:
      int64 ``[n, F]``, every row inside the train records and different from its first.

    Raises:
      RuntimeError: a first point from which no other train point can be reached.
    """
    first = np.asarray(first, np.int64)
    n = len(first)
    rng = np.random.default_rng([seed, step, _STREAM])
    k = None
    if self.kind == "locatello":
      k = (rng.integers(1, self._max_k + 1, size=n) if self.k == 0
           else np.full(n, self.k, np.int64))
    out = np.empty_like(first)
    pending = np.arange(n)
    for _ in range(_ROUNDS):
      if not len(pending):
        break
      rows = np.repeat(pending, _PROPOSALS)
      if self.kind == "locatello":
        cand = self._propose_locatello(first[rows], k[rows], rng)
      else:
        cand = self._propose_laplace(first[rows], rng)
      ok = self.train_mask[cand @ self._strides].reshape(-1, _PROPOSALS)
      hit = ok.any(1)
      take = np.flatnonzero(hit) * _PROPOSALS + np.argmax(ok[hit], axis=1)
      out[pending[hit]] = cand[take]
      pending = pending[~hit]
    for i in pending:
      u = rng.random()
      if self.kind == "locatello":
        out[i] = self._locatello_exact(first[i], int(k[i]), u)
      else:
        end = self._exact(first[i], None, u)
        if end is None:
          raise RuntimeError(f"no other train point of {self.spec.name} is reachable from "
                             f"{first[i].tolist()} by the Laplace transition.")
        out[i] = end
    return out

  def examples(self, first_rows: np.ndarray, first: np.ndarray, step: int,
               seed: int) -> np.ndarray:
    """Rows of the train records of each example of the batch at ``step``.

    Args:
      first_rows: ``[n]`` rows of the first points in the train records.
      first: ``[n, F]`` their factor indices.
      step: the stage's step.
      seed: the run's data seed.

    Returns:
      int64 ``[n, images_per_example(kind)]``: first, second (and the negative).
    """
    columns = [first_rows, self.positions(self.second(first, step, seed))]
    if images_per_example(self.kind) == 3:
      columns.append(self.negatives(len(first_rows), step, seed))
    return np.stack(columns, axis=1)

  def negatives(self, n: int, step: int, seed: int) -> np.ndarray:
    """Rows of ``n`` train records drawn uniformly for the batch of ``step`` (PCL's
    negatives), on a stream of their own."""
    return np.random.default_rng([seed, step, _NEGATIVE_STREAM]).integers(self.num_train,
                                                                          size=n)

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
