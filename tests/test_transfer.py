"""Transfer learning end to end: a random-weight BiT .npz fine-tuned through gsgen.main, the
zero head, a frozen backbone left bitwise unchanged, the preset, and the config checks."""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pytest
from flax import nnx
from test_main import run_main

from gsgen.weights import start
from gsgen import models
from gsgen import validate
from gsgen.weights import schemes
from gsgen.configs import benchmark
from gsgen.models import preact_resnet

ROOT = pathlib.Path(__file__).resolve().parents[1]


def random_bit_npz(path, depth: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
  """Writes a BiT R{depth}x1 .npz of random weights (and a 21k-class head); returns it."""
  rng = np.random.default_rng(seed)
  shapes = schemes.model_shapes(f"bit_resnet{depth}")
  arrays = {}
  for name, var in preact_resnet.bit_param_map(depth).items():
    shape = shapes["/".join(map(str, var))]
    if name.endswith("gamma"):
      arrays[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    elif name.endswith("beta"):
      arrays[name] = rng.uniform(-0.1, 0.1, shape).astype(np.float32)
    else:
      arrays[name] = (rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))).astype(
          np.float32)
  arrays["resnet/head/conv2d/kernel"] = rng.standard_normal((1, 1, 2048, 10)).astype(np.float32)
  arrays["resnet/head/conv2d/bias"] = np.zeros(10, np.float32)
  np.savez(path, **arrays)
  return arrays


@pytest.fixture(scope="module")
def bit_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("weights") / "BiT-M-R50x1.npz"
  return str(path), random_bit_npz(path)


def test_weights_fill_the_backbone_and_the_head_starts_at_zero(bit_file):
  path, arrays = bit_file
  config = benchmark.get_config("dataset=mpi3d,model=bit_resnet50,preset=transfer")
  config.init_from.weights = path
  model = nnx.eval_shape(lambda: models.create("bit_resnet50", 7, in_channels=3,
                                               rngs=nnx.Rngs(0)))
  record = start.apply(model, config.init_from, "bit_resnet50")
  with open(path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  assert record == {"weights": "BiT-M-R50x1.npz", "sha256": digest, "format": "npz",
                    "architecture": "BiT ResNet-50", "variables": 1 + 9 * 16 + 4 + 2,
                    "head": "zeros"}
  np.testing.assert_array_equal(model.head.kernel[...], np.zeros((2048, 7)))
  np.testing.assert_array_equal(model.head.bias[...], np.zeros(7))
  np.testing.assert_array_equal(model.stages[2][5].conv_b.kernel[...],
                                arrays["resnet/block3/unit06/b/standardized_conv2d/kernel"])
  # exclude keeps what it names fresh, and so not zero.
  fresh = nnx.eval_shape(lambda: models.create("bit_resnet50", 7, in_channels=3,
                                               rngs=nnx.Rngs(0)))
  loaded = start.from_weights(fresh, path, "bit_resnet50", exclude="^norm/")
  assert "norm/scale" not in loaded and "root/kernel" in loaded


def test_a_runs_weight_file_is_identified_once(bit_file, monkeypatch):
  """validate.config identifies and checks the file; every seed's model loads it from that."""
  path, _ = bit_file
  config = benchmark.get_config("dataset=mpi3d,model=bit_resnet50,preset=transfer")
  config.init_from.weights = path
  read = []
  identify = schemes.identify
  monkeypatch.setattr(schemes, "identify", lambda p: read.append(p) or identify(p))
  found = validate.config(config, num_devices=8)
  assert found.model == "bit_resnet50"
  for _ in range(2):  # two seeds' models
    model = nnx.eval_shape(lambda: models.create("bit_resnet50", 7, in_channels=3,
                                                 rngs=nnx.Rngs(0)))
    assert start.apply(model, config.init_from, "bit_resnet50", found)["format"] == "npz"
  assert read == [path]


def test_transfer_preset_follows_the_recipe():
  config = benchmark.get_config("dataset=mpi3d,model=bit_resnet101,preset=transfer")
  assert config.init_from.weights == "data/weights/BiT-M-R101x1.npz"
  assert (config.optim.name, config.optim.learning_rate, config.optim.momentum) == (
      "sgd", 0.003, 0.9)
  assert (config.optim.schedule, tuple(config.optim.decay_at), config.optim.warmup_steps) == (
      "step", (0.3, 0.6, 0.9), 500)
  assert (config.train.steps, config.train.batch_size) == (10_000, 512)
  assert config.model_kwargs.resolution == 128 and config.optim.trainable == ".*"
  assert benchmark.get_config("model=densenet121,preset=transfer").model_kwargs.resolution == 128
  assert benchmark.get_config("model=densenet121,preset=cpu").model_kwargs.resolution == 0
  assert benchmark.get_config("model=cnn,preset=transfer").init_from.weights == ""


def test_config_checks_refuse_a_file_that_does_not_fit(bit_file, tmp_path):
  path, _ = bit_file
  config = benchmark.get_config("dataset=mpi3d,model=bit_resnet101,preset=transfer")
  config.train.batch_size = 64
  config.init_from.weights = path
  with pytest.raises(ValueError, match=r"config.init_from.weights: .*BiT-M-R50x1.npz .* holds "
                                       r"BiT ResNet-50 \(which is model 'bit_resnet50'\), not "
                                       r"'bit_resnet101'"):
    validate.config(config, num_devices=8)
  config.init_from.weights = str(tmp_path / "BiT-M-R101x1.npz")
  with pytest.raises(FileNotFoundError, match="place the file there"):
    validate.config(config, num_devices=8)
  config = benchmark.get_config("dataset=mpi3d,model=bit_resnet50,preset=transfer")
  config.init_from.weights = path
  config.model_kwargs.resolution = 20
  with pytest.raises(ValueError, match=r"config.model_kwargs.resolution must be 0 \(keep the "
                                       r"input size\) or an integer >= 32"):
    validate.config(config, num_devices=8)


# Compiling ResNet-50's step, loss and prediction takes minutes on a 2-core CPU, as for the
# other deep networks' runs through main (tests/test_main.py): `pytest -m slow` runs it.
@pytest.mark.slow
def test_head_only_fine_tuning_through_main_leaves_the_backbone_bitwise(bit_file, tmp_path,
                                                                        monkeypatch):
  path, arrays = bit_file
  workdir = tmp_path / "run"
  run_main([f"--config={ROOT}/gsgen/configs/benchmark.py:dataset=mpi3d,split=extrapolation,"
            f"model=bit_resnet50,preset=transfer",
            f"--config.init_from.weights={path}", "--config.optim.trainable=^head/",
            "--config.model_kwargs.resolution=32", "--config.data.grid=(2,2,2,2,2,7,2)",
            "--config.train.steps=2", "--config.train.batch_size=8",
            "--config.optim.warmup_steps=1", "--config.train.log_every=1",
            "--config.train.checkpoint_every=2", "--config.eval.batch_size=64",
            "--config.progress=False", f"--workdir={workdir}"], monkeypatch)
  results = json.loads((workdir / "results.json").read_text())
  assert results["init_from"]["weights"] == "BiT-M-R50x1.npz"
  assert results["init_from"]["head"] == "zeros"
  assert results["init_from"]["sha256"] == schemes.sha256(path)
  assert results["model"] == "bit_resnet50" and results["steps"] == 2
  assert np.isfinite(results["test"]["rsquared"])
  trained, _ = start.run_variables(str(workdir))
  for name, var in preact_resnet.bit_param_map(50).items():
    np.testing.assert_array_equal(trained["/".join(map(str, var))], arrays[name], err_msg=name)
  # The head left zero and learnt (the warm-up makes the first step's rate 0).
  assert np.any(trained["head/kernel"] != 0)
