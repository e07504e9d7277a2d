"""Several seeds in one program: each replica is exactly its single-seed run."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gsgen import checkpoint
from gsgen import input_pipeline
from gsgen import learners
from gsgen import sharding
from gsgen import split_data
from gsgen import steps
from gsgen import train
from gsgen.configs import benchmark
from gsgen.learners import regression

ARG = "dataset=dsprites,split=extrapolation,model=cnn,preset=smoke"


def get_config(**train_fields):
  config = benchmark.get_config(ARG)
  config.progress = False
  config.optim.name = "sgd"
  config.optim.learning_rate = 0.05
  config.train.update(train_fields)
  return config


def final_params(workdir):
  ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"), 1)
  state, _ = ckpt.read(ckpt.latest_step())
  ckpt.close()
  return state["model"]


def test_each_replica_equals_its_single_seed_run(tmp_path):
  config = get_config(steps=3, checkpoint_every=3, log_every=1)
  config.num_seeds = 3
  results = train.train_and_evaluate(config, str(tmp_path / "three"))
  assert results["seeds"] == [0, 1, 2]
  stacked = final_params(tmp_path / "three")
  for i in range(3):
    single = get_config(steps=3, checkpoint_every=3, log_every=1)
    single.seed = i
    alone = train.train_and_evaluate(single, str(tmp_path / f"seed{i}"))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6),
                 stacked, final_params(tmp_path / f"seed{i}"))
    replica = json.loads((tmp_path / "three" / f"seed{i}" / "results.json").read_text())
    # Scored and written as its own result, with its single-seed config.
    assert replica["seed"] == i and replica["config"] == json.loads(json.dumps(alone["config"]))
    for key, value in alone["test"].items():
      if key.startswith("rsquared_"):
        assert replica["test"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    assert json.loads(json.dumps(results["per_seed"][str(i)])) == replica
    rows = (tmp_path / "three" / f"seed{i}" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2, 3]


def test_a_resumed_several_seed_run_equals_an_uninterrupted_one(tmp_path):
  config = get_config(steps=4, checkpoint_every=2, log_every=1)
  config.num_seeds = 2
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
  assert train.train_and_evaluate(config, str(tmp_path / "parts"), stop_after_step=2) is None
  resumed = train.train_and_evaluate(config, str(tmp_path / "parts"))
  jax.tree.map(np.testing.assert_array_equal, final_params(tmp_path / "whole"),
               final_params(tmp_path / "parts"))
  for s in ("0", "1"):
    assert resumed["per_seed"][s]["test"] == whole["per_seed"][s]["test"]


def test_the_vmapped_step_of_accelerators_equals_separate_steps(monkeypatch):
  """Off the CPU, replicas are vmapped; the step must still equal one step per seed."""
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  config = get_config()
  stage = learners.Stage("train", regression.LEARNER, 2, config.optim)
  source = split_data.make("dsprites", "random", grid_sizes=tuple(config.data.grid))
  from gsgen.datasets import procedural
  render = procedural.renderer(source.spec)
  mesh = sharding.make_mesh()
  built = [train.create_state(config, stage, source.spec, mesh, nnx.Rngs(s)) for s in (0, 1)]
  graphdef = built[0][0]
  keys = jax.vmap(jax.random.key)(jnp.arange(2))
  step = steps.make_train_step(graphdef, stage, source.spec, render, mesh, keys)
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[b[1] for b in built])
  batch = input_pipeline.SeedBatches(source, 64, [0, 1], mesh).get(0)
  stacked, _ = step(stacked, batch, jnp.int32(1))
  for i in (0, 1):
    one = steps.make_train_step(graphdef, stage, source.spec, render, mesh, keys[i])
    alone, _ = one(built[i][1], input_pipeline.TrainBatches(source, 64, i, mesh).get(0),
                   jnp.int32(1))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6),
                 nnx.to_pure_dict(stacked), nnx.to_pure_dict(alone))
