"""Tests of the training order, batch contents and evaluation batches."""

import jax
import numpy as np
import pytest

import official_files

from gsgen import evaluate
from gsgen import input_pipeline
from gsgen import sharding
from gsgen import split_data
from gsgen import splits

GRID = (3, 2, 10, 9, 9)  # a reduced dSprites grid (4,860 points) where every split trains


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() == 8, "conftest.py sets 8 fake CPU devices"
  return sharding.make_mesh()


def test_each_epoch_visits_every_training_record_once():
  n, b = 100, 8
  seen = np.concatenate([input_pipeline.train_positions(s, b, n, seed=3) for s in range(25)])
  assert sorted(seen[:100]) == list(range(100)) and sorted(seen[100:200]) == list(range(100))
  # Another seed, another order.
  other = np.concatenate([input_pipeline.train_positions(s, b, n, seed=4) for s in range(13)])
  assert (other[:100] != seen[:100]).any()


def test_order_is_a_pure_function_of_the_step():
  n, b = 1000, 64
  forward = [input_pipeline.train_positions(s, b, n, 0) for s in range(40)]
  backward = [input_pipeline.train_positions(s, b, n, 0) for s in reversed(range(40))][::-1]
  for a, c in zip(forward, backward):
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("split", splits.SPLITS)
def test_no_test_point_reaches_a_training_batch(split, mesh):
  source = split_data.make("dsprites", split, grid_sizes=GRID)
  batches = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh)
  steps = 2 * len(source.train) // 64 + 3  # more than two epochs
  seen = []
  for step in range(steps):
    batch = batches.get(step)
    assert batch["factor_indices"].sharding.spec == sharding.batch_sharded(mesh).spec
    seen.append(np.asarray(batch["factor_indices"]))
  seen = np.concatenate(seen)
  assert not splits.is_test(seen, source.spec, split).any()
  # Every training point is used.
  assert set(source.spec.flat_index(seen)) == set(source.train.flat_indices)


def test_batch_size_must_split_over_devices(mesh):
  source = split_data.make("dsprites", "random", grid_sizes=GRID)
  with pytest.raises(ValueError, match="multiple of the number of devices"):
    input_pipeline.TrainBatches(source, 60, seed=0, mesh=mesh)


def test_eval_batches_cover_the_part_once_with_a_padded_mask(mesh):
  """evaluate.run pads the last batch and masks it; eval_batch reads exactly the positions."""
  source = split_data.make("dsprites", "interpolation", grid_sizes=GRID)
  seen, shapes = [], set()

  class Recorder:
    def update(self, predictions, factor_indices, mask):
      shapes.add(np.asarray(factor_indices).shape)
      seen.append(np.asarray(factor_indices)[mask])

    def result(self):
      return {}

  def predict(batch):
    return np.zeros(batch["factor_indices"].shape, np.float32)

  evaluate.run(predict, lambda pos: input_pipeline.eval_batch(source, "test", pos, mesh),
               source.test.factor_indices, np.arange(len(source.test)), 96, Recorder())
  seen = np.concatenate(seen)
  assert shapes == {(96, 5)}
  np.testing.assert_array_equal(source.spec.flat_index(seen), source.test.flat_indices)
  assert len(source.test) % 96  # the last batch really was padded


def test_eval_batch_of_chosen_records(mesh):
  source = split_data.make("dsprites", "random", grid_sizes=GRID)
  pick = np.array([0, 5, 7, 7, 0, 5, 7, 9])
  batch = input_pipeline.eval_batch(source, "test", pick, mesh)
  assert len(batch["factor_indices"].sharding.device_set) == 8
  np.testing.assert_array_equal(np.asarray(batch["factor_indices"]),
                                source.test.factor_indices[pick])


def test_benchmark_source_must_match_the_split():
  with pytest.raises(ValueError, match="published extrapolation split"):
    split_data.make("dsprites", "random", "benchmark_extrapolation",
                    data_dir="/nonexistent")


def test_procedural_source_names_its_data():
  source = split_data.make("shapes3d", "composition", grid_sizes=(2, 2, 2, 2, 4, 2))
  assert source.renders_on_device and source.data_source == "procedural"
  assert len(source.train) + len(source.test) == source.spec.num_images


def test_prepared_source_reads_train_images_from_disk(tmp_path, mesh):
  from gsgen.datasets import prepare
  from gsgen.datasets import procedural
  prepare.prepare("dsprites", "procedural", tmp_path, grid_sizes=GRID)
  source = split_data.make("dsprites", "extrapolation", "procedural:stored",
                           data_dir=tmp_path)
  assert not source.renders_on_device and source.data_source == "procedural"
  batches = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh)
  for step in (0, 1, 7):
    batch = batches.get(step)
    idx = np.asarray(batch["factor_indices"])
    assert not splits.is_test(idx, source.spec, "extrapolation").any()
    np.testing.assert_array_equal(
        np.asarray(batch["image"]),
        procedural.render_numpy(source.spec, factor_indices=idx))
  # The same batches as rendering on the fly would train on.
  live = input_pipeline.TrainBatches(
      split_data.make("dsprites", "extrapolation", grid_sizes=GRID), 64, 0, mesh)
  np.testing.assert_array_equal(np.asarray(live.get(7)["factor_indices"]), idx)


def test_benchmark_source_reads_the_files_and_counts_disagreements(tmp_path, mesh):
  from gsgen.datasets import prepare
  from gsgen import specs
  grid = specs.SHAPES3D.subgrid((2, 2, 2, 2, 4, 3))
  official_dir = tmp_path / "official"
  official_dir.mkdir()
  images = np.random.default_rng(0).integers(0, 256, (grid.num_images, 64, 64, 3), np.uint8)
  rng = np.random.default_rng(1)
  train = rng.permutation(splits.indices(grid, "interpolation", "train"))
  test = rng.permutation(splits.indices(grid, "interpolation", "test"))
  # Files that disagree with the rules: two test points trained on, one train point tested.
  train, test = np.concatenate([train[1:], test[:2]]), np.concatenate([test[2:], train[:1]])
  official_files.write_split(official_dir, "shapes3d", "interpolation", grid, images,
                             {"train": train, "test": test})
  prepare.prepare("shapes3d", "benchmark_interpolation", tmp_path / "tfds", official_dir,
                  grid_sizes=grid.sizes)
  source = split_data.make("shapes3d", "interpolation", "benchmark_interpolation",
                           data_dir=tmp_path / "tfds")
  assert source.disagreeing_records == 3 and source.spec.sizes == grid.sizes
  assert source.data_source == "official" and not source.renders_on_device
  assert source.data.name == "benchmark_interpolation"
  # The files' parts as published, in file order, never re-split by the rules.
  np.testing.assert_array_equal(source.train.flat_indices, train)
  np.testing.assert_array_equal(source.test.flat_indices, test)
  batch = input_pipeline.TrainBatches(source, 16, seed=0, mesh=mesh).get(0)
  flat = grid.flat_index(np.asarray(batch["factor_indices"]))
  np.testing.assert_array_equal(np.asarray(batch["image"]), images[flat])
  pick = np.arange(16)
  batch = input_pipeline.eval_batch(source, "test", pick, mesh)
  np.testing.assert_array_equal(grid.flat_index(np.asarray(batch["factor_indices"])),
                                test[pick])
  np.testing.assert_array_equal(np.asarray(batch["image"]), images[test[pick]])


def test_grid_sources_have_no_disagreements():
  source = split_data.make("dsprites", "composition", grid_sizes=GRID)
  assert source.disagreeing_records == 0 and source.data.name == "procedural"
  assert not splits.is_test(source.train.factor_indices, source.spec, "composition").any()
  assert splits.is_test(source.test.factor_indices, source.spec, "composition").all()
