"""The learner seam: a learner defined here trains through the unchanged engine, the step key
makes resumes exact, and training actually learns."""

import inspect
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gsgen import learners
from gsgen import sharding
from gsgen import split_data
from gsgen import steps
from gsgen import train
from gsgen.configs import benchmark
from gsgen.learners import regression


def get_config(arg):
  config = benchmark.get_config(arg)
  config.progress = False
  return config


def l1_loss(model, batch, rng):
  del rng
  l1 = jnp.mean(jnp.abs(model(batch["image"]) - batch["targets"]))
  return l1, {"l1": l1}


L1 = learners.Learner(name="l1", build=regression.build, loss=l1_loss,
                      predict=regression.predict)


def noisy_loss(model, batch, rng):
  """Regression on images with additive noise drawn from the step's key."""
  noise = jax.random.normal(rng, batch["image"].shape) * 0.1
  draw = jax.random.uniform(rng)
  loss = jnp.mean((model(batch["image"] + noise) - batch["targets"]) ** 2)
  return loss, {"draw": draw}


NOISY = learners.Learner(name="noisy", build=regression.build, loss=noisy_loss,
                         predict=regression.predict)


def test_a_learner_defined_in_a_test_trains_and_scores(tmp_path, monkeypatch):
  monkeypatch.setitem(learners.LEARNERS, "l1", L1)
  config = get_config("dataset=dsprites,split=extrapolation,model=cnn,learner=l1,preset=smoke")
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results["learner"] == "l1" and results["model"] == "cnn"
  assert results["test"]["rsquared"] is not None
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  # The learner's own term is logged beside the loss, and it is the L1 loss.
  assert all(r["l1"] == r["loss"] and r["stage"] == "train" for r in rows)
  assert results["train"]["final_metrics"]["train"]["l1"] == rows[-1]["l1"]


def test_unknown_learner_lists_the_known_ones():
  with pytest.raises(ValueError, match="unknown learner 'vae'.*regression"):
    learners.get("vae")


def _signature(fn) -> tuple[list[str], set[str]]:
  """``fn``'s positional parameters and its keyword-only ones; it takes no ``**kwargs``."""
  params = inspect.signature(fn).parameters.values()
  assert not any(p.kind == p.VAR_KEYWORD for p in params), fn
  return ([p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD],
          {p.name for p in params if p.kind == p.KEYWORD_ONLY})


@pytest.mark.parametrize("name", sorted(learners.LEARNERS))
def test_build_and_loss_take_exactly_their_own_options(name):
  config = get_config(f"learner={name},preset=smoke")
  for stage in learners.stages(learners.get(name), config):
    learner, options = stage.learner, stage.options
    assert _signature(learner.build) == (["model", "model_kwargs", "spec", "rngs"],
                                         set(learner.build_options(options)))
    assert _signature(learner.loss) == (["model", "batch", "rng"],
                                        set(learner.loss_options(options)))
    # Each option has one reader: the sampler, the model or the loss.
    readers = [learner.sampler_options(options), learner.build_options(options),
               learner.loss_options(options)]
    assert sorted(k for r in readers for k in r) == sorted(options)


def test_the_engine_hands_build_and_loss_their_own_options(monkeypatch):
  seen = {}

  def build(model, model_kwargs, spec, rngs, *, width):
    seen["build"] = {"width": width}
    return regression.build(model, model_kwargs, spec, rngs)

  def loss(model, batch, rng, *, scale):
    seen["loss"] = {"scale": scale}
    return scale * regression.loss(model, batch, rng)[0], {}

  learner = learners.Learner(name="opts", build=build, loss=loss, predict=regression.predict,
                             sampler="laplace", model_options=("width",),
                             options={"width": 3, "scale": 2.0, "transition_rate": 1.0})
  monkeypatch.setitem(learners.LEARNERS, "opts", learner)
  config = get_config("dataset=dsprites,split=random,learner=opts,preset=smoke")
  config.learner_kwargs.scale = 0.5
  stage, = learners.stages(learner, config)
  source = split_data.make("dsprites", "random", grid_sizes=tuple(config.data.grid))
  mesh = sharding.make_mesh()
  graphdef, state, _ = train.create_state(config, stage, source.spec, mesh, nnx.Rngs(0))
  state_loss = steps.make_state_loss(graphdef, stage, source.spec, None, jax.random.key(0))
  batch = {"image": np.zeros((2, 64, 64, 1), np.uint8),
           "factor_indices": np.zeros((2, 5), np.int32)}
  assert np.isfinite(float(state_loss(state, batch, 1)))
  assert seen == {"build": {"width": 3}, "loss": {"scale": 0.5}}


def test_resume_with_a_keyed_learner_equals_an_uninterrupted_run(tmp_path, monkeypatch):
  monkeypatch.setitem(learners.LEARNERS, "noisy", NOISY)
  config = get_config("dataset=dsprites,split=random,model=cnn,learner=noisy,preset=smoke")
  config.train.steps, config.train.log_every, config.train.checkpoint_every = 6, 1, 2
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
  assert train.train_and_evaluate(config, str(tmp_path / "parts"), stop_after_step=3) is None
  resumed = train.train_and_evaluate(config, str(tmp_path / "parts"))
  assert resumed["test"] == whole["test"]

  def rows(name):
    return [json.loads(l) for l in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

  draws = [r["draw"] for r in rows("whole")]
  assert len(set(draws)) == len(draws) == 6  # a new draw every step
  assert [r["draw"] for r in rows("parts")] == draws
  assert [r["loss"] for r in rows("parts")] == [r["loss"] for r in rows("whole")]


def test_training_learns_the_positions(tmp_path):
  """A short CNN run on a small grid predicts held-out positions far better than the mean.

  Resume and sharding tests compare runs with each other; this one compares with the truth,
  so a step that moved the weights the wrong way would fail here.
  """
  config = get_config("dataset=dsprites,split=random,model=cnn,preset=smoke")
  config.data.grid = (2, 2, 4, 16, 16)
  config.train.steps, config.train.log_every, config.train.checkpoint_every = 300, 100, 300
  results = train.train_and_evaluate(config, str(tmp_path))
  test = results["test"]
  assert test["num_examples"] > 100
  assert test["rsquared_x_position"] > 0.5, test
  assert test["rsquared_y_position"] > 0.5, test
