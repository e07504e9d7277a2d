"""Tests of the split rules of docs/metrics.md, Splits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsgen import splits
from gsgen import specs

ALL = [(d, s) for d in specs.DATASETS for s in splits.SPLITS]


@pytest.mark.parametrize("dataset,train,test", [
    ("dsprites", 240_000, 497_280),
    ("shapes3d", 147_456, 332_544),
    ("mpi3d", 311_040, 725_760),
])
def test_extrapolation_sizes_match_the_published_split(dataset, train, test):
  tr, te = splits.masks(dataset, "extrapolation")
  assert (int(tr.sum()), int(te.sum())) == (train, test)


@pytest.mark.parametrize("dataset,split", ALL)
def test_train_and_test_are_disjoint_and_cover_the_grid(dataset, split):
  tr, te = splits.masks(dataset, split)
  assert tr.shape == te.shape == (specs.get(dataset).num_images,)
  assert not np.any(tr & te)
  assert np.all(tr | te)
  assert tr.any() and te.any()


@pytest.mark.parametrize("dataset", specs.DATASETS)
def test_random_split_has_the_extrapolation_test_fraction(dataset):
  _, extrap = splits.masks(dataset, "extrapolation")
  _, rand = splits.masks(dataset, "random")
  assert rand.sum() == extrap.sum()
  assert splits.test_fraction(dataset) == extrap.mean()
  # A shuffle, not a band: test points are spread over the grid.
  assert 0.5 < rand[: len(rand) // 2].mean() / rand.mean() < 1.5
  assert (rand != extrap).any()


def test_random_split_is_the_seeded_shuffle():
  n, k = 737_280, 497_280
  expected = np.zeros(n, bool)
  expected[:k] = True
  np.random.RandomState(0).shuffle(expected)
  np.testing.assert_array_equal(splits.masks("dsprites", "random")[1], expected)


def test_marked_values_known_answers():
  ex = splits.marked_values("dsprites", "extrapolation")
  assert ex == {"scale": (4, 5), "orientation": tuple(range(32, 40)),
                "x_position": tuple(range(25, 32)), "y_position": tuple(range(25, 32))}
  interp = splits.marked_values("dsprites", "interpolation")
  # linspace(0, 5, 4) = 0, 1.67, 3.33, 5 rounds to 0, 2, 3, 5: 1 and 4 are held out.
  assert interp["scale"] == (1, 4)
  assert splits.marked_values("mpi3d", "interpolation")["camera_height"] == (1,)
  assert splits.marked_values("mpi3d", "extrapolation")["object_color"] == (5,)
  # Composition: q = 1 - (1 - 0.8**4)**(1/4) = 0.1234; floor(40 q) = 4, floor(6 q) = 0.
  comp = splits.marked_values("dsprites", "composition")
  assert comp["orientation"] == (0, 1, 2, 3) and comp["scale"] == ()
  assert splits.marked_values("dsprites", "random") == {}
  assert "shape" not in ex


@pytest.mark.parametrize("dataset", specs.DATASETS)
@pytest.mark.parametrize("split", ["interpolation", "extrapolation"])
def test_marked_band_sizes_follow_the_cut_ratio(dataset, split):
  spec = specs.get(dataset)
  for name, marked in splits.marked_values(dataset, split).items():
    size = spec.factors[spec.factor_index(name)].size
    assert len(marked) == math.ceil(size * spec.cut_ratio)
    if split == "interpolation":
      assert 0 not in marked and size - 1 not in marked


@pytest.mark.parametrize("dataset,split", ALL)
def test_is_test_rule_by_brute_force(dataset, split):
  """is_test on a sample of points equals the rule written out point by point."""
  spec = specs.get(dataset)
  marked = splits.marked_values(dataset, split)
  rng = np.random.default_rng(1)
  idx = spec.factor_indices(rng.integers(0, spec.num_images, 300))
  got = splits.is_test(idx, dataset, split)
  if split == "random":
    return  # pinned by test_random_split_is_the_seeded_shuffle
  for row, g in zip(idx, got):
    hits = [row[spec.factor_index(n)] in m for n, m in marked.items()]
    expected = not any(hits) if split == "composition" else any(hits)
    assert g == expected


@pytest.mark.parametrize("dataset,split", ALL)
def test_is_test_under_jit_equals_numpy_on_the_whole_grid(dataset, split):
  spec = specs.get(dataset)
  grid = spec.all_factor_indices()
  expected = splits.is_test(grid, dataset, split)
  fn = jax.jit(lambda x: splits.is_test(x, dataset, split))
  got = np.asarray(fn(jnp.asarray(grid, jnp.int32)))
  np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dataset", specs.DATASETS)
@pytest.mark.parametrize("split", ["interpolation", "extrapolation"])
def test_one_factor_ood_subsets(dataset, split):
  spec = specs.get(dataset)
  _, test = splits.masks(dataset, split)
  subsets = splits.one_factor_ood(dataset, split)
  assert set(subsets) == {spec.factors[i].name for i in spec.split_factors}
  union = np.zeros_like(test)
  grid = spec.all_factor_indices()
  marked = splits.marked_values(dataset, split)
  for name, mask in subsets.items():
    assert mask.any()
    assert not np.any(mask & union)  # exactly one factor OOD: subsets are disjoint
    assert np.all(test[mask])  # inside the test set
    j = spec.factor_index(name)
    assert np.all(np.isin(grid[mask, j], marked[name]))
    union |= mask
  # Points with two or more OOD factors are in no subset.
  ood = splits.ood_factors(grid, dataset, split)
  np.testing.assert_array_equal(union, ood.sum(1) == 1)


def test_one_factor_ood_known_size():
  # dSprites extrapolation, scale OOD only: 3 shapes x 2 scales x 32 x 25 x 25 = 120,000.
  assert splits.one_factor_ood("dsprites", "extrapolation")["scale"].sum() == 120_000


def test_one_factor_ood_under_jit():
  spec = specs.SHAPES3D
  grid = spec.all_factor_indices()
  fn = jax.jit(lambda x: splits.is_one_factor_ood(x, spec, "interpolation", "wall_hue"))
  np.testing.assert_array_equal(np.asarray(fn(jnp.asarray(grid, jnp.int32))),
                                splits.one_factor_ood(spec, "interpolation")["wall_hue"])


def test_indices_are_the_mask_positions():
  train = splits.indices("shapes3d", "extrapolation", "train")
  assert len(train) == 147_456 and np.all(np.diff(train) > 0)
  assert not splits.is_test(specs.SHAPES3D.factor_indices(train), "shapes3d",
                            "extrapolation").any()


def test_bad_names_list_the_valid_ones():
  with pytest.raises(ValueError, match="random, composition, interpolation, extrapolation"):
    splits.masks("dsprites", "heldout")
  with pytest.raises(ValueError, match="dsprites, shapes3d, mpi3d"):
    splits.masks("mnist", "random")
  with pytest.raises(ValueError, match="interpolation and extrapolation"):
    splits.one_factor_ood("dsprites", "random")
  with pytest.raises(ValueError, match="never split"):
    splits.is_one_factor_ood(np.zeros((1, 5), int), "dsprites", "extrapolation", "shape")
  with pytest.raises(ValueError, match="5 columns"):
    splits.is_test(np.zeros((2, 4), int), "dsprites", "random")


def test_summary_table_lists_every_combination():
  text = splits.summary_table()
  for split in splits.SPLITS:
    assert text.count(split) >= 3
  assert "240,000" in text and "332,544" in text and "725,760" in text
