"""A run's folder: where each of its files lives, one live run at a time, files replaced
atomically, and SIGTERM/SIGINT turned into "save a checkpoint now".

Synopsis::

  from gsgen import workdir as workdir_lib
  workdir_lib.checkpoints(path), workdir_lib.seed_dir(path, 3)   # path/checkpoints, path/seed3
  with workdir_lib.lock(path), workdir_lib.stop_signals() as stop:  # refuses a second live run
    ...                                   # the training loop reads stop.signum between steps
    workdir_lib.write_json(workdir_lib.results_path(path), results)

Contract: every path inside a run's folder is spelled here and nowhere else. Replica ``s`` of
a run of several seeds keeps its metrics and results in ``seed<s>/``; a study cell trained as
such a replica holds ``replica_of.json``, which `replica_of` follows. `lock` refuses a second
live run, naming it, and dies with its process (an advisory ``flock`` on ``run.lock``, so a
killed run never blocks the next); under `stop_signals` a first SIGTERM or SIGINT makes the
run save its step and raise `Interrupted` (exit status 128 + the signal number), a second
stops at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import tempfile
import threading
import time

# The files and folders of a run, relative to its folder.
CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.json"
CHANGES_FILE = "config_changes.json"
RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD = "tensorboard"
LOCK_FILE = "run.lock"
REPLICA_FILE = "replica_of.json"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def checkpoints(path: str) -> str:
  """The run's checkpoint folder."""
  return os.path.join(path, CHECKPOINTS)


def config_path(path: str) -> str:
  """The config the run was started with (``config.json``)."""
  return os.path.join(path, CONFIG_FILE)


def changes_path(path: str) -> str:
  """The accepted config changes of a resumed run (``config_changes.json``)."""
  return os.path.join(path, CHANGES_FILE)


def results_path(path: str) -> str:
  """The run's final results (``results.json``; see `gsgen.results`)."""
  return os.path.join(path, RESULTS_FILE)


def metrics_path(path: str) -> str:
  """The run's metric log (``metrics.jsonl``; see `gsgen.metric_log`)."""
  return os.path.join(path, METRICS_FILE)


def seed_dir(path: str, seed: int) -> str:
  """Where one replica of a several-seed run writes its metrics and results."""
  return os.path.join(path, f"seed{seed}")


def read_config(path: str) -> dict:
  """The config a run in ``path`` was started with (``config.json``).

  Raises:
    FileNotFoundError: no run there.
  """
  config_file = config_path(path)
  if not os.path.isfile(config_file):
    raise FileNotFoundError(f"{path} holds no run (no config.json).")
  with open(config_file) as f:
    return json.load(f)


def write_replica_of(path: str, run: str, seed: int) -> None:
  """Records in ``path`` that its results are those of replica ``seed`` of the run in ``run``
  (the pointer is relative, so the study's folder can move)."""
  write_json(os.path.join(path, REPLICA_FILE),
             {"workdir": os.path.relpath(run, path), "seed": seed})


def replica_of(path: str) -> tuple[str, int] | None:
  """``(the run's folder, seed)`` if ``path`` holds a replica's pointer, else None."""
  pointer = os.path.join(path, REPLICA_FILE)
  if not os.path.isfile(pointer):
    return None
  with open(pointer) as f:
    where = json.load(f)
  return os.path.normpath(os.path.join(path, where["workdir"])), where["seed"]


def _umask() -> int:
  """The process umask (read without changing it where /proc tells it)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except OSError:
    pass
  mask = os.umask(0o022)  # elsewhere: read by setting it, then put it back at once
  os.umask(mask)
  return mask


class RunLockedError(RuntimeError):
  """Another live process holds the workdir."""


@contextlib.contextmanager
def lock(path: str):
  """Holds ``path/run.lock`` for the duration; refuses if a live process holds it.

  Raises:
    RunLockedError: naming the holder's pid, host and start time.
  """
  os.makedirs(path, exist_ok=True)
  lock_path = os.path.join(path, LOCK_FILE)
  fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    holder = os.read(fd, 4096).decode(errors="replace").strip() or "an unknown process"
    os.close(fd)
    raise RunLockedError(f"{path} is in use by a live run ({holder}); wait for it to end, or "
                         f"use another --workdir.") from None
  previous = os.read(fd, 4096).decode(errors="replace").strip()
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, (f"pid {os.getpid()} on host {socket.gethostname()}, started "
                f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}").encode())
  os.fsync(fd)
  try:
    yield previous  # what a dead holder left, if anything
  finally:
    os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def write_json(path: str, value) -> None:
  """Writes JSON to ``path`` atomically: a temporary file in the same folder, then a rename."""
  write_text(path, json.dumps(value, indent=1))


def write_text(path: str, text: str) -> None:
  """Replaces ``path`` atomically with ``text`` (readers see the old or the new file)."""
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
  try:
    # mkstemp creates the file 0600; the result should be as readable as any other file
    # the process writes (collaborators on a shared cluster read results).
    os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


class Interrupted(Exception):
  """A run stopped by SIGTERM or SIGINT, after saving the step it had reached.

  Attributes:
    signum: the signal.
    step: the global step saved (the run resumes there).
    total: the run's last step.
    evaluating: whether training was complete and the evaluation was stopped.
  """

  def __init__(self, signum: int, step: int, total: int, evaluating: bool = False):
    self.signum, self.step, self.total, self.evaluating = signum, step, total, evaluating
    name = signal.Signals(signum).name
    super().__init__(
        f"stopped by {name} during the evaluation; training is saved to its last step, {step}"
        if evaluating else f"stopped by {name}: saved a checkpoint of step {step} of {total}")

  @property
  def exit_status(self) -> int:
    """128 + the signal number, as a shell reports a process that signal killed."""
    return 128 + self.signum


class StopRequest:
  """What `stop_signals` yields: the first signal received, read between training steps."""

  def __init__(self):
    self.signum: int | None = None
    self._saved = None  # (step, total) once everything trained is on disk
    self._previous = {}

  def check(self, step: int, total: int) -> None:
    """Raises `Interrupted` if a signal came, once ``step`` is saved."""
    if self.signum is not None:
      raise Interrupted(self.signum, step, total)

  def training_saved(self, step: int, total: int) -> None:
    """From now on nothing is left to save: a signal stops at once, naming ``step``."""
    self._saved = (step, total)
    if self.signum is not None:
      raise Interrupted(self.signum, step, total, evaluating=True)

  def _handle(self, signum, frame):
    if self.signum is not None:  # the second signal: what would have happened without us
      previous = self._previous.get(signum, signal.SIG_DFL)
      signal.signal(signum, previous)
      if callable(previous):
        previous(signum, frame)
      elif previous == signal.SIG_DFL:
        os.kill(os.getpid(), signum)
      return
    self.signum = signum
    if self._saved is not None:
      raise Interrupted(signum, *self._saved, evaluating=True)


@contextlib.contextmanager
def stop_signals():
  """SIGTERM and SIGINT set a flag for the duration instead of stopping the process.

  Outside the main thread (where Python cannot install handlers) the request is inert and
  signals keep their usual effect.

  Yields:
    A `StopRequest`.
  """
  stop = StopRequest()
  if threading.current_thread() is not threading.main_thread():
    yield stop
    return
  for signum in STOP_SIGNALS:
    stop._previous[signum] = signal.signal(signum, stop._handle)  # pylint: disable=protected-access
  try:
    yield stop
  finally:
    for signum, previous in stop._previous.items():  # pylint: disable=protected-access
      signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
