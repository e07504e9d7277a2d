"""Tests of the factor tables and index conversions."""

import math

import numpy as np
import pytest

from gsgen import specs


@pytest.mark.parametrize("name,sizes,num_images,cut", [
    ("dsprites", (3, 6, 40, 32, 32), 737_280, 0.2),
    ("shapes3d", (10, 10, 10, 8, 4, 15), 480_000, 0.15),
    ("mpi3d", (6, 6, 2, 3, 3, 40, 40), 1_036_800, 0.1),
])
def test_tables_match_spec(name, sizes, num_images, cut):
  spec = specs.get(name)
  assert spec.sizes == sizes
  assert spec.num_images == num_images == math.prod(sizes)
  assert spec.cut_ratio == cut
  assert spec.image_shape[:2] == (64, 64)


def test_split_and_categorical_flags():
  assert specs.DSPRITES.split_factors == (1, 2, 3, 4)
  assert specs.SHAPES3D.split_factors == (0, 1, 2, 3, 5)
  assert specs.MPI3D.split_factors == (0, 3, 4, 5, 6)
  assert specs.DSPRITES.categorical.tolist() == [True, False, False, False, False]
  assert specs.SHAPES3D.categorical.tolist() == [False, False, False, False, True, False]


def test_value_tables():
  d = specs.DSPRITES
  np.testing.assert_allclose(d.factors[1].values, np.linspace(0.5, 1, 6))
  assert d.factors[2].values[-1] == pytest.approx(2 * np.pi)
  np.testing.assert_allclose(specs.SHAPES3D.factors[0].values, np.arange(10) / 10)
  np.testing.assert_allclose(specs.SHAPES3D.factors[5].values, np.linspace(-30, 30, 15))
  assert specs.SHAPES3D.factors[4].value_names == ("cube", "cylinder", "sphere", "capsule")


@pytest.mark.parametrize("name", specs.DATASETS)
def test_flat_index_round_trip_and_row_major_order(name):
  spec = specs.get(name)
  rng = np.random.default_rng(0)
  flat = rng.integers(0, spec.num_images, 1000)
  idx = spec.factor_indices(flat)
  np.testing.assert_array_equal(spec.flat_index(idx), flat)
  # Row-major: the last factor varies fastest.
  np.testing.assert_array_equal(spec.factor_indices(1)[-1], 1)
  assert spec.flat_index(np.array(spec.sizes) - 1) == spec.num_images - 1


def test_known_flat_index():
  # dSprites: 12345 = 0*245760 + 0*40960 + 12*1024 + 1*32 + 25.
  np.testing.assert_array_equal(specs.DSPRITES.factor_indices(12345), [0, 0, 12, 1, 25])


def test_flat_index_on_jax_arrays():
  import jax
  import jax.numpy as jnp
  spec = specs.MPI3D
  idx = spec.factor_indices(np.arange(0, spec.num_images, 997))
  got = jax.jit(spec.flat_index)(jnp.asarray(idx, jnp.int32))
  np.testing.assert_array_equal(np.asarray(got), spec.flat_index(idx))


@pytest.mark.parametrize("name", specs.DATASETS)
def test_targets_are_normalised_indices(name):
  spec = specs.get(name)
  grid = spec.all_factor_indices()[:: 101]
  t = spec.targets(grid)
  assert t.min() >= 0 and t.max() <= 1
  np.testing.assert_allclose(t * (np.array(spec.sizes) - 1), grid, atol=1e-4)


@pytest.mark.parametrize("name", specs.DATASETS)
def test_grid_variance_equals_empirical(name):
  spec = specs.get(name)
  t = spec.targets(spec.all_factor_indices()).astype(np.float64)
  np.testing.assert_allclose(t.var(0), spec.grid_variance(), rtol=1e-6)
  np.testing.assert_allclose(t.mean(0), spec.grid_mean(), rtol=1e-6)


def test_indices_from_noisy_values():
  spec = specs.SHAPES3D
  idx = spec.factor_indices(np.arange(0, spec.num_images, 7))
  noisy = spec.values(idx) + np.random.default_rng(0).normal(0, 1e-9, idx.shape)
  np.testing.assert_array_equal(spec.indices_from_values(noisy), idx)


def test_off_grid_values_are_refused():
  values = specs.SHAPES3D.values(np.zeros((1, 6), int))
  values[0, 3] = 0.8  # scale table is 0.75, 0.821..., not 0.8
  with pytest.raises(ValueError, match="scale"):
    specs.SHAPES3D.indices_from_values(values)


def test_unknown_dataset_lists_valid_names():
  with pytest.raises(ValueError, match="dsprites, shapes3d, mpi3d"):
    specs.get("cifar")


def test_out_of_range_flat_index():
  with pytest.raises(ValueError, match="out of range"):
    specs.DSPRITES.factor_indices(737_280)


def test_mpi3d_grid_from_length():
  assert specs.mpi3d_for_num_images(1_036_800) is specs.MPI3D
  legacy = specs.mpi3d_for_num_images(460_800)
  assert legacy.sizes == (4, 4, 2, 3, 3, 40, 40)
  with pytest.raises(ValueError, match="1,036,800"):
    specs.mpi3d_for_num_images(1000)


def test_subgrid_keeps_index_meaning():
  small = specs.SHAPES3D.subgrid((2, 3, 4, 5, 4, 6))
  assert small.sizes == (2, 3, 4, 5, 4, 6) and small.num_images == 2880
  assert small.name == "shapes3d"
  idx = small.all_factor_indices()
  np.testing.assert_array_equal(small.values(idx), specs.SHAPES3D.values(idx))
  assert small.factors[4].value_names == ("cube", "cylinder", "sphere", "capsule")
  with pytest.raises(ValueError, match="subgrid"):
    specs.SHAPES3D.subgrid((11, 3, 4, 5, 4, 6))
