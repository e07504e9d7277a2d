"""Rendering and reading in any process, forked DataLoader workers included.

Synopsis::

  from gsgen.datasets import fork_safe
  rows = fork_safe.call(read_rows, folder, part, indices)  # any module-level function

Contract: in a process forked after JAX or array_record started, `call` runs the function in a
helper process of its own (fork+exec) and returns its numpy result; elsewhere it calls the
function in place. Why a fork needs this: docs/datasets.md, "Forked workers".
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading

_forked = False
_helper = None
_lock = threading.Lock()


def _after_fork_in_child():
  global _forked, _helper
  _forked, _helper = True, None  # a parent's helper belongs to the parent


os.register_at_fork(after_in_child=_after_fork_in_child)


def forked() -> bool:
  """Whether this process was forked (its inherited JAX and reader state is unusable)."""
  return _forked


def call(fn, *args):
  """``fn(*args)``, in a fresh helper process when this one was forked.

  Args:
    fn: a module-level function (it is pickled by name).
    *args: picklable arguments.

  Returns:
    What ``fn`` returns; an exception it raises is raised here.
  """
  if not _forked:
    return fn(*args)
  with _lock:
    helper = _start_helper()
    pickle.dump((fn, args), helper.stdin, protocol=5)
    helper.stdin.flush()
    try:
      ok, value = pickle.load(helper.stdout)
    except EOFError:
      raise RuntimeError(f"the helper process of process {os.getpid()} ended (exit "
                         f"{helper.wait()}); its error is on stderr above.") from None
  if not ok:
    raise value
  return value


def _start_helper() -> subprocess.Popen:
  global _helper
  if _helper is None or _helper.poll() is not None:
    # The helper must import this very gsgen, wherever it was imported from.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    _helper = subprocess.Popen([sys.executable, "-m", "gsgen.datasets.fork_safe"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
  return _helper


def _serve() -> None:
  """The helper: run each request from stdin, answer ``(ok, result or error)`` on stdout."""
  answers = os.fdopen(os.dup(1), "wb")
  os.dup2(2, 1)  # anything printed by a library goes to stderr, not into the answers
  requests = sys.stdin.buffer
  while True:
    try:
      fn, args = pickle.load(requests)
    except EOFError:
      return
    try:
      answer = (True, fn(*args))
    except Exception as e:  # pylint: disable=broad-except
      answer = (False, e)  # raised in the asking process, as if called there
    pickle.dump(answer, answers, protocol=5)
    answers.flush()


if __name__ == "__main__":
  _serve()
