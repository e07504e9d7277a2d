"""The colab notebook executes end to end in its smoke setting."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "experiments" / "colab" / "reproduce.ipynb"


def test_the_colab_notebook_runs(tmp_path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  monkeypatch.setenv("GSGEN_NOTEBOOK_SMOKE", "1")
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}}).execute()
  outputs = "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
  assert "preset: smoke" in outputs
  assert "R2" in outputs and "## dsprites leaderboard" in outputs
  assert "rsquared_x_position" in outputs
  assert (tmp_path / "workdirs" / "colab_smoke" / "results.csv").exists()
  assert os.path.getsize(tmp_path / "splits_dsprites.png") > 0
