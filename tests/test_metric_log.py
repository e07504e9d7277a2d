"""The metric log starts without PyTorch: tensorboardX would import it for nothing."""

import subprocess
import sys
import textwrap

import pytest


def test_tensorboard_events_are_written_without_importing_torch(tmp_path):
  pytest.importorskip("torch")  # the case that matters: torch is installed
  script = textwrap.dedent(f"""
      import sys
      from gsgen import metric_log
      log = metric_log.MetricLog({str(tmp_path)!r}, start_step=0)
      log.write({{"step": 1, "stage": "train", "loss": 0.5}})
      log.close()
      assert "torch" not in sys.modules, "torch was imported"
      import torch  # still importable afterwards
      print(torch.zeros(2).sum().item())
  """)
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       check=False)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == "0.0"
  events, = (tmp_path / "tensorboard").iterdir()
  assert b"train/loss" in events.read_bytes()
  assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1
