"""The study runner end to end on the smoke study: local workers, Ray, a killed worker, a
finished study, a partial report, the report page in a headless Chromium; and what
identifies a cell. One file, so that one test worker runs the smoke study once for all."""

import csv
import dataclasses
import html.parser
import json
import os
import pathlib
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

import jax
import matplotlib.image
import numpy as np
import pytest
from test_run_safety import final_state
from test_saved_config import typed

from gsgen import study as study_lib
from gsgen import workdir as workdir_lib
from gsgen.configs import saved
from gsgen.study import __main__ as cli
from gsgen.study import claims as claims_lib
from gsgen.study import figures
from gsgen.study import page
from gsgen.study import report
from gsgen.study import runner
from gsgen.study import table as table_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMOKE = study_lib.load("smoke")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """The smoke study run to the end and reported: ``(workdir, summary, printed lines)``."""
  workdir = str(tmp_path_factory.mktemp("smoke_study"))
  lines = []
  summary = runner.run(SMOKE, workdir, jobs=2, print_fn=lines.append)
  report.write_all(workdir, print_fn=lines.append)
  return workdir, summary, lines


def table(workdir):
  with open(os.path.join(workdir, "results.csv")) as f:
    return list(csv.DictReader(f))


def test_the_smoke_study_runs_end_to_end_with_local_workers(finished):
  workdir, summary, lines = finished
  assert sorted(summary["done"]) == sorted(c.name for c in SMOKE.cells())
  assert not summary["failed"]
  assert any("4/4 done" in line and "time left" in line for line in lines)
  rows = table(workdir)
  assert len(rows) == 4 and {r["data_source"] for r in rows} == {"procedural"}
  assert all(r["test.rsquared"] for r in rows)
  for name in ("leaderboard.md", "claims.md", "report.html", "figures/1_splits_dsprites.png",
               "figures/2_r2_by_split.png", "figures/3_modularity.png",
               "figures/4_towards_mean.png", "figures/5_predictions_dsprites.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  board = open(os.path.join(workdir, "leaderboard.md")).read()
  assert "## dsprites leaderboard (procedural data)\n" in board and "| cnn |" in board
  claims = open(os.path.join(workdir, "claims.md")).read()
  assert "Extrapolation is the hardest split" in claims and "**" in claims
  # Test scores reach TensorBoard too.
  cell = os.path.join(workdir, SMOKE.cells()[0].name, "tensorboard")
  assert any(b"test/rsquared" in open(os.path.join(cell, f), "rb").read()
             for f in os.listdir(cell))


def modes(folder):
  """``{path: mode}`` of every file and folder under ``folder``."""
  out = {}
  for root, dirs, files in os.walk(folder):
    for name in dirs + files:
      path = os.path.join(root, name)
      out[os.path.relpath(path, folder)] = stat.S_IMODE(os.lstat(path).st_mode)
  return out


def test_everything_a_study_and_its_runs_write_has_the_modes_of_the_umask(finished):
  """Results are for collaborators too: no file is private to its writer (mkstemp's 0600
  was the default of the atomically written ones)."""
  workdir, _, _ = finished
  umask = os.umask(0o022)
  os.umask(umask)
  written = modes(workdir)
  names = {os.path.basename(p) for p in written}
  for name in ("study.json", "results.csv", "leaderboard.md", "claims.md", "report.html",
               "results.json", "config.json", "metrics.jsonl", "log.txt", "run.lock",
               "figures"):
    assert name in names, name
  wrong = {p: oct(m) for p, m in written.items()
           if m != (0o777 if os.path.isdir(os.path.join(workdir, p)) else 0o666) & ~umask
           and p.split(os.sep)[-1] != "run.lock"}
  assert not wrong, wrong
  # The lock holds only a pid and a host; it is created 0644 (before the umask).
  assert all(m == 0o644 & ~umask for p, m in written.items() if p.endswith("run.lock"))


def test_a_second_run_does_nothing_and_says_so(finished):
  workdir, _, _ = finished
  lines = []
  summary = runner.run(SMOKE, workdir, jobs=2, print_fn=lines.append)
  assert summary == {"done": [], "skipped": [c.name for c in SMOKE.cells()], "failed": {}}
  assert "all 4 cells are finished" in lines[0] and "nothing to do" in lines[0]


def test_each_worker_runs_exactly_the_config_the_runner_wrote(finished, tmp_path):
  """The runner builds a cell's config once and writes it; the worker runs that file, with
  no config overrides on its command line, and leaves it as it was written."""
  workdir, _, _ = finished
  for cell in SMOKE.cells():
    cell_dir = os.path.join(workdir, cell.name)
    path = workdir_lib.config_path(cell_dir)
    assert runner.command(cell, workdir)[3:] == [f"--config=saved:{path}",
                                                 f"--workdir={cell_dir}"]
    written = tmp_path / cell.name
    assert runner.write_config(cell, str(tmp_path)) == workdir_lib.config_path(str(written))
    assert open(path).read() == (written / "config.json").read_text()
    assert typed(saved.get_config(path)) == typed(runner.config(cell))
    assert json.load(open(workdir_lib.results_path(cell_dir)))["config"] == json.load(open(path))
    commands = [line for line in open(os.path.join(cell_dir, "log.txt")) if line[:2] == "$ "]
    assert commands and all(f"--config=saved:{path} " in c and "--config." not in c
                            for c in commands)


def test_a_cell_trained_with_another_config_is_refused_before_its_worker_starts(finished,
                                                                                tmp_path):
  """As the worker's resume would refuse it: a checkpoint of another training config fails
  the cell (the rest runs on); a change of what only scores it is taken."""
  workdir, _, _ = finished
  cell = SMOKE.cells()[0]
  shutil.copytree(os.path.join(workdir, cell.name), tmp_path / cell.name)
  os.remove(tmp_path / cell.name / "results.json")
  config = runner.config(cell)
  config.train.steps = 5
  workdir_lib.write_json(str(tmp_path / cell.name / "config.json"), config.to_dict())
  one = dataclasses.replace(SMOKE, splits=(cell.split,), approaches={
      cell.approach: SMOKE.approaches[cell.approach]})
  summary = runner.run(one, str(tmp_path), print_fn=lambda _: None)
  assert summary["failed"] == {cell.name: 1}
  log = (tmp_path / cell.name / "log.txt").read_text()
  assert "error: " + str(tmp_path / cell.name) + " holds a run trained to step 4 with another " \
         "config (train.steps: 5 -> 4)" in log
  assert saved.get_config(str(tmp_path / cell.name / "config.json")).train.steps == 5
  config.train.steps, config.eval.batch_size = 4, 32
  workdir_lib.write_json(str(tmp_path / cell.name / "config.json"), config.to_dict())
  runner.write_config(cell, str(tmp_path))
  assert typed(saved.get_config(str(tmp_path / cell.name / "config.json"))) == typed(
      runner.config(cell))


def test_a_report_on_a_partial_study_names_what_is_missing(finished, tmp_path):
  workdir, _, _ = finished
  partial = tmp_path / "partial"
  shutil.copytree(workdir, partial)
  gone = SMOKE.cells()[1].name
  os.remove(partial / gone / "results.json")
  lines = []
  out = report.write_all(str(partial), figures=False, print_fn=lines.append)
  assert out["missing"] == [gone] and out["rows"] == 3
  assert any("1 of 4 cells have no results yet: " + gone in line for line in lines)
  assert "3 finished cells" in (partial / "claims.md").read_text()


def test_a_killed_worker_does_not_stop_the_study_and_the_table_is_the_same(finished,
                                                                           tmp_path):
  """The smoke study's CNN cells, from a study file of the user's own, with the first
  cell's worker killed: it is retried, and the rows equal those of the finished study."""
  workdir, _, _ = finished
  cnn = dataclasses.replace(SMOKE, approaches={"cnn": SMOKE.approaches["cnn"]})
  path = tmp_path / "cnn_only.py"
  path.write_text(f"STUDY = {dataclasses.asdict(cnn)!r}\n")
  assert study_lib.load(str(path)).cells() == cnn.cells()
  killed = str(tmp_path / "killed")
  proc = subprocess.Popen([sys.executable, "-m", "gsgen.study", "run", f"--study={path}",
                           f"--workdir={killed}", "--jobs=1", "--no_report"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  lock = os.path.join(killed, cnn.cells()[0].name, "run.lock")
  start = time.time()
  while not (os.path.exists(lock) and open(lock).read().startswith("pid ")):
    assert proc.poll() is None and time.time() - start < 300
    time.sleep(0.05)
  os.kill(int(open(lock).read().split()[1]), signal.SIGKILL)  # the cell's worker process
  out, _ = proc.communicate(timeout=900)
  assert proc.returncode == 0, out
  assert "retry  " + cnn.cells()[0].name + " (exit -9" in out
  report.write_all(killed, figures=False, print_fn=lambda _: None)
  rows = {row["cell"]: row for row in table(killed)}
  whole = {row["cell"]: row for row in table(workdir)}
  assert sorted(rows) == sorted(c.name for c in cnn.cells())
  for name, row in rows.items():
    assert set(row) <= set(whole[name])
    assert row == {k: whole[name][k] for k in row}, name


def test_a_cell_name_carries_preset_overrides_and_seed():
  cell = study_lib.Cell("mpi3d", "extrapolation", "cnn", 3, "cpu", "cnn", "regression",
                        "supervised", overrides=(("train.steps", 500),))
  assert cell.name == "mpi3d-extrapolation-cnn-cpu-train.steps=500-seed3"
  assert cell.config().train.steps == 500 and cell.config().seed == 3
  smoke = study_lib.Cell("mpi3d", "extrapolation", "cnn", 3, "smoke", "cnn", "regression",
                         "supervised")
  assert smoke.name != cell.name


def test_a_finished_cell_of_another_preset_is_not_taken_for_this_one(finished, tmp_path):
  workdir, _, _ = finished
  cell = SMOKE.cells()[0]
  assert runner.is_finished(cell, workdir)
  cpu = study_lib.Cell(**{**cell.__dict__, "preset": "cpu"})
  shutil.copytree(os.path.join(workdir, cell.name), tmp_path / cpu.name)
  assert not runner.is_finished(cpu, str(tmp_path))  # the folder holds smoke results


def test_an_approach_sets_its_budget_per_dataset():
  study = study_lib.Study("s", ("dsprites", "mpi3d"), ("random",), (0,), {
      "cnn": {"overrides": {"train.steps": 50},
              "dataset_overrides": {"mpi3d": {"train.steps": 7, "eval.batch_size": 32}}},
      "mlp": {"model": "mlp", "datasets": ("dsprites",)}}, preset="smoke",
      overrides={"train.steps": 9})
  steps = {(c.approach, c.dataset): c.config().train.steps for c in study.cells()}
  assert steps == {("cnn", "dsprites"): 50, ("cnn", "mpi3d"): 7, ("mlp", "dsprites"): 9}
  mpi3d = [c for c in study.cells() if c.dataset == "mpi3d"][0]
  assert mpi3d.config().eval.batch_size == 32
  assert mpi3d.name == "mpi3d-random-cnn-smoke-eval.batch_size=32,train.steps=7-seed0"


def test_the_cells_share_compiled_programs_unless_the_user_chose_a_cache(finished, tmp_path,
                                                                        monkeypatch):
  workdir, _, _ = finished  # the tests' own cache (conftest) is the user's: kept
  assert not os.path.exists(os.path.join(workdir, runner.COMPILE_CACHE))
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
  one = dataclasses.replace(SMOKE, splits=("random",), approaches={"mlp": {"model": "mlp"}})
  assert runner.run(one, str(tmp_path), print_fn=lambda _: None)["done"]
  assert len(os.listdir(tmp_path / runner.COMPILE_CACHE)) > 0


def test_a_cell_that_fails_is_recorded_for_the_report(finished, tmp_path):
  study = dataclasses.replace(SMOKE, splits=("random",), approaches={
      "mlp": {"model": "mlp", "overrides": {"init_from.workdir": str(tmp_path / "nowhere")}}})
  summary = runner.run(study, str(tmp_path / "s"), retries=0, print_fn=lambda _: None)
  (name,) = summary["failed"]
  failures = runner.read_failures(str(tmp_path / "s"))
  assert failures == {name: {"exit": summary["failed"][name],
                             "log": str(tmp_path / "s" / name / "log.txt")}}
  assert "nowhere" in open(failures[name]["log"]).read()
  workdir, _, _ = finished  # a study without failures has no record of them
  assert runner.read_failures(workdir) == {}
  assert not os.path.exists(os.path.join(workdir, runner.FAILURES))


def test_unknown_study_lists_the_named_ones():
  with pytest.raises(FileNotFoundError, match="named studies: .*cpu.*smoke"):
    study_lib.load("tiny")


def test_the_named_studies_ship_inside_the_package(tmp_path):
  """--study=cpu resolves in an installed copy of the package, away from any checkout."""
  import setuptools  # pylint: disable=g-import-not-at-top
  assert "gsgen.study.studies" in setuptools.find_packages(str(ROOT), include=["gsgen*"])
  site = tmp_path / "site"
  shutil.copytree(ROOT / "gsgen", site / "gsgen", ignore=shutil.ignore_patterns("__pycache__"))
  proc = subprocess.run(
      [sys.executable, "-c", "from gsgen import study; s = study.load('cpu'); "
                             "print(study.STUDIES_DIR, len(s.cells()))"],
      cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True,
      text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  where, count = proc.stdout.split()
  assert where == str(site / "gsgen" / "study" / "studies")
  assert int(count) == len(study_lib.load("cpu").cells())


def test_a_study_file_of_your_own_is_given_by_its_path(capsys):
  path = str(ROOT / "experiments" / "studies" / "example.py")
  study = study_lib.load(path)
  study.check()
  assert cli.main(["list", f"--study={path}"]) == 0
  assert capsys.readouterr().out.split() == [c.name for c in study.cells()]


def test_seeds_of_a_cell_train_as_replicas_of_one_program(tmp_path):
  (tmp_path / "two_seeds.py").write_text(
      'STUDY = {"name": "two_seeds", "preset": "smoke", "datasets": ("dsprites",), '
      '"splits": ("extrapolation",), "seeds": (0, 1), "seeds_per_program": 2, '
      '"approaches": {"mlp": {"model": "mlp"}}}\n')
  study = study_lib.load(str(tmp_path / "two_seeds.py"))
  assert [u.name for u in runner.units(study.cells(), 2)] == [
      "dsprites-extrapolation-mlp-smoke-seeds0-1"]
  lines = []
  summary = runner.run(study, str(tmp_path / "run"), print_fn=lines.append)  # the study's 2
  assert sorted(summary["done"]) == [c.name for c in study.cells()]
  assert (tmp_path / "run" / "dsprites-extrapolation-mlp-smoke-seeds0-1").is_dir()
  assert all(runner.is_finished(c, str(tmp_path / "run")) for c in study.cells())
  out = report.write_all(str(tmp_path / "run"), print_fn=lambda _: None)
  assert out["rows"] == 2 and not out["missing"]
  assert any(p.endswith("5_predictions_dsprites.png") for p in out["files"])
  rows = table(tmp_path / "run")
  assert [r["seed"] for r in rows] == ["0", "1"] and rows[0]["test.rsquared"] != rows[1][
      "test.rsquared"]
  assert runner.run(study, str(tmp_path / "run"), seeds_per_program=2,
                    print_fn=lines.append)["done"] == []


def test_sigterm_stops_two_running_cells_at_saved_steps_and_the_rerun_equals_a_whole_study(
    tmp_path):
  """Two cells running at once; SIGTERM to the runner reaches both, each saves its step, the
  runner names where each stopped and exits 143; the rerun finishes both, bitwise equal to an
  uninterrupted study."""
  (tmp_path / "two.py").write_text(
      'STUDY = {"name": "two", "preset": "smoke", "datasets": ("dsprites",), '
      '"splits": ("random", "extrapolation"), "seeds": (0,), '
      '"approaches": {"cnn": {"model": "cnn"}}, "overrides": {"train.steps": 40, '
      '"train.log_every": 1, "train.checkpoint_every": 1000}}\n')
  study = study_lib.load(str(tmp_path / "two.py"))
  parts = tmp_path / "parts"
  proc = subprocess.Popen([sys.executable, "-m", "gsgen.study", "run",
                           f"--study={tmp_path / 'two.py'}", f"--workdir={parts}", "--jobs=2",
                           "--no_report", "--grace_seconds=30"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  logs = [parts / c.name / "metrics.jsonl" for c in study.cells()]
  start = time.time()
  while not all(p.exists() and p.read_text().count("\n") >= 3 for p in logs):
    assert proc.poll() is None and time.time() - start < 300, proc.communicate()
    time.sleep(0.2)
  sent = time.time()
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=60)
  assert time.time() - sent < 35
  assert proc.returncode == 143, out
  assert "Traceback" not in out
  for cell in study.cells():
    step = runner.saved_step(str(parts / cell.name))
    assert 3 <= step < 40, out
    assert f"stopped {cell.name} at step {step} (exit 143)" in out
    assert not (parts / cell.name / "results.json").exists()
  assert runner.run(study, str(parts), jobs=2, print_fn=lambda _: None)["failed"] == {}
  runner.run(study, str(tmp_path / "whole"), jobs=2, print_fn=lambda _: None)
  for cell in study.cells():
    (step_a, a), (step_b, b) = (final_state(parts / cell.name),
                                final_state(tmp_path / "whole" / cell.name))
    assert step_a == step_b == 40
    jax.tree.map(np.testing.assert_array_equal, a, b)
    results = [json.loads((d / cell.name / "results.json").read_text())
               for d in (parts, tmp_path / "whole")]
    assert results[0]["test"] == results[1]["test"]


STUDY_MISTAKES = [
    ("syntax", 'STUDY = {"name": "x",\n', r"study file .*syntax.py, line 1: '\{' was never "
                                          r"closed\."),
    ("no_study", "STUDIES = {}\n", r"study file .*no_study.py must define STUDY, a dict with "
                                   r"keys name, datasets, splits"),
    ("unknown_key", {"presett": "smoke"}, r"STUDY has unknown keys \['presett'\]; its keys: "),
    ("missing_key", {"datasets": None}, r"STUDY lacks \['datasets'\]; its keys: "),
    ("a_string", {"datasets": "dsprites"}, r"STUDY\['datasets'\] must be a tuple; got "
                                           r"'dsprites'\."),
    ("dataset", {"datasets": ("dsprite",)}, r"study x, cell dsprite-random-cnn-smoke-seed0: "
                                            r"unknown dataset 'dsprite'; choose one of "),
    ("model", {"approaches": {"cnn": {"model": "cnnn"}}}, r"unknown model 'cnnn'"),
    ("approach_key", {"approaches": {"cnn": {"modle": "cnn"}}},
     r"approach 'cnn' has unknown keys \['modle'\]; its keys: model, learner"),
    ("preset", {"preset": "CPU"}, r"unknown preset 'CPU'; choose one of cpu, paper, smoke"),
    ("override", {"overrides": {"train.step": 3}},
     r"config.train has no field 'step'; did you mean 'steps'\?"),
    ("override_type", {"overrides": {"train.steps": "ten"}},
     r"config.train.steps=ten: expected an integer \(the default is 4\)\."),
    ("dataset_overrides", {"approaches": {"cnn": {"dataset_overrides": {"mpi3d": {}}}}},
     r"approach 'cnn' has dataset_overrides for \['mpi3d'\]; it must map some of its "
     r"datasets \(dsprites\)"),
    ("dataset_override", {"approaches": {"cnn": {
        "dataset_overrides": {"dsprites": {"train.stepz": 3}}}}},
     r"config.train has no field 'stepz'; did you mean 'steps'\?"),
    ("seeds_per_program", {"seeds_per_program": 0},
     r"STUDY\['seeds_per_program'\] must be a positive integer; got 0\."),
]


@pytest.mark.parametrize("name,content,message", STUDY_MISTAKES,
                         ids=[m[0] for m in STUDY_MISTAKES])
def test_a_bad_study_file_is_one_line_and_exit_status_1(name, content, message, tmp_path,
                                                        capsys):
  if isinstance(content, dict):
    study = {"name": "x", "preset": "smoke", "datasets": ("dsprites",), "splits": ("random",),
             "seeds": (0,), "approaches": {"cnn": {}}, **content}
    content = f"STUDY = {({k: v for k, v in study.items() if v is not None})!r}\n"
  (tmp_path / f"{name}.py").write_text(content)
  code = cli.main(["run", f"--study={tmp_path / name}.py", f"--workdir={tmp_path / 'w'}"])
  err = capsys.readouterr().err
  assert code == 1 and err.count("\n") == 1 and re.match("error: .*" + message, err), err
  assert not (tmp_path / "w").exists()  # refused before anything ran


@pytest.mark.parametrize("argv,message", [
    (["run", "--workdir=w"], "error: the following arguments are required: --study"),
    (["rnu"], "error: argument command: invalid choice: 'rnu'"),
    (["run", "--study=smoke", "--workdir=w", "--jobs=two"], "error: argument --jobs: invalid "
                                                           "int value: 'two'"),
    (["run", "--study=smoke", "--workdir=w", "--executor=slurm"],
     "error: argument --executor: invalid choice: 'slurm'"),
    (["run", "--study=tiny", "--workdir=w"], "error: no study 'tiny'"),
    (["report", "--workdir=nowhere"], "error: nowhere holds no study (no study.json)"),
])
def test_every_study_command_line_mistake_is_one_line_and_exit_status_1(argv, message, capsys):
  try:
    code = cli.main(argv)
  except SystemExit as e:  # argparse's own mistakes
    code = e.code
  err = capsys.readouterr().err
  assert code == 1 and err.count("\n") == 1 and err.startswith(message), err
  with pytest.raises(SystemExit) as help_:
    cli.main(["--help"])
  assert help_.value.code == 0


def _row(approach, group, split, seed, r2, dataset="dsprites", data_source="procedural",
         source="procedural"):
  return {"cell": f"{dataset}-{split}-{approach}-seed{seed}", "dataset": dataset,
          "split": split, "approach": approach, "group": group, "seed": seed,
          "data_source": data_source, "source": source, "test.rsquared": r2}


def test_each_claim_is_checked_per_group_and_per_approach_with_the_seeds_spread():
  """The supervised approach has its lowest R² on extrapolation, the unsupervised one does
  not: the claim fails for the study and that group, holds for the other, and names the
  comparison that fails it."""
  rows = [_row("cnn", "supervised", "random", s, v) for s, v in ((0, 0.9), (1, 0.8))]
  rows += [_row("cnn", "supervised", "extrapolation", s, v) for s, v in ((0, 0.5), (1, 0.3))]
  rows += [_row("vae", "unsupervised", "random", s, v) for s, v in ((0, 0.2), (1, 0.4))]
  rows += [_row("vae", "unsupervised", "extrapolation", s, v) for s, v in ((0, 0.6), (1, 0.6))]
  for r in rows:
    if r["split"] == "extrapolation":
      r.update({"towards_mean.scale.share_0_1": 0.9 if r["group"] == "supervised" else 0.2,
                "modularity.scale.rsquared_id_split_factors": 0.8,
                "modularity.scale.rsquared_ood": 0.1})
  hardest, towards, modular, *_ = claims_lib.check(rows)
  assert hardest.holds is False
  assert {g: v.holds for g, v in hardest.by_group.items()} == {"supervised": True,
                                                               "unsupervised": False}
  assert hardest.by_approach["cnn"] == (True, "dsprites: extrapolation 0.400 ± 0.100 vs "
                                              "random 0.850 ± 0.050")
  assert hardest.deciding == ["dsprites/vae: extrapolation 0.600 ± 0.000 vs random 0.300 ± "
                              "0.100 (extrapolation is not the lowest)"]
  assert towards.holds is False and towards.by_group["supervised"].holds
  assert towards.by_group["unsupervised"].numbers.startswith("median share 0.20")
  assert len(towards.deciding) == 2 and all("vae" in d for d in towards.deciding)
  assert modular.holds and modular.deciding == ["all 4 subsets agree"]
  assert modular.by_group["unsupervised"].numbers.startswith("2 of 2 subsets agree")
  text = claims_lib.markdown([hardest], rows, [])
  assert "| supervised | holds | dsprites: extrapolation 0.400 ± 0.100" in text
  assert "| vae | unsupervised | does not hold |" in text and "Decided by:" in text


def test_transfer_on_mpi3d_real_is_judged_on_the_real_variant_only():
  scores = {"cnn": ("supervised", 0.3), "ft": ("transfer", 0.6)}
  for variant, verdict in (("toy", None), ("real", True)):
    rows = [_row(a, g, "extrapolation", 0, v, dataset="mpi3d", data_source="official",
                 source=variant) for a, (g, v) in scores.items()]
    claim = claims_lib.check(rows)[-1]
    assert claim.holds is verdict, variant
  assert claim.by_group["supervised"] == (True, "best cnn 0.300 ± 0.000")
  assert claim.deciding == ["best transfer approach ft 0.600 ± 0.000 vs best other cnn "
                            "(supervised) 0.300 ± 0.000"]


def test_the_leaderboard_names_the_data_source_once_unless_the_source_says_more():
  rows = [_row("cnn", "supervised", "extrapolation", 0, 0.5),
          _row("cnn", "supervised", "extrapolation", 0, 0.4, dataset="mpi3d",
               data_source="official", source="toy")]
  board = table_lib.leaderboard(rows)
  assert "## dsprites leaderboard (procedural data)\n" in board
  assert "## mpi3d leaderboard (official data: toy)\n" in board


def test_the_modularity_figure_draws_and_counts_the_points_below_its_axis(tmp_path,
                                                                          monkeypatch):
  saved = []
  monkeypatch.setattr(figures, "_save", lambda fig, path: saved.append(fig) or path)
  rows = [{"dataset": "dsprites", "split": "extrapolation", "approach": "cnn",
           "test.modularity.x.rsquared_ood": -3.0, "test.modularity.x.rsquared_id_split_factors":
           0.5, "test.modularity.y.rsquared_ood": 0.2,
           "test.modularity.y.rsquared_id_split_factors": 0.4}]
  figures.modularity_figure(rows, str(tmp_path / "3.png"))
  ax = saved[0].axes[0]
  assert "1 of 2 points below R² -1, drawn at it" in ax.get_title()
  drawn = np.concatenate([c.get_offsets() for c in ax.collections])
  assert sorted(map(tuple, drawn.tolist())) == [(-1.0, 0.5), (0.2, 0.4)]


# --- the report page: built from Python, rendered and printed by a headless Chromium, and
# the same bytes from a second report.

REPORTED = ("report.html", "results.csv", "claims.md", "leaderboard.md")


class Dom(html.parser.HTMLParser):
  """Every start tag as ``(tag, attributes)``, and each results table's rows of cells."""

  def __init__(self, text):
    super().__init__()
    self.tags, self.tables = [], []
    self._table = self._cell = None
    self.feed(text)

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    self.tags.append((tag, attrs))
    classes = attrs.get("class", "").split()
    if tag == "table" and "results" in classes:
      self._table = []
      self.tables.append(self._table)
    elif self._table is not None and tag == "tr":
      self._table.append([])
    elif self._table is not None and tag in ("td", "th"):
      self._cell = {"class": classes, "text": ""}
      self._table[-1].append(self._cell)

  def handle_endtag(self, tag):
    if tag in ("td", "th"):
      self._cell = None
    elif tag == "table":
      self._table = None

  def handle_data(self, data):
    if self._cell is not None:
      self._cell["text"] += data

  def ids(self):
    return [a["id"] for _, a in self.tags if "id" in a]


@pytest.fixture(scope="session")  # set up before the smoke study: a skip costs no run
def browser():
  path = shutil.which("chromium")
  if path is None:
    if os.environ.get("CI"):
      pytest.fail("the report page test needs Debian's Chromium in CI: apt-get install "
                  "chromium (.ci/run installs it)")
    pytest.skip("no chromium here (apt-get install chromium); CI runs this test")
  return path


def chromium(browser, tmp_path, *args) -> str:
  """Runs headless Chromium with ``args``; its standard output."""
  proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                         *args], capture_output=True, text=True, timeout=180, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_the_page_renders_in_a_browser_with_every_section_and_prints(browser, finished,
                                                                     tmp_path):
  workdir, _, _ = finished
  url = "file://" + os.path.abspath(os.path.join(workdir, "report.html"))
  dom_text = chromium(browser, tmp_path, "--dump-dom", url)
  dom = Dom(dom_text)
  ids = dom.ids()
  assert [i for i in ids if i in page.SECTIONS] == list(page.SECTIONS)
  # The results table: one row per approach, one column per split, the best one marked.
  (table,) = dom.tables
  header = [c["text"] for c in table[0]]
  assert header[:3] == ["Approach", "Group", "Seeds"] and header[3:] == ["random",
                                                                        "extrapolation"]
  rows = {r[0]["text"]: r for r in table[1:]}
  assert sorted(rows) == ["cnn", "mlp"]
  assert all(r[1]["text"] == "supervised" and r[2]["text"] == "1" for r in rows.values())
  for column in range(3, len(header)):
    marked = [r for r in rows.values() if "best" in r[column]["class"]]
    assert len(marked) == 1 and page.BEST in marked[0][column]["text"], header[column]
    assert re.fullmatch(r"-?\d\.\d{3} ± \d\.\d{3} " + page.BEST, marked[0][column]["text"])
  # Every claim with its verdict, by group and by approach.
  rows_, _ = table_lib.collect(workdir)
  articles = re.findall(r'<article class="claim".*?</article>', dom_text, re.S)
  claims = claims_lib.check(rows_)
  assert len(articles) == len(claims)
  for claim, article in zip(claims, articles):
    assert claim.text in article.replace("&gt;", ">")
    assert re.search(r"Verdict: <span class=\"verdict (holds|fails|undecided)\">"
                     + claims_lib.MARKS[claim.holds] + "</span>", article)
    if claim.by_group:
      assert 'class="by-group"' in article and 'class="by-approach"' in article
  # The figures, inside the page; nothing from the network.
  images = [a.get("src", "") for t, a in dom.tags if t == "img"]
  assert len(images) == len(os.listdir(os.path.join(workdir, "figures"))) == 5
  assert all(src.startswith("data:image/png;base64,") for src in images)
  links = [a[k] for _, a in dom.tags for k in ("src", "href") if k in a]
  assert all(v.startswith(("data:", "#")) for v in links), links
  assert not re.search(r"https?:|//[a-z]", re.sub(r"base64,[A-Za-z0-9+/=]+", "", dom_text))
  # A screenshot that shows something, and a printable PDF.
  shot, pdf = tmp_path / "page.png", tmp_path / "page.pdf"
  chromium(browser, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000",
           "--hide-scrollbars", url)
  pixels = matplotlib.image.imread(str(shot))[..., :3]
  assert pixels.shape[:2] == (4000, 1280)
  assert pixels.std() > 0.05 and (pixels < 0.9).any(axis=-1).mean() > 0.02
  chromium(browser, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", url)
  data = pdf.read_bytes()
  assert data.startswith(b"%PDF") and len(data) > 20_000


def test_a_second_report_writes_the_same_bytes(finished):
  """Run from the command line in another process (another hash seed): the page, the table,
  the claims and the leaderboard are byte for byte those of the first report."""
  workdir, _, _ = finished
  before = {n: open(os.path.join(workdir, n), "rb").read() for n in REPORTED}
  proc = subprocess.run([sys.executable, "-m", "gsgen.study", "report", f"--workdir={workdir}"],
                        capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "report.html" in proc.stdout
  for name in REPORTED:
    assert open(os.path.join(workdir, name), "rb").read() == before[name], name


def test_the_page_built_from_python_has_its_sections_and_names_what_is_missing(finished,
                                                                               tmp_path):
  workdir, _, _ = finished
  partial = tmp_path / "partial"
  shutil.copytree(workdir, partial)
  os.remove(partial / "report.html")
  gone, failed = sorted(n for n in os.listdir(partial)
                        if n.startswith(("dsprites-random-cnn", "dsprites-random-mlp")))
  os.remove(partial / gone / "results.json")
  os.remove(partial / failed / "results.json")
  runner._record_failures(str(partial), {failed: {"exit": 3, "log": "somewhere/log.txt"}})
  manifest = (partial / "study.json").read_text()
  (partial / "study.json").write_text(manifest.replace('"smoke"', '"smoke <b>&"', 1))
  path = page.write(str(partial))
  text = open(path).read()
  assert path == str(partial / "report.html")
  positions = [text.index(f'id="{s}"') for s in page.SECTIONS]
  assert positions == sorted(positions)
  assert "<h1>Study smoke &lt;b&gt;&amp;</h1>" in text and "<b>&" not in text
  assert "Results on procedural data." in text
  assert "4 cells: 2 finished, 2 without results" in text
  missing = text[text.index('id="missing"'):]
  assert f"<td>{gone}</td><td>started: its log.txt says how it ended</td>" in missing
  assert f"<td>{failed}</td><td>failed (exit 3; somewhere/log.txt)</td>" in missing
  assert text.count('<img src="data:image/png;base64,') == 5
  # The results table has no mean where the cell is missing.
  assert '<td class="none">–</td>' in text[text.index('id="results"'):text.index(
      'id="leaderboard"')]
  figures = text[text.index('id="figures"'):text.index('id="missing"')]
  captions = re.findall(r"<figcaption>(.*?)</figcaption>", figures)
  assert captions[1].startswith("Lowest mean R² averaged over approaches: dsprites: ")
  assert re.match(r"Points above the diagonal .*: dsprites: \d of 8\.", captions[2])
  assert len(captions) == 5 and all(captions)
