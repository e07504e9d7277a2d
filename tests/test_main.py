"""The command line end to end: gsgen.main with a config file, on 8 fake CPU devices."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest
from absl import flags

from gsgen import configs
from gsgen import main as main_lib
from gsgen import models

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_main(argv, monkeypatch):
  """Parses ``argv`` as the command line and runs gsgen.main's main()."""
  argv = ["gsgen.main"] + argv
  # config_flags finds the --config.* overrides in sys.argv.
  monkeypatch.setattr(sys, "argv", argv)
  flags.FLAGS.unparse_flags()
  for name in [n for n in flags.FLAGS if n.startswith("config.")]:
    delattr(flags.FLAGS, name)  # a previous parse registered its overrides
  flags.FLAGS(argv)
  main_lib.main(argv[:1])


# The deep networks take one to two minutes each to compile on a 2-core CPU (about eight
# minutes together), so they run with `pytest -m slow`, outside the default suite.
HEAVY = {"resnet18", "resnet50", "resnet101", "preact_resnet18", "preact_resnet50",
         "preact_resnet101", "bit_resnet50", "bit_resnet101", "densenet121"}


@pytest.mark.parametrize("model", [
    pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name
    for name in sorted(models.MODELS)])
def test_every_model_trains_and_scores_through_main(model, tmp_path, capsys, monkeypatch):
  assert jax.device_count() == 8
  dataset = "dsprites" if model != "mlp" else "mpi3d"
  run_main([f"--config={ROOT}/gsgen/configs/benchmark.py:dataset={dataset},"
            f"split=extrapolation,model={model},preset=smoke",
            "--config.train.steps=2", "--config.progress=False", f"--workdir={tmp_path}"],
           monkeypatch)
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["model"] == model and results["steps"] == 2
  assert results["data_source"] == "procedural"
  assert results["test"]["rsquared"] is not None
  out = capsys.readouterr().out
  assert f"model {model}" in out and "rsquared" not in out and "R2" in out


def test_stop_after_step_then_resume(tmp_path, capsys, monkeypatch):
  argv = [f"--config={ROOT}/gsgen/configs/benchmark.py:dataset=shapes3d,preset=smoke",
          "--config.progress=False", f"--workdir={tmp_path}"]
  run_main(argv + ["--stop_after_step=2"], monkeypatch)
  assert "stopped at step 2" in capsys.readouterr().out
  assert not (tmp_path / "results.json").exists()
  run_main(argv, monkeypatch)
  assert json.loads((tmp_path / "results.json").read_text())["steps"] == 4


def test_short_config_name_works_from_any_directory(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(tmp_path)
  argv = main_lib.resolve_config_flag(
      ["gsgen.main", "--config=benchmark:dataset=mpi3d,model=mlp,preset=smoke",
       "--config.progress=False", f"--workdir={tmp_path / 'run'}"])
  assert argv[1] == f"--config={configs.path('benchmark')}:dataset=mpi3d,model=mlp,preset=smoke"
  run_main(argv[1:], monkeypatch)
  assert json.loads((tmp_path / "run" / "results.json").read_text())["dataset"] == "mpi3d"
  # A path to a user's own config file passes through unchanged.
  assert main_lib.resolve_config_flag(["x", "--config", "my/conf.py:a=1"])[2] == "my/conf.py:a=1"
  with pytest.raises(ValueError, match="no packaged config 'benchmarks'"):
    main_lib.resolve_config_flag(["x", "--config=benchmarks:dataset=mpi3d"])


def test_help_lists_every_config_field():
  proc = subprocess.run([sys.executable, "-m", "gsgen.main", "--help"], capture_output=True,
                        text=True, check=False, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0  # absl's own --help exits 1
  out = proc.stdout
  for field in ("--config.optim.learning_rate", "--config.optim.trainable",
                "--config.model_kwargs.channels", "--config.init_from.workdir",
                "--config.data.source", "--config.train.batch_size", "--config.eval.max_examples"):
    assert field in out, field
  assert "benchmark:dataset=" in out
