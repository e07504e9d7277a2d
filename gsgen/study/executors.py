"""Where a study's cells run: worker processes on this machine, or tasks on a Ray cluster.

Synopsis::

  from gsgen.study import executors
  submit = executors.Local(jobs=2, env={})        # or executors.Ray("auto", 0.25, env={})
  handle = submit(argv, "workdirs/study/CELL/log.txt")
  submit.wait([handle], timeout=0.5)              # {handle: exit status} of those that ended
  submit.signal(handle, signal.SIGTERM); submit.kill(handle)

Contract: each attempt is one process in its own session, its output appended to the cell's
log; only the runner passes signals on to it (`gsgen.study.runner`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Callable


def attempt(argv: list[str], log_path: str, env: dict | None = None,
            started: Callable[[subprocess.Popen], None] | None = None) -> int:
  """Runs one attempt of a cell, appending its output to the cell's log; the exit code.

  The cell runs in its own session, so only the runner passes signals on to it. A
  KeyboardInterrupt here (Ray cancelling the task) is passed on as SIGTERM, and the cell's
  exit awaited.

  Args:
    argv, log_path, env: the command, its log file and extra environment variables.
    started: called with the process once it runs (the runner signals it from there).
  """
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  with open(log_path, "a") as log:
    log.write(f"\n$ {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    if started is not None:
      started(proc)
    try:
      while True:  # short waits: Ray delivers its cancellation between Python instructions
        try:
          return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
          pass
    except KeyboardInterrupt:
      proc.send_signal(signal.SIGTERM)
      return proc.wait()


class Local:
  """Worker processes on this machine: one thread waits on each cell's process."""

  def __init__(self, jobs: int, env: dict):
    import concurrent.futures  # pylint: disable=g-import-not-at-top
    self._pool = concurrent.futures.ThreadPoolExecutor(max(jobs, 1))
    self._jobs, self._env = max(jobs, 1), env
    self._procs, self._lock = {}, threading.Lock()

  def has_room(self, running: int) -> bool:
    return running < self._jobs

  def __call__(self, argv, log_path):
    box = {}
    started = threading.Event()

    def remember(proc):
      with self._lock:
        box["proc"] = proc
      started.set()

    future = self._pool.submit(attempt, argv, log_path, self._env, remember)
    with self._lock:
      self._procs[future] = (box, started)
    return future

  def _proc(self, handle):
    box, started = self._procs[handle]
    started.wait(5)  # submitted a moment ago: its process is about to start
    return box.get("proc")

  def signal(self, handle, signum) -> None:
    proc = self._proc(handle)
    if proc is not None and proc.poll() is None:
      proc.send_signal(signum)

  def kill(self, handle) -> None:
    proc = self._proc(handle)
    if proc is not None and proc.poll() is None:
      proc.kill()
      proc.wait()

  def wait(self, handles, timeout=None) -> dict:
    import concurrent.futures  # pylint: disable=g-import-not-at-top
    done, _ = concurrent.futures.wait(handles, timeout=timeout,
                                      return_when=concurrent.futures.FIRST_COMPLETED)
    return {h: h.result() for h in done}


class Ray:
  """Cells as Ray tasks; Ray places them by their CPU and (fractional) GPU shares."""

  def __init__(self, address, gpus_per_cell, env):
    try:
      import ray  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ImportError("the ray executor needs Ray: pip install -e '.[ray]'") from None
    self._ray = ray
    if not ray.is_initialized():
      ray.init(address=address, include_dashboard=False, log_to_driver=False)
    self._task = ray.remote(num_cpus=1, num_gpus=gpus_per_cell, max_retries=0)(attempt)
    self._env = env

  def has_room(self, running: int) -> bool:
    del running
    return True  # Ray queues tasks until resources free up

  def __call__(self, argv, log_path):
    return self._task.remote(argv, log_path, self._env)

  def signal(self, handle, signum) -> None:
    """Ray can only cancel: `attempt` turns that into SIGTERM to its cell."""
    del signum
    self._ray.cancel(handle, force=False)

  def kill(self, handle) -> None:
    self._ray.cancel(handle, force=True)

  def wait(self, handles, timeout=None) -> dict:
    ready, _ = self._ray.wait(list(handles), num_returns=1, timeout=timeout)
    return {h: self._result(h) for h in ready}

  def _result(self, handle) -> int:
    try:
      return self._ray.get(handle)
    except self._ray.exceptions.TaskCancelledError:
      return 128 + signal.SIGTERM  # the cell was told to stop and saved its step
