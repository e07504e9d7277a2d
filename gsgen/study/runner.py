"""Runs the cells of a study through the launcher, on local worker processes or a Ray cluster
(`gsgen.study.executors`).

Synopsis::

  from gsgen import study
  from gsgen.study import runner
  summary = runner.run(study.load("smoke"), "workdirs/smoke", jobs=2)
  summary["failed"]                       # cells that failed after their retries

Contract: every cell is one ``python -m gsgen.main`` process in its own workdir, running the
config the runner wrote there once (``config.json``, `write_config`). Finished cells are
skipped; a failing cell is retried, then reported, and never stops the others; a lost worker
costs only the steps since its cell's last checkpoint. SIGTERM or SIGINT to the runner
reaches each running cell once, through the runner (every cell has its own session): the
cells save their step, the runner waits up to ``grace_seconds``, reports where each stopped
and returns (the command line exits 128 + the signal number); cells still running then are
killed and resume from their last checkpoint.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import sys
import time
from typing import Callable

import ml_collections

from gsgen import results as results_lib
from gsgen import workdir as workdir_lib
from gsgen.study import executors
from gsgen.study import Cell
from gsgen.study import Study
from gsgen.study import write_manifest

EXECUTORS = ("local", "ray")
# The compiled programs the cells share, inside the study's folder.
COMPILE_CACHE = "jax_cache"
# The cells that failed in the study's last complete run: name -> exit code and log file.
FAILURES = "failed.json"


@dataclasses.dataclass(frozen=True)
class Unit:
  """What one launcher process trains: one cell, or the consecutive seeds of one cell as
  replicas of one program (``config.num_seeds``)."""
  cells: tuple

  @property
  def name(self) -> str:
    """The workdir name (a cell's own name for a single cell)."""
    first, last = self.cells[0], self.cells[-1]
    if len(self.cells) == 1:
      return first.name
    return first.name[:-len(f"seed{first.seed}")] + f"seeds{first.seed}-{last.seed}"


def units(cells: list[Cell], seeds_per_program: int) -> list[Unit]:
  """Groups the cells that differ only in consecutive seeds, at most ``seeds_per_program``."""
  if seeds_per_program <= 1:
    return [Unit((c,)) for c in cells]
  groups = {}
  for c in cells:
    groups.setdefault(dataclasses.replace(c, seed=0), []).append(c)
  out = []
  for members in groups.values():
    members.sort(key=lambda c: c.seed)
    run = [members[0]]
    for c in members[1:]:
      if c.seed == run[-1].seed + 1 and len(run) < seeds_per_program:
        run.append(c)
      else:
        out.append(Unit(tuple(run)))
        run = [c]
    out.append(Unit(tuple(run)))
  return out


def config(unit) -> ml_collections.ConfigDict:
  """The config the worker of a unit (or a cell) runs: its first cell's, with one replica
  per seed of the unit and no progress bars."""
  unit = unit if isinstance(unit, Unit) else Unit((unit,))
  out = unit.cells[0].config()
  out.num_seeds = len(unit.cells)
  out.progress = False
  return out


def write_config(unit, workdir: str) -> str:
  """Writes the config of a unit (or a cell) to its workdir's ``config.json``; the path.

  A workdir that holds a checkpoint keeps the config it was trained with unless the new one
  differs only where `gsgen.results.check_config` allows (the rule the worker's resume uses).

  Raises:
    gsgen.results.ConfigChangedError: the workdir holds a run trained with another config.
  """
  unit = unit if isinstance(unit, Unit) else Unit((unit,))
  run_dir = os.path.join(workdir, unit.name)
  os.makedirs(run_dir, exist_ok=True)
  results_lib.check_config(run_dir, config(unit), saved_step(run_dir) or 0)
  return workdir_lib.config_path(run_dir)


def command(unit, workdir: str) -> list[str]:
  """The launcher command of a unit (or a cell): it runs the unit's ``config.json``
  (`write_config`) in its workdir under the study's."""
  unit = unit if isinstance(unit, Unit) else Unit((unit,))
  run_dir = os.path.join(workdir, unit.name)
  return [sys.executable, "-m", "gsgen.main",
          f"--config=saved:{workdir_lib.config_path(run_dir)}", f"--workdir={run_dir}"]


def _hand_out(unit: Unit, workdir: str) -> None:
  """Copies each replica's results of a several-seed unit into its cell's own workdir, with
  a note of where the checkpoints are (`gsgen.runs.load` follows it)."""
  if len(unit.cells) == 1:
    return
  import shutil  # pylint: disable=g-import-not-at-top
  run_dir = os.path.join(workdir, unit.name)
  for c in unit.cells:
    cell_dir = os.path.join(workdir, c.name)
    os.makedirs(cell_dir, exist_ok=True)
    replica = workdir_lib.seed_dir(run_dir, c.seed)
    # results last: it marks the cell done
    for path in (workdir_lib.metrics_path, workdir_lib.results_path):
      shutil.copyfile(path(replica), path(cell_dir) + ".tmp")
      os.replace(path(cell_dir) + ".tmp", path(cell_dir))
    workdir_lib.write_replica_of(cell_dir, run_dir, c.seed)


def is_finished(cell: Cell, workdir: str) -> bool:
  """Whether ``cell`` has results of its config (not of another cell's; see
  `gsgen.results.finished`)."""
  return results_lib.finished(os.path.join(workdir, cell.name), cell.config()) is not None


def saved_step(cell_dir: str) -> int | None:
  """The newest checkpoint step in a cell's workdir, or None."""
  folder = workdir_lib.checkpoints(cell_dir)
  steps = [int(n) for n in os.listdir(folder) if n.isdigit()] if os.path.isdir(folder) else []
  return max(steps, default=None)


def _compile_cache_env(workdir: str) -> dict:
  """Shares compiled programs between the study's cells: the cells of one approach on one
  dataset (every split and seed) compile the same programs, so only the first one pays for
  compiling (tens of seconds a cell on a CPU). A cache the user set is kept."""
  if "JAX_COMPILATION_CACHE_DIR" in os.environ:
    return {}
  return {"JAX_COMPILATION_CACHE_DIR": os.path.join(os.path.abspath(workdir), COMPILE_CACHE)}


def _shared_device_env(share: float) -> dict:
  """Lets several cells share an accelerator: JAX then allocates memory as it needs it
  instead of taking most of the device at start."""
  env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
  if 0 < share < 1:
    env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{share * 0.9:.3f}"
  return env


@dataclasses.dataclass
class _Progress:
  """Cells done, running and failed, and an estimate of the time left."""
  total: int
  jobs: int
  done: int = 0
  failed: int = 0
  skipped: int = 0
  durations: list = dataclasses.field(default_factory=list)

  def line(self, running: int) -> str:
    left = self.total - self.done - self.failed
    eta = "unknown"
    if self.durations:
      per_cell = sum(self.durations) / len(self.durations)
      seconds = per_cell * max(left - running / 2, 0) / max(self.jobs, 1)
      eta = time.strftime("%H:%M:%S", time.gmtime(seconds))
    return (f"[{self.done}/{self.total} done ({self.skipped} already), {running} running, "
            f"{self.failed} failed] time left about {eta}")


def run(study: Study, workdir: str, *, jobs: int = 1, retries: int = 2,
        executor: str = "local", address: str | None = None, gpus_per_cell: float = 0.0,
        seeds_per_program: int | None = None, grace_seconds: float = 25.0,
        print_fn: Callable[[str], None] = print) -> dict:
  """Runs every unfinished cell of ``study``; SIGTERM/SIGINT stop it (module docstring).

  Args:
    study: the study.
    workdir: the study's folder; cell ``c`` runs in ``workdir/c.name``.
    jobs: processes at once (local executor; Ray schedules by its resources).
    retries: attempts after the first before a cell counts as failed.
    executor: ``local`` worker processes or ``ray``.
    address: the Ray cluster (``auto``, ``ray://host:10001``); None starts a local one.
    gpus_per_cell: Ray's GPU share per process (0.25 packs four on one GPU).
    seeds_per_program: train up to this many consecutive seeds of a cell as replicas of
      one program (``config.num_seeds``); each seed's results still land in its own cell.
      None: the study's own (``Study.seeds_per_program``).
    grace_seconds: after a stop signal, how long to wait for the cells' checkpoints.
    print_fn: where progress lines go.

  Returns:
    ``{"done": [names], "skipped": [names], "failed": {name: exit code}}``, and after a stop
    signal ``"stopped"``: ``{unit name: saved step or None}`` and ``"signal"``: its number.
  """
  if executor not in EXECUTORS:
    raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}.")
  study.check()
  write_manifest(study, workdir)
  cells = study.cells()
  todo = [c for c in cells if not is_finished(c, workdir)]
  skipped = [c.name for c in cells if c not in todo]
  progress = _Progress(len(cells), jobs, done=len(skipped), skipped=len(skipped))
  if not todo:
    print_fn(f"study {study.name}: all {len(cells)} cells are finished in {workdir}; nothing "
             f"to do.")
    return {"done": [], "skipped": skipped, "failed": {}}
  print_fn(f"study {study.name}: {len(todo)} of {len(cells)} cells to run in {workdir} "
           f"({executor}, {'jobs ' + str(jobs) if executor == 'local' else 'Ray'}).")
  cache = _compile_cache_env(workdir)
  submit = (executors.Local(jobs, {**cache,
                                   **(_shared_device_env(1.0 / jobs) if jobs > 1 else {})})
            if executor == "local" else
            executors.Ray(address, gpus_per_cell,
                          {**cache, **_shared_device_env(gpus_per_cell)}))
  attempts = collections.Counter()
  done, failed, logs = [], {}, {}
  if seeds_per_program is None:
    seeds_per_program = study.seeds_per_program
  queue = collections.deque(units(todo, seeds_per_program))
  running = {}
  with workdir_lib.stop_signals() as stop:
    while queue or running:
      while queue and submit.has_room(len(running)) and stop.signum is None:
        unit = queue.popleft()
        attempts[unit] += 1
        log = os.path.join(workdir, unit.name, "log.txt")
        try:
          if attempts[unit] == 1:  # a retry resumes the config its first attempt wrote
            write_config(unit, workdir)
        except results_lib.ConfigChangedError as e:
          with open(log, "a") as f:  # what the worker would have said, as it would have
            f.write(f"\nerror: {e}\n")
          _failed(unit, 1, failed, logs, progress, running, workdir, print_fn)
          continue
        running[unit] = (submit(command(unit, workdir), log), time.time())
      if stop.signum is not None:
        return _stop(stop.signum, running, submit, workdir, grace_seconds, print_fn,
                     {"done": done, "skipped": skipped, "failed": failed})
      finished = submit.wait([handle for handle, _ in running.values()], timeout=0.5)
      _collect(finished, running, attempts, retries, queue, done, failed, logs, progress,
               workdir, print_fn)
  _record_failures(workdir, {n: {"exit": code, "log": logs[n]} for n, code in failed.items()})
  print_fn(f"study {study.name}: {len(done)} cells run, {len(skipped)} were finished, "
           f"{len(failed)} failed" + (f": {', '.join(failed)}" if failed else "") + ".")
  return {"done": done, "skipped": skipped, "failed": failed}


def _collect(finished, running, attempts, retries, queue, done, failed, logs, progress,
             workdir, print_fn):
  """Books the units whose attempt ended: done, queued again, or failed."""
  for unit, (handle, start) in list(running.items()):
    if handle not in finished:
      continue
    code = finished[handle]
    del running[unit]
    if code == 0:
      _hand_out(unit, workdir)
      done += [c.name for c in unit.cells]
      progress.done += len(unit.cells)
      progress.durations += [(time.time() - start) / len(unit.cells)] * len(unit.cells)
      print_fn(f"done   {unit.name} ({time.time() - start:.0f} s)  "
               f"{progress.line(len(running))}")
    elif attempts[unit] <= retries:
      print_fn(f"retry  {unit.name} (exit {code}, attempt {attempts[unit]} of "
               f"{retries + 1}); it resumes from its last checkpoint")
      queue.append(unit)
    else:
      _failed(unit, code, failed, logs, progress, running, workdir, print_fn)


def _failed(unit, code, failed, logs, progress, running, workdir, print_fn):
  """Books a unit as failed with exit status ``code``."""
  for c in unit.cells:
    failed[c.name] = code
    logs[c.name] = os.path.join(workdir, unit.name, "log.txt")
  progress.failed += len(unit.cells)
  print_fn(f"FAILED {unit.name} (exit {code}; see {os.path.join(workdir, unit.name)}/"
           f"log.txt)  {progress.line(len(running))}")


def _record_failures(workdir: str, failures: dict) -> None:
  """Writes `FAILURES` for the report (removes it when no cell failed)."""
  path = os.path.join(workdir, FAILURES)
  if failures:
    workdir_lib.write_json(path, failures)
  elif os.path.exists(path):
    os.remove(path)


def read_failures(workdir: str) -> dict:
  """The cells that failed in the study's last complete run: ``{name: {"exit", "log"}}``."""
  path = os.path.join(workdir, FAILURES)
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _stop(signum, running, submit, workdir, grace_seconds, print_fn, summary) -> dict:
  """Passes a stop signal on to the running units, waits for them, says where each stopped."""
  name = signal.Signals(signum).name
  print_fn(f"{name}: stopping {len(running)} running cell(s); waiting up to "
           f"{grace_seconds:g} s for their checkpoints")
  handles = {handle: unit for unit, (handle, _) in running.items()}
  for handle in handles:
    submit.signal(handle, signum)
  ended, deadline = {}, time.time() + grace_seconds
  while len(ended) < len(handles) and time.time() < deadline:
    ended.update(submit.wait([h for h in handles if h not in ended],
                             timeout=max(deadline - time.time(), 0.01)))
  stopped = {}
  for handle, unit in handles.items():
    code = ended.get(handle)
    if code == 0:
      _hand_out(unit, workdir)
      summary["done"] += [c.name for c in unit.cells]
      print_fn(f"done    {unit.name} (it finished before it saw the signal)")
      continue
    if code is None:
      submit.kill(handle)
    step = stopped[unit.name] = saved_step(os.path.join(workdir, unit.name))
    where = f"step {step}" if step is not None else "no checkpoint yet"
    print_fn(f"stopped {unit.name} at {where} (exit {code})" if code is not None else
             f"killed  {unit.name} after {grace_seconds:g} s without a checkpoint of its "
             f"last step; it resumes from {where}")
  print_fn(f"{name}: the study stopped; rerun the same command to resume every cell.")
  return {**summary, "stopped": stopped, "signal": signum}
