"""End-to-end training tests on 8 fake CPU devices (see conftest.py) and tiny grids."""

import functools
import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from gsgen import input_pipeline
from gsgen import learners
from gsgen import models
from gsgen import results as results_lib
from gsgen import sharding
from gsgen import split_data
from gsgen import steps
from gsgen import train
from gsgen.configs import benchmark
from gsgen.learners import regression
from gsgen.models import densenet


def get_config(arg):
  config = benchmark.get_config(arg)
  config.progress = False
  return config


def test_end_to_end_writes_results_with_every_metric(tmp_path):
  config = get_config("dataset=dsprites,split=extrapolation,model=cnn,preset=smoke")
  results = train.train_and_evaluate(config, str(tmp_path))
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk["test"] == json.loads(json.dumps(results["test"]))
  for key in ("dataset", "data_source", "split", "model", "seed", "steps", "config"):
    assert key in on_disk
  assert on_disk["data_source"] == "procedural" and on_disk["steps"] == 4
  # The CNN's count for 1 channel and 5 factors (derived in test_models.py).
  assert on_disk["train"]["num_params"] == 379_077
  assert on_disk["train"]["devices"] == "8 x cpu"
  test = on_disk["test"]
  names = ("shape", "scale", "orientation", "x_position", "y_position")
  for name in names:
    assert f"rsquared_{name}" in test and f"mse_{name}" in test
  for key in ("rsquared", "mse", "rsquared_noncategorical", "num_examples"):
    assert key in test
  assert set(test["towards_mean"]) == set(names) - {"shape"}
  assert set(test["modularity"]) == set(names) - {"shape"}
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(l)["step"] for l in lines] == [2, 4]
  assert any(p.name.startswith("events") for p in (tmp_path / "tensorboard").iterdir())
  assert "x_position" in results_lib.format_table(on_disk)


@pytest.mark.parametrize("model", ["cnn", "small_densenet"])
def test_sharded_step_equals_single_device_step(model, monkeypatch):
  # A two-block DenseNet stands in for the BatchNorm networks (the full ones take minutes to
  # compile here): its running statistics must come from the global batch, not per shard.
  monkeypatch.setitem(models.MODELS, "small_densenet",
                      functools.partial(densenet.DenseNet, blocks=(2, 2)))
  config = get_config(f"dataset=dsprites,split=random,model={model},preset=smoke")
  if model == "small_densenet":
    # Plain SGD: Adam's first step is about lr * sign(gradient), which turns summation-order
    # noise in one of this network's near-zero gradients into a full step of difference.
    config.optim.name = "sgd"
  source = split_data.make("dsprites", "random", grid_sizes=tuple(config.data.grid))
  from gsgen.datasets import procedural
  render = procedural.renderer(source.spec)
  stage = learners.Stage("train", regression.LEARNER, 1, config.optim)
  outputs = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh(devices)
    graphdef, state, _ = train.create_state(config, stage, source.spec, mesh, nnx.Rngs(0))
    step = steps.make_train_step(graphdef, stage, source.spec, render, mesh,
                                 jax.random.key(0))
    batch = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh).get(0)
    assert len(batch["factor_indices"].sharding.device_set) == len(devices)
    state, metrics = step(state, batch, 1)
    outputs.append((float(metrics["loss"]), nnx.to_pure_dict(state)))
  (loss1, state1), (loss8, state8) = outputs
  assert loss8 == pytest.approx(loss1, rel=1e-5)
  if model == "small_densenet":  # running statistics moved from 0 (compared with the rest)
    assert np.abs(state8[0]["norm5"]["mean"]).max() > 1e-3
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               state1, state8)


def _params(workdir):
  from gsgen import checkpoint
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), 1)
  step = ckpt.latest_step()
  state, meta = ckpt.read(step)
  ckpt.close()
  assert meta["step"] == step
  return step, state


def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path):
  config = get_config("dataset=shapes3d,split=interpolation,model=cnn,preset=smoke")
  config.train.steps = 6
  config.train.checkpoint_every = 2
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
  assert train.train_and_evaluate(config, str(tmp_path / "parts"), stop_after_step=3) is None
  assert not (tmp_path / "parts" / "results.json").exists()
  resumed = train.train_and_evaluate(config, str(tmp_path / "parts"))
  step_a, state_a = _params(tmp_path / "whole")
  step_b, state_b = _params(tmp_path / "parts")
  assert step_a == step_b == 6
  jax.tree.map(np.testing.assert_array_equal, state_a, state_b)
  assert resumed["test"] == whole["test"]
  lines = [json.loads(l) for l in (tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 3, 4, 6]
  whole_lines = [json.loads(l) for l in
                 (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
  assert [l["loss"] for l in lines if l["step"] in (2, 4, 6)] == \
      [l["loss"] for l in whole_lines]


def test_a_workdir_of_another_run_is_refused(tmp_path):
  config = get_config("dataset=dsprites,split=random,model=cnn,preset=smoke")
  train.train_and_evaluate(config, str(tmp_path), stop_after_step=2)
  other = get_config("dataset=dsprites,split=random,model=mlp,preset=smoke")
  with pytest.raises(ValueError, match="holds a run of"):
    train.train_and_evaluate(other, str(tmp_path))


def test_non_finite_loss_names_the_step(tmp_path):
  config = get_config("dataset=dsprites,split=random,model=mlp,preset=smoke")
  config.optim.learning_rate = 1e30  # the first Adam update blows the weights up
  config.train.steps = 5
  # The first update blows the parameters up: caught right after it, before any save.
  with pytest.raises(FloatingPointError, match=r"non-finite parameters after the update "
                                               r"\(.*\) at step 1; nothing from it was saved"):
    train.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / "results.json").exists()


def test_unknown_names_are_refused(tmp_path):
  with pytest.raises(ValueError, match="unknown model 'vit'"):
    train.train_and_evaluate(get_config("model=vit,preset=smoke"), str(tmp_path))
  with pytest.raises(ValueError, match="unknown split"):
    train.train_and_evaluate(get_config("split=heldout,preset=smoke"), str(tmp_path))
  with pytest.raises(ValueError, match="key one of"):
    get_config("datset=mpi3d")


def test_the_step_number_is_a_host_scalar_on_one_device_and_an_op_on_several_cpus():
  one = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
  number = train.step_number(7, one)
  assert isinstance(number, np.int32) and number == 7  # travels with the call, no op
  assert jax.device_count() > 1  # the tests' fake CPU devices
  several = sharding.make_mesh()
  number = train.step_number(7, several)
  assert isinstance(number, jax.Array) and number.dtype == np.int32 and int(number) == 7
