"""The run's folder: every path of a run and of its seeds, and a replica's pointer."""

import json
import os

import pytest

from gsgen import workdir as workdir_lib


def test_the_paths_of_a_run_and_of_its_seeds():
  assert workdir_lib.checkpoints("w") == os.path.join("w", "checkpoints")
  assert workdir_lib.config_path("w") == os.path.join("w", "config.json")
  assert workdir_lib.changes_path("w") == os.path.join("w", "config_changes.json")
  assert workdir_lib.results_path("w") == os.path.join("w", "results.json")
  assert workdir_lib.metrics_path("w") == os.path.join("w", "metrics.jsonl")
  assert workdir_lib.seed_dir("w", 3) == os.path.join("w", "seed3")
  assert workdir_lib.results_path(workdir_lib.seed_dir("w", 0)) == os.path.join(
      "w", "seed0", "results.json")


def test_the_config_a_run_started_with_reads_back(tmp_path):
  with pytest.raises(FileNotFoundError, match="holds no run"):
    workdir_lib.read_config(str(tmp_path))
  workdir_lib.write_json(workdir_lib.config_path(str(tmp_path)), {"seed": 2, "grid": [1, 2]})
  assert workdir_lib.read_config(str(tmp_path)) == {"seed": 2, "grid": [1, 2]}


def test_a_replica_pointer_is_relative_and_followed(tmp_path):
  study = tmp_path / "study"
  run, cell = study / "cell-seeds0-1", study / "cell-seed1"
  cell.mkdir(parents=True)
  assert workdir_lib.replica_of(str(cell)) is None
  workdir_lib.write_replica_of(str(cell), str(run), 1)
  # The file the runner has always written: a relative path, so the study can move.
  assert json.loads((cell / "replica_of.json").read_text()) == {
      "workdir": os.path.join("..", "cell-seeds0-1"), "seed": 1}
  assert workdir_lib.replica_of(str(cell)) == (str(run), 1)
  moved = tmp_path / "moved"
  os.rename(study, moved)
  assert workdir_lib.replica_of(str(moved / "cell-seed1")) == (str(moved / "cell-seeds0-1"), 1)
