"""Starting points: another run's checkpoint, a weight file, and a finished run in Python."""

import os
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx

from gsgen import evaluate
from gsgen.weights import start
from gsgen import models
from gsgen import runs
from gsgen import splits
from gsgen import train
from gsgen import workdir as workdir_lib
from gsgen.configs import benchmark
from gsgen.datasets import procedural


def get_config(arg="dataset=dsprites,split=extrapolation,model=cnn,preset=smoke"):
  config = benchmark.get_config(arg)
  config.progress = False
  return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("finished")
  return str(workdir), train.train_and_evaluate(get_config(), str(workdir))


def test_init_from_a_workdir_reproduces_its_test_scores_exactly(finished, tmp_path):
  workdir, results = finished
  config = get_config()
  config.init_from.workdir = workdir
  config.train.steps = 0  # evaluate the loaded state as it is
  again = train.train_and_evaluate(config, str(tmp_path))
  assert again["test"] == results["test"]
  assert again["init_from"]["variables"] == 12  # 5 convolutions and the head, kernel + bias


def test_exclude_keeps_the_fresh_head(finished):
  workdir, _ = finished
  model = models.create("cnn", 5, in_channels=1, rngs=nnx.Rngs(7))
  fresh_head = np.asarray(model.head.kernel[...])
  loaded = start.from_workdir(model, workdir, exclude="^head/")
  assert "head/kernel" not in loaded and "convs/0/kernel" in loaded
  np.testing.assert_array_equal(model.head.kernel[...], fresh_head)
  arrays, _ = start.run_variables(workdir)
  np.testing.assert_array_equal(model.convs[0].kernel[...], arrays["convs/0/kernel"])


def test_a_model_that_does_not_fit_is_refused_naming_the_variables(finished):
  workdir, _ = finished
  model = models.create("mlp", 5, in_channels=1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"variables missing there \(layers/0/bias"):
    start.from_workdir(model, workdir)
  wide = models.create("cnn", 5, in_channels=1, rngs=nnx.Rngs(0), features=128)
  with pytest.raises(ValueError, match=r"of another shape \(head/kernel \(256, 5\)"):
    start.from_workdir(wide, workdir)


def test_a_run_trained_on_eight_devices_loads_in_a_process_with_one(finished):
  """A study's figures and a user's notebook load runs that a cluster trained."""
  workdir, _ = finished
  code = ("from gsgen import runs; import jax, numpy as np; assert jax.device_count() == 1; "
          f"run = runs.load({workdir!r}); "
          "print(run.step, run.predict(np.zeros((2, 64, 64, 1), np.uint8)).shape)")
  env = {**os.environ, "XLA_FLAGS": ""}
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                        check=False)
  assert proc.returncode == 0 and proc.stdout.split() == ["4", "(2,", "5)"], proc.stderr[-2000:]
  assert "Topology" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr[-2000:]


def test_a_workdir_without_a_run_is_refused(tmp_path):
  with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
    start.from_workdir(models.create("cnn", 5, in_channels=1, rngs=nnx.Rngs(0)), str(tmp_path))


def test_load_a_finished_run_and_score_it_on_another_split(finished):
  workdir, results = finished
  run = runs.load(workdir)
  assert run.config.model == "cnn" and run.step == 4
  assert repr(run).startswith("Run(dsprites/extrapolation, model=cnn, learner=regression, "
                              "seed=0, source=procedural, step=4)"), repr(run)
  spec = run.spec
  images = lambda flat: procedural.render_numpy(spec, flat, batch_size=64)
  again = evaluate.evaluate_model(run.predict_fn, spec, "extrapolation", images,
                                  batch_size=64, progress=False)
  for name in spec.factor_names:
    assert again[f"rsquared_{name}"] == pytest.approx(results["test"][f"rsquared_{name}"],
                                                      rel=1e-5)
  other = evaluate.evaluate_model(run.predict_fn, spec, "interpolation", images,
                                  batch_size=64, progress=False)
  assert other["num_examples"] == splits.masks(spec, "interpolation")[1].sum()
  assert other["rsquared"] != again["rsquared"]
  z = run.encode(images(np.arange(3)))
  assert z.shape == (3, 256)


def test_load_follows_a_study_cells_pointer_to_its_replica(tmp_path):
  config = get_config()
  config.train.steps, config.num_seeds = 2, 2
  program = tmp_path / "cell-seeds0-1"
  train.train_and_evaluate(config, str(program))
  cell = tmp_path / "cell-seed1"
  cell.mkdir()
  workdir_lib.write_replica_of(str(cell), str(program), 1)  # as the study runner hands it out
  run, replica = runs.load(str(cell)), runs.load(str(program), seed=1)
  assert run.config.seed == 1 and run.config.num_seeds == 1 and run.step == 2
  images = np.arange(2 * 64 * 64, dtype=np.uint8).reshape(2, 64, 64, 1)
  np.testing.assert_array_equal(run.predict(images), replica.predict(images))
  assert not np.array_equal(run.predict(images), runs.load(str(program), seed=0).predict(images))
  with pytest.raises(ValueError, match="holds seed 1 of the run in .*, not seed 0"):
    runs.load(str(cell), seed=0)
