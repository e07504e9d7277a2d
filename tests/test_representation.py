"""Representation learners through the engine: representation, then readout, in one workdir.

Each learner trains and is read out end to end on a tiny grid; the readout leaves the
encoder bitwise as the representation stage left it (batch statistics included); a run
stopped in either stage resumes to exactly the uninterrupted run; a supervised model is
probed the same way; bad options are refused before anything is built.
"""

import json
import os

import jax
import numpy as np
import pytest
from flax import nnx
from matplotlib import image as mpimage

from gsgen import checkpoint
from gsgen import learners
from gsgen import models
from gsgen import runs
from gsgen import split_data
from gsgen import train
from gsgen import validate
from gsgen.configs import benchmark
from gsgen.datasets import procedural


def get_config(arg, batch_size=16):
  """The preset's config at a small batch (a VAE step at 64 is seconds on a CPU); 16 still
  spreads over the 8 test devices."""
  config = benchmark.get_config(arg)
  config.progress = False
  config.train.batch_size = batch_size
  return config


def rows(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


def checkpoints(workdir):
  """{step: saved model state} of every checkpoint kept in ``workdir``."""
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), 1)
  out = {}
  for step in sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                     if p.name.isdigit()):
    state, meta = ckpt.read(step)
    out[step] = (state["model"], meta["stage"])
  ckpt.close()
  return out


def test_beta_vae_learns_reads_out_a_frozen_encoder_and_draws_pictures(tmp_path):
  config = get_config("dataset=dsprites,split=random,learner=beta_vae,preset=smoke")
  config.train.steps, config.readout.steps = 12, 4
  config.train.log_every, config.train.checkpoint_every = 2, 1000  # saves at 12 and 16 only
  config.learner_kwargs.beta, config.learner_kwargs.kl_warmup = 2.0, 8
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results["stages"] == {"representation": 12, "readout": 4}
  assert results["config"]["learner_kwargs"] == {"z": 10, "beta": 2.0, "kl_warmup": 8}
  final = results["train"]["final_metrics"]
  assert {"reconstruction", "kl", "loss"} <= set(final["representation"])
  assert final["readout"]["step"] == 16 and "rsquared_x_position" in results["test"]
  log = [r for r in rows(tmp_path) if r["stage"] == "representation"]
  # The KL weight ramps up with the step the engine hands the loss: 2 * min(1, step / 8).
  assert [r["step"] for r in log] == [2, 4, 6, 8, 10, 12]
  for r in log:
    weight = 2.0 * min(1.0, r["step"] / 8)
    assert r["loss"] == pytest.approx(r["reconstruction"] + weight * r["kl"], rel=1e-5)
  # A blank canvas is cheap to learn: the reconstruction loss falls fast from the start.
  assert log[-1]["reconstruction"] < 0.6 * log[0]["reconstruction"]
  saved = checkpoints(tmp_path)
  assert sorted(saved) == [12, 16]
  (vae_state, stage_a), (readout_state, stage_b) = saved[12], saved[16]
  assert (stage_a, stage_b) == ("representation", "readout")
  jax.tree.map(np.testing.assert_array_equal, vae_state, readout_state["encoder"])
  for name in ("reconstructions", "traversals"):
    assert results["files"][name] == f"{name}.png"
    picture = mpimage.imread(tmp_path / f"{name}.png")
    assert picture.ndim == 3 and min(picture.shape[:2]) > 100
  # The run back in Python: its representation is the VAE's posterior mean.
  run = runs.load(str(tmp_path))
  spec = run.spec
  images = procedural.render_numpy(spec, np.arange(8))
  z = run.encode(images)
  assert z.shape == (8, 10)
  np.testing.assert_allclose(z, np.asarray(run.model.encoder.posterior(
      np.asarray(images, np.float32) / 255.0)[0]), rtol=1e-5, atol=1e-6)


def test_pcl_steps_clamp_its_coefficient_and_move_its_batch_statistics():
  """Inside the jitted step, after the update: q is clamped at >= 0 (the reference's
  ``model.a.data.clamp(min=0)``), and the BatchNorm on h trains on batch statistics."""
  from gsgen import input_pipeline, sharding, steps
  from gsgen.learners import pcl
  config = get_config("dataset=dsprites,split=random,learner=pcl,preset=smoke")
  stage = learners.stages(pcl.LEARNER, config)[0]
  source = split_data.make("dsprites", "random", grid_sizes=tuple(config.data.grid))
  mesh = sharding.make_mesh()
  graphdef, state, _ = train.create_state(config, stage, source.spec, mesh, nnx.Rngs(0))
  model, optimizer = nnx.merge(graphdef, state)
  model.q[...] = -0.5
  before = np.asarray(model.norm.var[...])
  graphdef, state = nnx.split((model, optimizer))
  step = steps.make_train_step(graphdef, stage, source.spec, procedural.renderer(source.spec),
                               mesh, jax.random.key(0))
  batches = input_pipeline.TrainBatches(source, 16, seed=0, mesh=mesh,
                                        sampler=stage.learner.sampler)
  assert np.asarray(batches.get(0)["factor_indices"]).shape == (16, 3, 5)
  state, metrics = step(state, batches.get(0), 1)
  model, _ = nnx.merge(graphdef, state)
  assert float(model.q[...]) == 0.0 and np.isfinite(float(metrics["loss"]))
  assert not np.array_equal(np.asarray(model.norm.var[...]), before)


@pytest.mark.parametrize("learner,dataset", [("slow_vae", "dsprites"), ("pcl", "mpi3d")])
def test_pair_learners_train_and_read_out(learner, dataset, tmp_path):
  config = get_config(f"dataset={dataset},split=extrapolation,learner={learner},preset=smoke")
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results["stages"] == {"representation": 4, "readout": 4}
  final = results["train"]["final_metrics"]["representation"]
  if learner == "slow_vae":
    assert {"reconstruction", "kl", "kl_laplace"} <= set(final)
    assert (tmp_path / "traversals.png").exists()
  else:
    assert {"accuracy", "loss"} <= set(final) and results["files"] == {}
    assert not list(tmp_path.glob("*.png"))
  assert np.isfinite(results["test"]["rsquared"])


def test_a_two_stage_run_stopped_in_each_stage_resumes_exactly(tmp_path):
  config = get_config("dataset=shapes3d,split=interpolation,learner=ada_gvae,preset=smoke")
  config.train.log_every = 1
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
  parts = str(tmp_path / "parts")
  assert train.train_and_evaluate(config, parts, stop_after_step=3) is None  # representation
  assert train.train_and_evaluate(config, parts, stop_after_step=6) is None  # readout
  resumed = train.train_and_evaluate(config, parts)
  assert resumed["test"] == whole["test"]
  a, b = rows(tmp_path / "whole"), rows(tmp_path / "parts")
  assert [r["step"] for r in a] == list(range(1, 9))
  assert [(r["step"], r["stage"], r["loss"]) for r in b] == [
      (r["step"], r["stage"], r["loss"]) for r in a]
  assert all(r["shared_dims"] >= 1 for r in a if r["stage"] == "representation")
  last_a, last_b = checkpoints(tmp_path / "whole")[8], checkpoints(tmp_path / "parts")[8]
  jax.tree.map(np.testing.assert_array_equal, last_a, last_b)


class BatchNormEncoder(nnx.Module):
  """A regressor with batch statistics: a frozen readout encoder must keep them."""

  def __init__(self, num_outputs, *, in_channels, rngs):
    self.conv = nnx.Conv(in_channels, 8, (4, 4), strides=4, rngs=rngs)
    self.norm = nnx.BatchNorm(8, rngs=rngs)
    self.head = nnx.Linear(8, num_outputs, rngs=rngs)
    self.encoding_size = 8

  def encode(self, x):
    return jax.nn.relu(self.norm(self.conv(x))).mean((1, 2))

  def __call__(self, x):
    return self.head(self.encode(x))


def test_a_supervised_model_is_probed_by_the_same_readout(tmp_path, monkeypatch):
  """In the run (``readout.steps``) or later from its workdir (``init_from``, no training
  steps): the same frozen encoder, batch statistics included, and the same readout."""
  monkeypatch.setitem(models.MODELS, "bn_encoder", BatchNormEncoder)
  config = get_config("dataset=dsprites,split=random,model=bn_encoder,preset=smoke")
  config.train.steps, config.train.checkpoint_every = 2, 1000
  plain = train.train_and_evaluate(config, str(tmp_path / "plain"))
  assert plain["stages"] == {"train": 2}
  (trained, _), = checkpoints(tmp_path / "plain").values()
  # Training moved the running statistics, so keeping them is something.
  assert np.abs(np.asarray(trained["norm"]["mean"])).max() > 1e-4

  config.readout.steps = 2
  inline = train.train_and_evaluate(config, str(tmp_path / "inline"))
  assert inline["stages"] == {"train": 2, "readout": 2}
  saved = checkpoints(tmp_path / "inline")
  assert sorted(saved) == [2, 4] and saved[4][1] == "readout"
  jax.tree.map(np.testing.assert_array_equal, trained, saved[2][0])
  jax.tree.map(np.testing.assert_array_equal, trained, saved[4][0]["encoder"])

  config.train.steps = 0
  config.init_from.workdir = str(tmp_path / "plain")
  later = train.train_and_evaluate(config, str(tmp_path / "later"))
  assert later["stages"] == {"train": 0, "readout": 2} and later["init_from"]
  (probed, _), = checkpoints(tmp_path / "later").values()
  jax.tree.map(np.testing.assert_array_equal, saved[4][0], probed)
  assert later["test"] == inline["test"]
  assert runs.load(str(tmp_path / "later")).encode(
      procedural.render_numpy("dsprites", np.arange(4))).shape == (4, 8)


def test_representation_options_are_validated_before_anything_is_built():
  config = get_config("dataset=dsprites,learner=pcl,preset=smoke")
  config.readout.steps = 0
  with pytest.raises(ValueError, match="set config.readout.steps >= 1"):
    validate.config(config, 8)
  config = get_config("dataset=dsprites,learner=slow_vae,preset=smoke")
  config.learner_kwargs.gamma = -1.0
  with pytest.raises(ValueError, match="learner_kwargs.gamma must be a number >= 0"):
    validate.config(config, 8)
  config = get_config("dataset=dsprites,learner=ada_gvae,preset=smoke")
  config.learner_kwargs.k = 5
  with pytest.raises(ValueError, match="learner_kwargs.k must be an integer from 0"):
    validate.config(config, 8)
  config = get_config("dataset=dsprites,learner=beta_vae,preset=smoke")
  config.learner_kwargs.gamma = 10.0
  with pytest.raises(ValueError, match="unknown: \\['gamma'\\]"):
    validate.config(config, 8)
  config = get_config("dataset=dsprites,learner=beta_vae,preset=smoke")
  config.readout.optim.learning_rate = 0.0
  with pytest.raises(ValueError, match="learning_rate must be positive"):
    validate.config(config, 8)


@pytest.mark.parametrize("preset", ["cpu", "paper", "smoke"])
def test_every_preset_budgets_both_stages_of_every_representation_learner(preset):
  for learner in ("beta_vae", "ada_gvae", "slow_vae", "pcl"):
    config = get_config(f"learner={learner},preset={preset}")
    assert config.train.steps > 0 and config.readout.steps > 0
    assert config.readout.optim.trainable == "^head/"
    validate.config(config, 8)
  assert get_config(f"preset={preset}").readout.steps == 0  # supervised: no readout


def test_a_negative_kl_warmup_is_refused():
  config = get_config("learner=beta_vae,preset=cpu")
  assert config.learner_kwargs.kl_warmup == 0  # the study's full KL weight from the start
  config.learner_kwargs.kl_warmup = -1
  with pytest.raises(ValueError, match="learner_kwargs.kl_warmup must be an integer >= 0"):
    validate.config(config, 8)
