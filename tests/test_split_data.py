"""The run's data resolved once (one name resolution, one pass of the split rules), the
one-call parts for a user's own loop, and runs on the published split files."""

import collections
import dataclasses
import json

import numpy as np
import pytest

import official_files

from gsgen import pairs
from gsgen import specs
from gsgen import split_data
from gsgen import splits
from gsgen import train
from gsgen import validate
from gsgen.configs import benchmark
from gsgen.datasets import prepare
from gsgen.datasets import procedural

GRID = (2, 3, 6, 5, 5)


def test_split_parts_match_the_split_masks():
  train_part, test_part = split_data.parts("dsprites", "extrapolation", grid_sizes=GRID)
  spec = specs.DSPRITES.subgrid(GRID)
  train_mask, test_mask = splits.masks(spec, "extrapolation")
  assert len(train_part) == train_mask.sum() and len(test_part) == test_mask.sum()
  np.testing.assert_array_equal(spec.flat_index(train_part.factor_indices),
                                np.flatnonzero(train_mask))
  np.testing.assert_array_equal(spec.flat_index(test_part.factor_indices),
                                np.flatnonzero(test_mask))
  np.testing.assert_allclose(test_part.targets, spec.targets(test_part.factor_indices))


def test_items_and_batches_are_the_rendered_images():
  train_part, _ = split_data.parts("dsprites", "random", grid_sizes=GRID)
  spec = train_part.spec
  pick = np.array([0, 7, len(train_part) - 1])
  images, targets = train_part.batch(pick)
  expected = procedural.render_numpy(spec, factor_indices=train_part.factor_indices[pick])
  np.testing.assert_array_equal(images, expected.astype(np.float32) / 255)
  np.testing.assert_array_equal(targets, train_part.targets[pick])
  image, target = train_part[7]
  np.testing.assert_array_equal(image, images[1])
  items = train_part.__getitems__(pick.tolist())  # PyTorch's batched fetch
  assert len(items) == 3 and items[2][0].shape == (64, 64, 1)
  with pytest.raises(IndexError, match="out of range"):
    train_part.batch([len(train_part)])


def test_channels_first_for_pytorch():
  train_part, _ = split_data.parts("shapes3d", "composition", grid_sizes=(10, 2, 2, 2, 2, 2),
                                   channels_first=True)
  image, target = train_part[0]
  assert image.shape == (3, 64, 64) and image.dtype == np.float32 and target.shape == (6,)


def test_benchmark_files_are_scored_as_they_are_with_disagreements_counted(tmp_path):
  """Published split files whose test part also holds some of the rules' train points."""
  grid = specs.SHAPES3D.subgrid((4, 4, 3, 3, 2, 3))
  official_dir, data_dir = tmp_path / "official", tmp_path / "tfds"
  official_dir.mkdir()
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (grid.num_images,) + grid.image_shape, np.uint8)
  rule_train = splits.indices(grid, "extrapolation", "train")
  moved = rule_train[:5]  # rule-train points the files put in their test part
  parts = {"train": rule_train[5:],
           "test": np.concatenate([splits.indices(grid, "extrapolation", "test"), moved])}
  official_files.write_split(official_dir, "shapes3d", "extrapolation", grid, images, parts)
  prepare.prepare("shapes3d", "benchmark_extrapolation", data_dir, official_dir,
                  grid_sizes=grid.sizes)
  config = benchmark.get_config("dataset=shapes3d,split=extrapolation,preset=smoke,"
                                "source=benchmark_extrapolation")
  config.data.data_dir = str(data_dir)
  config.progress = False
  train.train_and_evaluate(config, str(tmp_path / "run"))
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["test"]["num_examples"] == len(parts["test"])
  assert results["test"]["split_disagreements"] == len(moved)
  assert results["data_source"] == "official"
  assert results["source"] == "benchmark_extrapolation"


# JAX warns at every fork that it may deadlock; the parts keep JAX out of their workers.
@pytest.mark.filterwarnings("ignore:os.fork.. was called")
@pytest.mark.parametrize("source", ["procedural", "procedural:stored"])
def test_dataloader_workers_forked_after_jax_started_yield_the_single_process_batches(
    source, tmp_path):
  """Two DataLoader workers forked from this process, where JAX has rendered (or array_record
  has read) already, as after the README's ``train[0]``, give exactly the batches of the
  single-process loader."""
  torch = pytest.importorskip("torch")
  grid = (3, 2, 6, 6, 6)
  if source != "procedural":
    prepare.prepare("dsprites", "procedural", tmp_path, grid_sizes=grid)
  train, _ = split_data.parts("dsprites", "extrapolation", source, data_dir=tmp_path,
                              grid_sizes=grid if source == "procedural" else None)
  train[0]  # the renderer or the reader is running in this process before the fork

  def batches(workers):
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True,
                                         num_workers=workers, timeout=120 if workers else 0)
    return [(x.numpy(), y.numpy()) for x, y in loader]

  single, forked = batches(0), batches(2)
  assert len(single) == len(forked) == -(-len(train) // 64) > 2
  for (x0, y0), (x1, y1) in zip(single, forked):
    np.testing.assert_array_equal(x0, x1)
    np.testing.assert_array_equal(y0, y1)


def test_train_rows_and_train_mean_are_those_of_the_train_records():
  spec = specs.DSPRITES.subgrid(GRID)
  d = split_data.make("dsprites", "interpolation", grid_sizes=GRID)
  train_mask, _ = splits.masks(spec, "interpolation")
  np.testing.assert_array_equal(d.train_rows >= 0, train_mask)
  np.testing.assert_array_equal(d.train_rows[train_mask], np.arange(train_mask.sum()))
  np.testing.assert_array_equal(
      d.train_mean, spec.targets(spec.all_factor_indices()[train_mask]).astype(np.float64).mean(0))
  # Composition's low bands are empty on a grid of two values per factor: no train point.
  empty = split_data.make("dsprites", "composition", grid_sizes=(3, 2, 2, 2, 2))
  assert not len(empty.train)
  with pytest.raises(ValueError, match="no training points"):
    empty.train_mean  # pylint: disable=pointless-statement


def test_k_is_checked_once_against_the_grid_the_run_trains_on():
  """One validator for ``k`` (`pairs.check_options`), run by validate.config on the grid the
  run trains on and by the sampler: k changes need factors of more than one value."""
  config = benchmark.get_config("dataset=dsprites,learner=ada_gvae,preset=smoke")
  config.learner_kwargs.k = 4
  validate.config(config, 8)  # 5 factors: k in 0..4
  # A grid where two factors hold one value (subgrid() keeps at least two of each).
  flat = dataclasses.replace(specs.DSPRITES, factors=tuple(
      dataclasses.replace(f, values=f.values[:1]) if i in (0, 4) else f
      for i, f in enumerate(specs.DSPRITES.factors)))
  with pytest.raises(ValueError, match=r"learner_kwargs.k must be an integer from 0 .* to 2; "
                                       r"k = 4 changed factors out of range.*k in 1..2"):
    validate.config(config, 8, flat)
  config.learner_kwargs.k = 2
  validate.config(config, 8, flat)
  small = split_data.make("dsprites", "random", grid_sizes=GRID)
  sampler = pairs.PairSampler(small.spec, small.train.factor_indices, "locatello", {"k": 4},
                              train_rows=small.train_rows)
  np.testing.assert_array_equal(sampler.train_mask, small.train_rows >= 0)
  config = benchmark.get_config("dataset=dsprites,learner=slow_vae,preset=smoke")
  config.learner_kwargs.transition_rate = 0.0
  with pytest.raises(ValueError, match="learner_kwargs.transition_rate must be positive"):
    validate.config(config, 8)


def test_a_run_resolves_its_dataset_once_and_applies_the_split_rules_once(tmp_path,
                                                                         monkeypatch):
  """A procedural run of a pair learner with pictures and a readout (the whole training path:
  validation, pair batches, evaluation, pictures) names its dataset by a string once, in
  `split_data.make`, and computes the split's masks once; below, everything takes the spec.
  (`specs.get` of a spec only passes it through and is not counted.)"""
  calls = collections.Counter()

  def counting(module, name, count_if=lambda *a: True):
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
      if count_if(*args):
        calls[name] += 1
      return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)

  counting(specs, "get", lambda dataset: not isinstance(dataset, specs.DatasetSpec))
  counting(splits, "masks")
  config = benchmark.get_config("dataset=dsprites,split=extrapolation,learner=slow_vae,"
                                "preset=smoke")
  config.progress = False
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results["files"] and results["stages"] == {"representation": 4, "readout": 4}
  assert calls == {"get": 1, "masks": 1}
