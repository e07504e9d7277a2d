"""Scores of a factor regressor on a split: R² per factor, towards-the-mean ratios, modularity.

Synopsis::

  from gsgen import evaluate
  scores = evaluate.evaluate_model(predict_fn, "dsprites", "extrapolation", images)
  scores["rsquared"], scores["rsquared_x_position"]
  scores["towards_mean"]["x_position"]["median"]
  scores["modularity"]["x_position"]["rsquared_ood"]

Contract: scores stream batch by batch, so a test split of 700,000+ images never holds all
predictions at once; R² divides by a factor's variance over the full grid, so scores compare
across splits. docs/metrics.md defines every key and says how the scores are computed.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gsgen import progress as progress_lib
from gsgen import splits as splits_lib
from gsgen import specs as specs_lib
from gsgen import user_images

# Towards-the-mean ratios are binned at this width on [0, RATIO_MAX); one more bin holds
# everything above. The median is read off the histogram, so it is exact to one bin width.
RATIO_BIN_WIDTH = 0.01
RATIO_MAX = 4.0
NUM_RATIO_BINS = int(round(RATIO_MAX / RATIO_BIN_WIDTH)) + 1
# |y - mean| below this leaves the ratio undefined (the point is not counted).
_RATIO_EPS = 1e-6
# Ratios up to 1 + this count as within [0, 1] (float32 noise of an exact prediction).
_RATIO_TOL = 1e-5


def regression_scores(sse: np.ndarray, count, spec: specs_lib.DatasetSpec) -> dict:
  """R² and MSE metrics from summed squared errors.

  Args:
    sse: ``[num_factors]`` sums of squared errors of the normalised targets.
    count: number of examples the sums are over.
    spec: the dataset, for factor names, categorical flags and the grid variance.

  Returns:
    Dict with ``rsquared_<factor>``, ``mse_<factor>``, ``rsquared`` (mean over factors),
    ``mse`` (mean over factors), ``rsquared_noncategorical`` and ``num_examples``. Metrics of
    an empty set are None.
  """
  out = {"num_examples": int(count)}
  if count == 0:
    mse = r2 = np.full(spec.num_factors, np.nan)
  else:
    mse = np.asarray(sse, np.float64) / count
    r2 = 1.0 - mse / spec.grid_variance()
  for name, m, r in zip(spec.factor_names, mse, r2):
    out[f"rsquared_{name}"] = _number(r)
    out[f"mse_{name}"] = _number(m)
  out["rsquared"] = _number(r2.mean())
  out["mse"] = _number(mse.mean())
  out["rsquared_noncategorical"] = _number(r2[~spec.categorical].mean())
  return out


def _number(x) -> float | None:
  x = float(x)
  return None if np.isnan(x) else x


def _factor_stats(pred, target, subset_weights, ood, train_mean):
  """Statistics of one factor over one batch.

  Args:
    pred, target: ``[batch]`` prediction and normalised target.
    subset_weights: ``[batch, num_subsets]`` 1.0 where an example belongs to a subset.
    ood: ``[batch]`` whether this factor is out of distribution at the example (and the
      example is valid); towards-the-mean ratios are gathered there.
    train_mean: the factor's mean normalised target over the training set.

  Returns:
    ``(sse [num_subsets], ratio_histogram [NUM_RATIO_BINS], count of ratios <= 1, count of
    out-of-distribution points, defined or not)``.
  """
  sse = (((pred - target) ** 2)[:, None] * subset_weights).sum(0)
  denom = jnp.abs(target - train_mean)
  defined = ood & (denom > _RATIO_EPS)
  ratio = jnp.abs(pred - train_mean) / jnp.where(defined, denom, 1.0)
  bins = jnp.clip(jnp.floor(ratio / RATIO_BIN_WIDTH), 0, NUM_RATIO_BINS - 1).astype(jnp.int32)
  hist = jnp.zeros(NUM_RATIO_BINS, jnp.float32).at[bins].add(defined.astype(jnp.float32))
  # Counted apart from the histogram: a perfect prediction has ratio 1 up to float noise,
  # which must not decide on which side of a bin edge it falls.
  within = (defined & (ratio <= 1.0 + _RATIO_TOL)).sum()
  return sse, hist, within, ood.sum()


def batch_statistics(predictions, targets, subset_weights, ood, train_mean):
  """Sufficient statistics of a batch, all factors at once (vmapped over factors).

  Args:
    predictions, targets: ``[batch, num_factors]``.
    subset_weights: ``[batch, num_subsets]``, 0/1 membership of each evaluated set (padding
      rows are all 0).
    ood: ``[batch, num_factors]`` where ratios are gathered (False on padding rows).
    train_mean: ``[num_factors]``.

  Returns:
    Dict with ``count [num_subsets]``, ``sse [num_subsets, num_factors]``,
    ``ratio_hist [num_factors, NUM_RATIO_BINS]``, ``ratio_within [num_factors]`` (ratios
    in [0, 1]) and ``ood_count [num_factors]`` (out-of-distribution points, including those
    whose ratio is undefined).
  """
  sse, hist, within, ood_count = jax.vmap(_factor_stats, in_axes=(1, 1, None, 1, 0),
                                          out_axes=(1, 0, 0, 0))(
      predictions, targets, subset_weights, ood, train_mean)
  return {"count": subset_weights.sum(0), "sse": sse, "ratio_hist": hist,
          "ratio_within": within, "ood_count": ood_count}


@dataclasses.dataclass
class Accumulator:
  """Streaming evaluation of one split: feed batches, then read `result`.

  Evaluated sets: index 0 is the split part being scored (normally ``test``); for
  interpolation and extrapolation test sets, one more per split factor: its one-factor-OOD
  subset (modularity).

  Attributes:
    spec: the dataset.
    split: the split name.
    part: ``test``, ``train`` or ``all`` (the full grid).
    membership: ``rules``: an example counts when the split's rules put it in ``part``
      (others are skipped); ``given``: every example fed belongs to ``part`` (the published
      benchmark split files, whose test records are scored as they are).
    train_mean: the training mean of each normalised target, for the towards-the-mean
      ratios; default: the mean over the rules' train part of the grid.
  """
  spec: specs_lib.DatasetSpec
  split: str
  part: str = "test"
  membership: str = "rules"
  train_mean: np.ndarray | None = None

  def __post_init__(self):
    splits_lib.check_split(self.split)
    if self.part not in ("test", "train", "all"):
      raise ValueError(f"unknown part {self.part!r}; choose 'test', 'train' or 'all'.")
    if self.membership not in ("rules", "given"):
      raise ValueError(f"unknown membership {self.membership!r}; choose 'rules' or 'given'.")
    self.ood_names = ()
    if self.part == "test" and self.split in splits_lib.OOD_SPLITS:
      self.ood_names = tuple(self.spec.factors[i].name for i in self.spec.split_factors)
    if self.train_mean is None:
      train_mask, _ = splits_lib.masks(self.spec, self.split)
      if not train_mask.any():
        raise ValueError(f"the {self.split} split of {self.spec.name} has no training "
                         f"points (grid {self.spec.sizes}); the towards-the-mean ratios need "
                         f"them.")
      self.train_mean = self.spec.targets(self.spec.all_factor_indices()[train_mask]).astype(
          np.float64).mean(0)
    self.train_mean = np.asarray(self.train_mean, np.float32)
    num_sets = 1 + len(self.ood_names)
    self._count = np.zeros(num_sets, np.float64)
    self._sse = np.zeros((num_sets, self.spec.num_factors), np.float64)
    self._hist = np.zeros((self.spec.num_factors, NUM_RATIO_BINS), np.float64)
    self._within = np.zeros(self.spec.num_factors, np.float64)
    self._ood = np.zeros(self.spec.num_factors, np.float64)
    part = "all" if self.membership == "given" else self.part
    self._step = _jitted_step(self.spec, self.split, part, self.ood_names)

  def update(self, predictions, factor_indices, mask=None) -> None:
    """Adds a batch.

    Args:
      predictions: ``[batch, num_factors]`` predicted normalised targets (numpy or jax).
      factor_indices: ``[batch, num_factors]`` integer factor indices of the examples.
      mask: optional ``[batch]`` boolean, False on padding rows (so a padded last batch keeps
        shapes static without counting the padding).
    """
    predictions = jnp.asarray(predictions, jnp.float32)
    if predictions.shape != factor_indices.shape:
      raise ValueError(f"predictions must have shape [batch, {self.spec.num_factors}] "
                       f"({', '.join(self.spec.factor_names)}); got {predictions.shape} for "
                       f"factor indices of shape {factor_indices.shape}.")
    if mask is None:
      mask = np.ones(factor_indices.shape[0], bool)
    stats = jax.device_get(self._step(predictions, jnp.asarray(factor_indices, jnp.int32),
                                      jnp.asarray(mask, bool), self.train_mean))
    if not np.all(np.isfinite(stats["sse"])):
      raise ValueError(f"non-finite predictions (NaN or inf) for {self.spec.name}/"
                       f"{self.split}; scores would be meaningless. Check the model's output.")
    self._count += stats["count"]
    self._sse += stats["sse"]
    self._hist += stats["ratio_hist"]
    self._within += stats["ratio_within"]
    self._ood += stats["ood_count"]

  def result(self) -> dict:
    """The scores so far: see `evaluate_model` for the layout."""
    out = regression_scores(self._sse[0], self._count[0], self.spec)
    out["towards_mean"] = {
        name: ratio_summary(self._hist[j], self._within[j], self._ood[j])
        for j, name in enumerate(self.spec.factor_names) if self._ood[j] > 0}
    split_names = {self.spec.factors[i].name for i in self.spec.split_factors}
    modularity = {}
    for s, name in enumerate(self.ood_names, start=1):
      scores = regression_scores(self._sse[s], self._count[s], self.spec)
      others = [f for f in self.spec.factor_names if f != name]
      mean = lambda names: (None if self._count[s] == 0 else  # pylint: disable=cell-var-from-loop
                            float(np.mean([scores[f"rsquared_{f}"] for f in names])))
      modularity[name] = {
          "num_examples": scores["num_examples"],
          "rsquared_ood": scores[f"rsquared_{name}"],
          "rsquared_id_split_factors": mean([f for f in others if f in split_names]),
          "rsquared_id_all_factors": mean(others),
          "rsquared": {f: scores[f"rsquared_{f}"] for f in self.spec.factor_names},
      }
    if modularity:
      out["modularity"] = modularity
    return out


@functools.lru_cache(maxsize=None)
def _jitted_step(spec, split, part, ood_names):
  """The jitted per-batch statistics for one (dataset, split, part)."""

  def step(predictions, factor_indices, mask, train_mean):
    if part == "all":
      member = mask
    else:
      test = splits_lib.is_test(factor_indices, spec, split)
      member = mask & (test if part == "test" else ~test)
    sets = [member] + [
        member & splits_lib.is_one_factor_ood(factor_indices, spec, split, name)
        for name in ood_names]
    weights = jnp.stack(sets, axis=1).astype(jnp.float32)
    ood = member[:, None] & splits_lib.ood_factors(factor_indices, spec, split)
    return batch_statistics(predictions, spec.targets(factor_indices), weights, ood,
                            train_mean)

  return jax.jit(step)


def ratio_summary(hist: np.ndarray, within: float, num_ood: float | None = None) -> dict:
  """Median, share in [0, 1] and counts of a towards-the-mean ratio histogram.

  Args:
    hist: ``[NUM_RATIO_BINS]`` counts; bin k holds ratios in
      ``[k * RATIO_BIN_WIDTH, (k + 1) * RATIO_BIN_WIDTH)``, the last bin everything from
      ``RATIO_MAX`` up.
    within: how many of the ratios are in [0, 1].
    num_ood: out-of-distribution points of the factor, including those whose truth sits
      at the training mean (ratio undefined); default: the histogram's total.

  Returns:
    Dict with ``num_points`` (ratios defined), ``num_undefined`` (points whose truth equals
    the training mean), ``median`` (linear within its bin; exact to one bin width; None
    when no ratio is defined), ``share_0_1`` (the share of ratios <= 1: the prediction lies
    closer to the training mean than the truth; None when none is defined), ``bin_width``
    and ``counts`` (a list of ints).
  """
  hist = np.asarray(hist, np.float64)
  total = hist.sum()
  out = {"num_points": int(total),
         "num_undefined": int(round((total if num_ood is None else num_ood) - total)),
         "median": None, "share_0_1": None, "bin_width": RATIO_BIN_WIDTH,
         "counts": [int(c) for c in hist]}
  if total == 0:
    return out
  cumulative = np.cumsum(hist)
  k = int(np.searchsorted(cumulative, total / 2))
  below = cumulative[k] - hist[k]
  median = (k + (total / 2 - below) / hist[k]) * RATIO_BIN_WIDTH
  out["median"] = float(min(median, RATIO_MAX))
  out["share_0_1"] = float(within / total)
  return out


def run(predict: Callable, fetch: Callable, factor_indices: np.ndarray,
        positions: np.ndarray, batch_size: int, acc: Accumulator, *, progress: bool = False,
        desc: str = "evaluate") -> dict:
  """The evaluation loop: every position once, in fixed-size batches, into ``acc``.

  The last batch is padded with its first position and masked, so ``predict`` sees one
  shape and never recompiles. The next batch is fetched in a thread while the current one
  is predicted.

  Args:
    predict: ``batch -> [batch_size, num_factors]`` predicted normalised targets.
    fetch: ``positions [batch_size] -> batch`` (whatever ``predict`` takes).
    factor_indices: ``[n, num_factors]`` factor indices of every position.
    positions: the positions to score.
    batch_size: examples per batch.
    acc: the accumulator to feed.
    progress: show a progress bar.
    desc: its label.

  Returns:
    ``acc.result()``.
  """
  positions = np.asarray(positions)
  starts = range(0, len(positions), batch_size)

  def padded(start):
    idx = positions[start:start + batch_size]
    mask = np.arange(batch_size) < len(idx)
    return np.concatenate([idx, np.full(batch_size - len(idx), idx[0], idx.dtype)]), mask

  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    pending = pool.submit(fetch, padded(starts[0])[0]) if len(starts) else None
    for k in progress_lib.bar(range(len(starts)), desc=desc, unit="batch",
                              disable=not progress):
      idx, mask = padded(starts[k])
      batch = pending.result()
      if k + 1 < len(starts):
        pending = pool.submit(fetch, padded(starts[k + 1])[0])
      acc.update(predict(batch), factor_indices[idx], mask)
  return acc.result()


def evaluate_model(predict_fn: Callable[[np.ndarray], np.ndarray], dataset, split: str,
                   images, *, part: str = "test", batch_size: int = 256,
                   progress: bool = True, indices: np.ndarray | None = None,
                   image_indices: np.ndarray | None = None) -> dict:
  """Scores a model on a split.

  Args:
    predict_fn: float32 images ``[batch_size, H, W, C]`` in [0, 1] -> ``[batch_size,
      num_factors]`` predicted normalised targets, numpy in and out. Every call gets exactly
      ``batch_size`` images (the last batch is padded), so a compiled model never recompiles.
    dataset: dataset name or `specs.DatasetSpec`.
    split: one of `splits.SPLITS`.
    images: uint8 images by flat grid index: an array-like of the whole grid supporting
      ``images[index_array]``, or a function ``flat_indices -> images``; or an array of
      some points' images (a test part's) with their flat indices as ``image_indices``.
    part: ``test`` (default), ``train`` or ``all`` (the full grid).
    batch_size: images per call of ``predict_fn``.
    progress: show a progress bar.
    indices: optional flat indices to evaluate (defaults to the whole part).
    image_indices: the flat index of each image when ``images`` is not the whole grid.

  Returns:
    Dict with ``rsquared_<factor>``, ``mse_<factor>``, ``rsquared``, ``mse``,
    ``rsquared_noncategorical`` and ``num_examples``; ``towards_mean``: per factor the ratio
    summary of `ratio_summary`, over the points where the factor is out of distribution
    (all test points for random and composition); for interpolation and extrapolation test
    sets ``modularity``: per split factor, on its one-factor-OOD subset, the R² of that
    factor (``rsquared_ood``), the mean R² of the other split factors
    (``rsquared_id_split_factors``) and of all other factors (``rsquared_id_all_factors``),
    and every factor's R².

  Raises:
    ValueError: images of the wrong count, dtype, shape or value range (see
      `gsgen.user_images`).
  """
  spec = specs_lib.get(dataset)
  acc = Accumulator(spec, split, part)
  if indices is None:
    indices = (np.arange(spec.num_images) if part == "all"
               else splits_lib.indices(spec, split, part))
  source = user_images.source(images, spec, image_indices)

  def fetch(idx):
    # Scaled in place, the same values: a second fresh array (4 MB for 256 dSprites images)
    # took the fetch from 0.4 to 3.6 ms on a 2-core CPU, its pages faulted in one by one
    # (0.7 ms with glibc's huge pages), host time an accelerator would wait for.
    batch = source(idx).astype(np.float32)
    batch /= 255.0
    return batch

  def predict(batch):
    return np.asarray(predict_fn(batch))

  return run(predict, fetch, spec.all_factor_indices(), indices, batch_size, acc,
             progress=progress, desc=f"eval {spec.name}/{split}/{part}")
