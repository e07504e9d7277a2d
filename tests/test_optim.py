"""Optimizer chains: schedules at known steps, frozen parameters, refusals naming the field."""

import jax
import numpy as np
import pytest
from flax import nnx

from gsgen import input_pipeline
from gsgen import learners
from gsgen import models
from gsgen import optim
from gsgen import sharding
from gsgen import split_data
from gsgen import steps
from gsgen import train
from gsgen.configs import benchmark
from gsgen.learners import regression


def optim_config(**overrides):
  config = benchmark.get_config("preset=smoke").optim
  config.update(overrides)
  return config


def test_constant_schedule():
  s = optim.schedule(optim_config(learning_rate=3e-4), 100)
  assert [float(s(i)) for i in (0, 50, 99)] == pytest.approx([3e-4] * 3)


def test_warmup_cosine_schedule_at_known_steps():
  s = optim.schedule(optim_config(schedule="warmup_cosine", learning_rate=1.0,
                                  warmup_steps=10), 110)
  assert float(s(0)) == 0.0
  assert float(s(5)) == pytest.approx(0.5)
  assert float(s(10)) == pytest.approx(1.0)
  assert float(s(60)) == pytest.approx(0.5, abs=1e-6)  # half way down the cosine
  assert float(s(110)) == pytest.approx(0.0, abs=1e-7)


def test_step_schedule_decays_at_its_fractions_after_the_warm_up():
  s = optim.schedule(optim_config(name="sgd", schedule="step", learning_rate=0.003,
                                  warmup_steps=100, decay_at=(0.3, 0.6, 0.9)), 10_000)
  expected = {0: 0.0, 50: 0.0015, 100: 0.003, 2999: 0.003, 3000: 3e-4, 5999: 3e-4,
              6000: 3e-5, 9000: 3e-6, 9999: 3e-6}
  for step, lr in expected.items():
    assert float(s(step)) == pytest.approx(lr, rel=1e-5), step


def test_sgd_with_momentum_and_weight_decay_known_updates():
  params = {"w": np.array([1.0, -2.0], np.float32)}
  grads = {"w": np.array([0.5, 0.5], np.float32)}
  tx = optim.build(optim_config(name="sgd", learning_rate=0.1, momentum=0.9,
                                weight_decay=0.01), 10)
  opt_state = tx.init(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  g = grads["w"] + 0.01 * params["w"]
  np.testing.assert_allclose(updates["w"], -0.1 * g, rtol=1e-6)
  updates, _ = tx.update(grads, opt_state, params)  # momentum: g + 0.9 g
  np.testing.assert_allclose(updates["w"], -0.1 * (g + 0.9 * g), rtol=1e-6)


def test_adamw_decays_weights_without_gradient():
  params = {"w": np.array([2.0], np.float32)}
  tx = optim.build(optim_config(name="adamw", learning_rate=0.1, weight_decay=0.5), 10)
  updates, _ = tx.update({"w": np.zeros(1, np.float32)}, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * 2.0, rtol=1e-6)


@pytest.mark.parametrize("field,value,message", [
    ("name", "lamb", "config.optim.name"),
    ("schedule", "linear", "config.optim.schedule"),
    ("learning_rate", 0.0, "config.optim.learning_rate"),
    ("momentum", 1.5, "config.optim.momentum"),
    ("decay_at", (0.6, 0.3), "config.optim.decay_at"),
    ("trainable", "head(", "config.optim.trainable"),
])
def test_bad_values_name_the_field(field, value, message):
  with pytest.raises(ValueError, match=message.replace(".", r"\.")):
    optim.check(optim_config(**{field: value}))


def test_frozen_parameters_stay_bitwise_while_the_head_trains():
  config = benchmark.get_config("dataset=dsprites,split=random,model=cnn,preset=smoke")
  config.optim.trainable = "^head/"
  config.optim.learning_rate = 1e-2
  stage = learners.Stage("train", regression.LEARNER, 10, config.optim)
  source = split_data.make("dsprites", "random", grid_sizes=tuple(config.data.grid))
  from gsgen.datasets import procedural
  mesh = sharding.make_mesh()
  graphdef, state, _ = train.create_state(config, stage, source.spec, mesh, nnx.Rngs(0))
  before = jax.device_get(nnx.to_pure_dict(state)[0])
  step = steps.make_train_step(graphdef, stage, source.spec,
                               procedural.renderer(source.spec), mesh, jax.random.key(0))
  batches = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh)
  for s in range(10):
    state, _ = step(state, batches.get(s), s + 1)
  after = jax.device_get(nnx.to_pure_dict(state)[0])
  flat_before = dict(jax.tree_util.tree_flatten_with_path(before)[0])
  flat_after = dict(jax.tree_util.tree_flatten_with_path(after)[0])
  moved = {jax.tree_util.keystr(k) for k in flat_before
           if not np.array_equal(flat_before[k], flat_after[k])}
  assert moved == {"['head']['bias']", "['head']['kernel']"}
  # The optimizer holds state for the trainable parameters only.
  opt = nnx.to_pure_dict(state)[1]
  assert "convs" not in str(jax.tree_util.tree_structure(opt))


class _NormNet(nnx.Module):
  """A convolution, a BatchNorm and a head: the smallest network with batch statistics."""

  def __init__(self, num_outputs, *, in_channels, rngs):
    self.conv = nnx.Conv(in_channels, 4, (4, 4), strides=4, rngs=rngs)
    self.norm = nnx.BatchNorm(4, rngs=rngs)
    self.head = nnx.Linear(4, num_outputs, rngs=rngs)

  def __call__(self, x):
    return self.head(self.norm(self.conv(x)).mean((1, 2)))


@pytest.mark.parametrize("trainable,frozen_moves", [("^head/", False), (".*", True)])
def test_a_frozen_batch_norm_keeps_its_statistics(trainable, frozen_moves, monkeypatch):
  monkeypatch.setitem(models.MODELS, "norm_net", _NormNet)
  config = benchmark.get_config("dataset=dsprites,split=random,model=norm_net,preset=smoke")
  config.optim.trainable = trainable
  stage = learners.Stage("train", regression.LEARNER, 3, config.optim)
  source = split_data.make("dsprites", "random", grid_sizes=tuple(config.data.grid))
  from gsgen.datasets import procedural
  mesh = sharding.make_mesh()
  graphdef, state, _ = train.create_state(config, stage, source.spec, mesh, nnx.Rngs(0))
  before = jax.device_get(nnx.to_pure_dict(state)[0]["norm"])
  step = steps.make_train_step(graphdef, stage, source.spec,
                               procedural.renderer(source.spec), mesh, jax.random.key(0))
  batches = input_pipeline.TrainBatches(source, 64, seed=0, mesh=mesh)
  for s in range(3):
    state, _ = step(state, batches.get(s), s + 1)
  after = jax.device_get(nnx.to_pure_dict(state)[0]["norm"])
  for name in ("mean", "var", "scale", "bias"):
    assert np.array_equal(before[name], after[name]) != frozen_moves, name


def _modes(model):
  """``{path: (deterministic, use_running_average)}`` of the modules that have either."""
  out = {}
  for path, module in nnx.iter_modules(model):
    flags = (getattr(module, "deterministic", None), getattr(module, "use_running_average", None))
    if flags != (None, None):
      out[optim.path_string(path)] = flags
  return out


def test_train_mode_puts_every_frozen_part_and_only_those_in_inference_mode():
  """One mechanism for a readout's frozen encoder (its PCL batch norm included) and a
  fine-tuned backbone's frozen BatchNorms."""
  from gsgen.models import cnn, latent, readout  # pylint: disable=g-import-not-at-top
  rngs = nnx.Rngs(0)
  probe = readout.Readout(latent.PCL(cnn.CNN(20, in_channels=1, rngs=rngs), 10, rngs=rngs), 5,
                          rngs=rngs)
  optim.train_mode(probe, optim_config(trainable="^head/"))
  modes = _modes(probe)
  assert modes["encoder/encoder"] == (True, None)             # the CNN: inference mode
  assert modes["encoder/norm"] == (None, True)                # PCL's batch norm: running stats
  optim.train_mode(probe, optim_config(trainable=".*"))
  assert set(_modes(probe).values()) <= {(False, None), (None, False)}

  resnet = models.create("resnet18", 5, in_channels=3, rngs=rngs)
  optim.train_mode(resnet, optim_config(trainable="^head/"))
  norms = {p: m for p, m in _modes(resnet).items() if m[1] is not None}
  assert norms and all(m[1] for m in norms.values())
  optim.train_mode(resnet, optim_config(trainable=".*"))
  assert not any(m[1] for m in _modes(resnet).values() if m[1] is not None)
