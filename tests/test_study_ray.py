"""The study runner on a local Ray instance: its cells run as Ray tasks and finish as with
local workers. (A file of its own, so that Ray's start overlaps the other study tests.)"""

import dataclasses
import json

import numpy as np
import pytest

from gsgen import study as study_lib
from gsgen.study import runner


def test_the_smoke_studys_cnn_cells_run_on_a_local_ray_instance(tmp_path):
  ray = pytest.importorskip("ray")
  smoke = study_lib.load("smoke")
  cnn = dataclasses.replace(smoke, approaches={"cnn": smoke.approaches["cnn"]})
  ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
  try:
    summary = runner.run(cnn, str(tmp_path), executor="ray", print_fn=lambda _: None)
  finally:
    ray.shutdown()
  assert sorted(summary["done"]) == sorted(c.name for c in cnn.cells())
  assert not summary["failed"]
  for cell in cnn.cells():
    results = json.loads((tmp_path / cell.name / "results.json").read_text())
    assert (results["split"], results["model"], results["steps"]) == (cell.split, "cnn", 4)
    assert np.isfinite(results["test"]["rsquared"])
