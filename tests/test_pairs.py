"""The pair samplers on every dataset x split: never outside the train split, never the
same point twice, the reference's fixed factors; on the random split (where the train part
has no product structure) the law of the changed factors equals the reference transition
conditioned on the train split, computed exactly over the grid; pair batches are pure
functions of (seed, step).

Membership is checked with the split rules (`splits.is_test`) and the reference laws are
written here from slow_disentanglement's ``dataset.py``, independently of the sampler.
"""

import functools
import math

import jax
import numpy as np
import pytest
from scipy import stats

import official_files

from gsgen import input_pipeline
from gsgen import pairs
from gsgen import sharding
from gsgen import specs
from gsgen import split_data
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


def laplace_law(spec, start, rate=1.0):
  """slow_disentanglement's ``truncated_laplace`` from ``start`` as a law over the flat grid,
  written from its steps: each factor but the fixed ones drawn from ``laplace.pdf`` on its
  values, normalised; if nothing moved, one movable factor, chosen uniformly, redrawn with its
  own value excluded."""
  fixed = {"dsprites": {0}, "shapes3d": {4}, "mpi3d": {1}}[spec.name]
  movable = [j for j in range(spec.num_factors) if j not in fixed]
  grid = spec.all_factor_indices()
  per = []
  for j in range(spec.num_factors):
    x = np.arange(spec.sizes[j])
    if j in fixed:
      p = (x == start[j]).astype(float)
    else:
      p = stats.laplace.pdf(x, loc=start[j], scale=math.log(spec.sizes[j]) / rate)
      p /= p.sum()
    per.append(p)
  law = np.prod([per[j][grid[:, j]] for j in range(spec.num_factors)], axis=0)
  stay = law[spec.flat_index(start)]
  law[spec.flat_index(start)] = 0.0
  for j in movable:
    q = per[j].copy()
    q[start[j]] = 0.0
    q /= q.sum()
    one = (grid != start).sum(1) == 1
    one &= grid[:, j] != start[j]
    law[one] += stay / len(movable) * q[grid[one, j]]
  return law


def locatello_law(spec, start, k):
  """slow_disentanglement's "uniform" prior from ``start`` at ``k`` changes, over the flat
  grid: k distinct factors chosen uniformly, each to another value, uniformly."""
  grid = spec.all_factor_indices()
  moved = grid != start
  per_point = np.prod(np.where(moved, 1.0 / (np.asarray(spec.sizes) - 1), 1.0), axis=1)
  return np.where(moved.sum(1) == k, per_point / math.comb(spec.num_factors, k), 0.0)


def conditioned(law, mask):
  law = law * mask
  return law / law.sum()


def changed_sets(first, second):
  """Which factors each pair changed, as an integer bit set."""
  return ((second != first) * (1 << np.arange(first.shape[1]))).sum(1)


@pytest.mark.parametrize("dataset,split", COMBOS)
@pytest.mark.parametrize("kind", ["locatello", "laplace"])
def test_pairs_stay_inside_the_train_split_and_never_repeat_the_first_point(dataset, split,
                                                                            kind):
  spec = specs.get(dataset)
  first = first_points(dataset, split)
  sampler = pairs.PairSampler(spec, spec.factor_indices(train_flat(dataset, split)), kind)
  second = sampler.second(first, step=5, seed=1)
  assert not splits.is_test(second, spec, split).any()
  assert not (second == first).all(1).any()
  if kind == "laplace":
    for j, factor in enumerate(spec.factors):
      if factor.name in pairs.LAPLACE_FIXED[dataset]:
        np.testing.assert_array_equal(second[:, j], first[:, j])
      else:
        assert (second[:, j] != first[:, j]).any(), factor.name


def test_the_laplace_transition_fixes_the_references_factors_only():
  assert pairs.LAPLACE_FIXED == {"dsprites": ("shape",), "shapes3d": ("shape",),
                                 "mpi3d": ("object_shape",)}
  spec = specs.MPI3D
  # MPI3D's colours are categorical for the rest of gsgen, yet move under the transition.
  assert spec.categorical[spec.factor_index("object_color")]
  sampler = pairs.PairSampler(spec, spec.all_factor_indices(), "laplace")
  assert [spec.factor_names[j] for j in sampler.moving] == [
      "object_color", "object_size", "camera_height", "background_color", "horizontal_axis",
      "vertical_axis"]


def chisquare_pvalue(observed, expected):
  """Pearson's chi-square over cells with at least 5 expected draws, the rest pooled."""
  big = expected >= 5
  obs = np.append(observed[big], observed[~big].sum())
  exp = np.append(expected[big], expected[~big].sum())
  keep = exp > 0
  assert observed[expected == 0].sum() == 0
  return stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue


@pytest.mark.parametrize("dataset", specs.DATASETS)
@pytest.mark.parametrize("kind", ["locatello", "laplace"])
def test_pairs_on_the_random_split_follow_the_transition_conditioned_on_the_train_split(
    dataset, kind):
  """From fixed first points, which factors change follows the reference transition
  restricted to the train points and renormalised (computed exactly over the grid), not a
  factor-by-factor draw; for locatello, given the k drawn."""
  spec = specs.get(dataset)
  train = train_flat(dataset, "random")
  mask = np.zeros(spec.num_images, bool)
  mask[train] = True
  sampler = pairs.PairSampler(spec, spec.factor_indices(train), kind)
  n = spec.num_factors
  for i, start in enumerate(spec.factor_indices(train[[0, len(train) // 2]])):
    if kind == "laplace":
      law = conditioned(laplace_law(spec, start), mask)
    else:  # k keeps its law, uniform on 1 .. n - 1; the point is conditioned given k
      law = sum(conditioned(locatello_law(spec, start, k), mask) for k in range(1, n)) / (n - 1)
    sets = changed_sets(start[None], spec.all_factor_indices())
    expected = np.bincount(sets, weights=law, minlength=1 << spec.num_factors)
    draws = 20_000
    second = sampler.second(np.repeat(start[None], draws, 0), step=i, seed=3)
    observed = np.bincount(changed_sets(start[None], second), minlength=len(expected))
    assert chisquare_pvalue(observed, expected * draws) > 1e-4, (start, kind)
    if kind == "locatello":
      # k = the number of changed factors keeps its uniform law on 1 .. n - 1.
      k = np.bincount((second != start).sum(1), minlength=spec.num_factors)
      assert k[0] == 0 and stats.chisquare(k[1:]).pvalue > 1e-4


def test_the_exact_law_of_the_sampler_equals_the_references():
  spec = specs.SHAPES3D
  sampler = pairs.PairSampler(spec, spec.all_factor_indices(), "laplace")
  start = np.array([3, 9, 0, 7, 2, 5])
  np.testing.assert_allclose(sampler.law(start), laplace_law(spec, start), rtol=1e-10,
                             atol=1e-18)
  assert sampler.law(start).sum() == pytest.approx(1.0)
  loc = pairs.PairSampler(spec, spec.all_factor_indices(), "locatello")
  for k in range(1, spec.num_factors):
    np.testing.assert_allclose(loc.law(start, k), locatello_law(spec, start, k), rtol=1e-10,
                               atol=1e-18)


def test_rows_the_rejection_rounds_miss_come_from_the_exact_conditioned_law(monkeypatch):
  """A train split of two points: from one, the only pair partner is the other, reached by
  the exact draw after the proposals fail (for locatello at k = 4 whatever k was drawn)."""
  spec = specs.DSPRITES.subgrid((3, 6, 4, 4, 4))
  train = np.array([[0, 0, 0, 0, 0], [0, 5, 3, 3, 3]])  # four factors apart
  for kind in ("laplace", "locatello"):
    sampler = pairs.PairSampler(spec, train, kind)
    second = sampler.second(np.repeat(train[:1], 16, 0), step=0, seed=0)
    np.testing.assert_array_equal(second, np.repeat(train[1:], 16, 0))
  with pytest.raises(RuntimeError, match="no other train point"):
    pairs.PairSampler(spec, train[:1], "laplace").second(train[:1], 0, 0)


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
  source = split_data.make("dsprites", "interpolation", grid_sizes=GRID)
  batches = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh, sampler=sampler)
  width = pairs.images_per_example(sampler)
  assert batches.images_per_step == 64 * width
  batch = batches.get(4)
  idx = np.asarray(batch["factor_indices"])
  assert idx.shape == (64, width, 5) and "image" not in batch
  assert batch["factor_indices"].sharding.spec == sharding.batch_sharded(mesh).spec
  single = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh).get(4)
  np.testing.assert_array_equal(idx[:, 0], np.asarray(single["factor_indices"]))
  assert not splits.is_test(idx.reshape(-1, 5), source.spec, "interpolation").any()
  again = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh, sampler=sampler)
  for step in (9, 4):
    np.testing.assert_array_equal(np.asarray(again.get(step)["factor_indices"]),
                                  np.asarray(batches.get(step)["factor_indices"]))
  if width == 3:
    # PCL's negatives: train points drawn uniformly, on a stream of their own (the pairs are
    # those of the plain laplace sampler).
    plain = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh, sampler="laplace")
    np.testing.assert_array_equal(idx[:, :2], np.asarray(plain.get(4)["factor_indices"]))
    negatives = np.concatenate([np.asarray(batches.get(s)["factor_indices"])[:, 2]
                                for s in range(40)])
    counts = np.bincount(source.spec.flat_index(negatives), minlength=source.spec.num_images)
    train = np.flatnonzero(~splits.is_test(source.spec.all_factor_indices(), source.spec,
                                           "interpolation"))
    assert counts[np.setdiff1d(np.arange(len(counts)), train)].sum() == 0
    assert stats.chisquare(counts[train]).pvalue > 1e-4
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
  official_files.write_split(official_dir, "shapes3d", "extrapolation", grid, images, parts)
  prepare.prepare("shapes3d", "benchmark_extrapolation", tmp_path / "tfds", official_dir,
                  grid_sizes=grid.sizes)
  source = split_data.make("shapes3d", "extrapolation", "benchmark_extrapolation",
                           data_dir=tmp_path / "tfds")
  for sampler in pairs.PAIR_SAMPLERS:
    batches = input_pipeline.TrainBatches(source, 16, seed=0, mesh=mesh, sampler=sampler)
    seen = []
    for step in range(12):
      batch = batches.get(step)
      flat = grid.flat_index(np.asarray(batch["factor_indices"]))
      width = pairs.images_per_example(sampler)
      assert flat.shape == (16, width)
      assert np.asarray(batch["image"]).shape == (16, width, 64, 64, 3)
      np.testing.assert_array_equal(np.asarray(batch["image"]), images[flat])
      seen.append(flat)
    seen = np.concatenate(seen)
    assert np.isin(seen, parts["train"]).all()
    assert (seen[:, 0] != seen[:, 1]).any()
