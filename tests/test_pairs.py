"""The pair samplers on every dataset x split: never outside the train split, "locatello"
changes exactly the factors its rule says, "laplace" keeps categorical factors and moves the
others with the Laplace probabilities; pair batches are pure functions of (seed, step).

Availability is recomputed here from the split rules (`splits.is_test` of every candidate
value), not from the sampler's mask, so the checks are independent of the code they test.
"""

import functools
import math

import jax
import numpy as np
import pytest
from scipy import stats

from gsgen import input_pipeline
from gsgen import pairs
from gsgen import sharding
from gsgen import specs
from gsgen import splits

N = 100_000
COMBOS = [(d, s) for d in specs.DATASETS for s in splits.SPLITS]


@functools.lru_cache(maxsize=None)
def train_flat(dataset, split):
  return np.flatnonzero(splits.masks(dataset, split)[0])


def first_points(dataset, split, seed=0):
  spec = specs.get(dataset)
  flat = train_flat(dataset, split)
  return spec.factor_indices(np.random.default_rng(seed).choice(flat, N))


def allowed(spec, split, state, j):
  """bool [n, size_j]: which values of factor j keep ``state`` a train point (by the rules)."""
  size = spec.sizes[j]
  cand = np.repeat(state[:, None, :], size, axis=1)
  cand[:, :, j] = np.arange(size)
  return ~splits.is_test(cand.reshape(-1, spec.num_factors), spec, split).reshape(-1, size)


@pytest.mark.parametrize("dataset,split", COMBOS)
def test_locatello_changes_the_first_k_changeable_factors_inside_the_train_split(dataset,
                                                                                split):
  spec = specs.get(dataset)
  first = first_points(dataset, split)
  sampler = pairs.PairSampler(spec, spec.factor_indices(train_flat(dataset, split)),
                              "locatello")
  rng = np.random.default_rng(1)
  k = rng.integers(1, spec.num_factors, N)
  order = np.argsort(rng.random((N, spec.num_factors)), axis=1)
  second = pairs.locatello(first, sampler.train_mask, spec, k, order,
                           rng.random((N, spec.num_factors)))
  assert not splits.is_test(second, spec, split).any()
  # Replay the rule in the sampler's visiting order: a factor changes, to another allowed
  # value, exactly when fewer than k have changed and it has another allowed value.
  state, changes, rows = first.copy(), np.zeros(N, int), np.arange(N)
  for t in range(spec.num_factors):
    j = order[:, t]
    ok = np.zeros((N, max(spec.sizes)), bool)
    for f in range(spec.num_factors):
      here = j == f
      ok[here, :spec.sizes[f]] = allowed(spec, split, state[here], f)
    ok[rows, state[rows, j]] = False
    must = (changes < k) & ok.any(1)
    old, new = state[rows, j], second[rows, j]
    assert (new[~must] == old[~must]).all()
    assert (new[must] != old[must]).all() and ok[rows[must], new[must]].all()
    state[rows, j] = new
    changes += must
  np.testing.assert_array_equal(state, second)
  assert ((second != first).sum(1) <= k).all()


@pytest.mark.parametrize("dataset", specs.DATASETS)
def test_locatello_changes_exactly_k_uniform_factors_where_all_stay_changeable(dataset):
  """On extrapolation every factor keeps several train values whatever the others are, so
  each pair differs in exactly k factors, k uniform on 1 .. n - 1 (or the k asked for), and a
  changed factor takes each other train value equally often."""
  spec = specs.get(dataset)
  split = "extrapolation"
  first = first_points(dataset, split, seed=2)
  train = spec.factor_indices(train_flat(dataset, split))
  second = pairs.PairSampler(spec, train, "locatello").second(first, step=3, seed=0)
  changed = (second != first).sum(1)
  counts = np.bincount(changed, minlength=spec.num_factors)
  assert counts[0] == 0
  assert stats.chisquare(counts[1:]).pvalue > 1e-4
  fixed = pairs.PairSampler(spec, train, "locatello", {"k": 2}).second(first, 3, 0)
  assert ((fixed != first).sum(1) == 2).all()
  j = spec.num_factors - 1  # a split factor with 10+ train values
  moved = second[:, j] != first[:, j]
  values = len(np.unique(train[:, j]))
  observed = np.bincount(second[moved, j], minlength=spec.sizes[j])
  expected = np.zeros(spec.sizes[j])
  for v in np.unique(train[:, j]):
    expected[np.unique(train[:, j])] += (first[moved, j] == v).sum() / (values - 1)
    expected[v] -= (first[moved, j] == v).sum() / (values - 1)
  keep = expected > 0
  assert observed[~keep].sum() == 0
  assert stats.chisquare(observed[keep], expected[keep]).pvalue > 1e-4


@pytest.mark.parametrize("dataset,split", COMBOS)
def test_laplace_keeps_categorical_factors_and_moves_the_others_with_laplace_odds(dataset,
                                                                                  split):
  spec = specs.get(dataset)
  first = first_points(dataset, split, seed=3)
  sampler = pairs.PairSampler(spec, spec.factor_indices(train_flat(dataset, split)),
                              "laplace")
  second = sampler.second(first, step=5, seed=1)
  assert not splits.is_test(second, spec, split).any()
  for j, factor in enumerate(spec.factors):
    if factor.categorical:
      np.testing.assert_array_equal(second[:, j], first[:, j])
      continue
    # The point when factor j is drawn: earlier factors already moved, later ones not yet.
    state = np.concatenate([second[:, :j], first[:, j:]], axis=1)
    size = factor.size
    ok = allowed(spec, split, state, j)
    p = ok * stats.laplace.pdf(np.arange(size)[None, :], loc=first[:, j:j + 1],
                               scale=math.log(size) / 1.0)
    p /= p.sum(1, keepdims=True)
    offsets = np.arange(size)[None, :] - first[:, j:j + 1] + size - 1
    expected = np.zeros(2 * size - 1)
    np.add.at(expected, offsets.ravel(), p.ravel())
    observed = np.bincount(second[:, j] - first[:, j] + size - 1, minlength=2 * size - 1)
    assert observed[expected == 0].sum() == 0, factor.name
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    obs, exp = obs[exp > 0], exp[exp > 0]
    assert stats.chisquare(obs, exp).pvalue > 1e-4, (factor.name, obs, exp)


def test_pair_draws_are_a_pure_function_of_seed_and_step():
  spec = specs.DSPRITES
  train = spec.factor_indices(train_flat("dsprites", "random"))
  first = train[:512]
  for kind in pairs.PAIR_SAMPLERS:
    sampler = pairs.PairSampler(spec, train, kind)
    a = sampler.second(first, step=7, seed=0)
    np.testing.assert_array_equal(pairs.PairSampler(spec, train, kind).second(first, 7, 0), a)
    assert (sampler.second(first, 8, 0) != a).any()
    assert (sampler.second(first, 7, 1) != a).any()


def test_sampler_options_are_checked():
  spec = specs.DSPRITES
  train = spec.factor_indices(train_flat("dsprites", "extrapolation"))
  with pytest.raises(ValueError, match="k = 5 changed factors out of range.*k in 1..4"):
    pairs.PairSampler(spec, train, "locatello", {"k": 5})
  with pytest.raises(ValueError, match="transition_rate must be positive"):
    pairs.PairSampler(spec, train, "laplace", {"transition_rate": 0.0})
  with pytest.raises(ValueError, match="takes options"):
    pairs.PairSampler(spec, train, "laplace", {"k": 1})
  with pytest.raises(ValueError, match="unknown pair sampler"):
    pairs.PairSampler(spec, train, "slow")


GRID = (3, 2, 10, 9, 9)


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() == 8, "conftest.py sets 8 fake CPU devices"
  return sharding.make_mesh()


@pytest.mark.parametrize("sampler", pairs.PAIR_SAMPLERS)
def test_pair_batches_start_from_the_epoch_order_and_resume_exactly(sampler, mesh):
  source = input_pipeline.make_source("dsprites", "interpolation", grid_sizes=GRID)
  batches = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh, sampler=sampler)
  assert batches.images_per_step == 128
  batch = batches.get(4)
  idx = np.asarray(batch["factor_indices"])
  assert idx.shape == (64, 2, 5) and "image" not in batch
  assert batch["factor_indices"].sharding.spec == sharding.batch_sharded(mesh).spec
  single = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh).get(4)
  np.testing.assert_array_equal(idx[:, 0], np.asarray(single["factor_indices"]))
  assert not splits.is_test(idx.reshape(-1, 5), source.spec, "interpolation").any()
  again = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh, sampler=sampler)
  for step in (9, 4):
    np.testing.assert_array_equal(np.asarray(again.get(step)["factor_indices"]),
                                  np.asarray(batches.get(step)["factor_indices"]))
  with pytest.raises(ValueError, match="unknown sampler 'triples'"):
    input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh, sampler="triples")


def test_stored_pairs_stay_in_the_files_train_records_and_read_both_images(tmp_path, mesh):
  """Published split files define the train part: a rule-train point that the files put in
  their test part is never the second image of a pair."""
  from gsgen.datasets import prepare
  grid = specs.SHAPES3D.subgrid((3, 3, 2, 2, 2, 3))
  official_dir = tmp_path / "official"
  official_dir.mkdir()
  images = np.random.default_rng(0).integers(0, 256, (grid.num_images,) + grid.image_shape,
                                             np.uint8)
  rule_train = splits.indices(grid, "extrapolation", "train")
  moved = rule_train[::3]  # the files' test part holds every third rule-train point
  parts = {"train": np.setdiff1d(rule_train, moved),
           "test": np.concatenate([splits.indices(grid, "extrapolation", "test"), moved])}
  for part, flat in parts.items():
    np.savez(official_dir / f"shapes3d_extrapolation_{part}_images.npz",
             images[flat].transpose(0, 3, 1, 2))
    np.savez(official_dir / f"shapes3d_extrapolation_{part}_labels.npz",
             grid.factor_indices(flat))
  prepare.prepare("shapes3d", "benchmark_extrapolation", tmp_path / "tfds", official_dir,
                  grid_sizes=grid.sizes)
  source = input_pipeline.make_source("shapes3d", "extrapolation", "benchmark_extrapolation",
                                      data_dir=tmp_path / "tfds")
  for sampler in pairs.PAIR_SAMPLERS:
    batches = input_pipeline.TrainBatches(source, 16, seed=0, mesh=mesh, sampler=sampler)
    seen = []
    for step in range(12):
      batch = batches.get(step)
      flat = grid.flat_index(np.asarray(batch["factor_indices"]))
      assert flat.shape == (16, 2) and np.asarray(batch["image"]).shape == (16, 2, 64, 64, 3)
      np.testing.assert_array_equal(np.asarray(batch["image"]), images[flat])
      seen.append(flat)
    seen = np.concatenate(seen)
    assert np.isin(seen, parts["train"]).all()
    assert (seen[:, 0] != seen[:, 1]).any()
