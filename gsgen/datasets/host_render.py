"""Procedural images in any process, forked DataLoader workers included.

Synopsis::

  from gsgen.datasets import host_render
  images = host_render.render_numpy(spec, factor_indices)   # uint8 [n, 64, 64, C]

JAX is multithreaded: a process forked after JAX started (PyTorch's DataLoader workers on
Linux fork the process that called ``train[0]``) inherits its state but not its threads, and
hangs at its first computation. So a forked process never touches JAX: it sends the factor
indices to a helper process of its own, started by fork+exec (`subprocess`, which a daemonic
worker may start, unlike `multiprocessing`), where JAX starts afresh, and gets numpy images
back over a pipe. Any other process renders in place. The helper ends when its parent does
(its stdin closes).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading

import numpy as np

_forked = False
_helper = None
_lock = threading.Lock()


def _after_fork_in_child():
  global _forked, _helper
  _forked, _helper = True, None  # a parent's helper belongs to the parent


os.register_at_fork(after_in_child=_after_fork_in_child)


def render_numpy(spec, factor_indices: np.ndarray, batch_size: int = 512) -> np.ndarray:
  """`gsgen.datasets.procedural.render_numpy` by factor indices, safe after a fork.

  Args:
    spec: the dataset's `gsgen.specs.DatasetSpec`.
    factor_indices: ``[n, num_factors]`` ints.
    batch_size: images per jitted call.

  Returns:
    uint8 array ``[n, H, W, C]``.
  """
  if not _forked:
    from gsgen.datasets import procedural  # pylint: disable=g-import-not-at-top
    return procedural.render_numpy(spec, factor_indices=factor_indices, batch_size=batch_size)
  with _lock:
    helper = _start_helper()
    pickle.dump((spec, np.asarray(factor_indices), batch_size), helper.stdin, protocol=5)
    helper.stdin.flush()
    try:
      ok, value = pickle.load(helper.stdout)
    except EOFError:
      raise RuntimeError(f"the rendering helper of process {os.getpid()} ended (exit "
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
    _helper = subprocess.Popen([sys.executable, "-m", "gsgen.datasets.host_render"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
  return _helper


def _serve() -> None:
  """The helper: render each request from stdin, answer ``(ok, images or error)`` on stdout."""
  answers = os.fdopen(os.dup(1), "wb")
  os.dup2(2, 1)  # anything printed by a library goes to stderr, not into the answers
  from gsgen.datasets import procedural  # pylint: disable=g-import-not-at-top
  requests = sys.stdin.buffer
  while True:
    try:
      spec, factor_indices, batch_size = pickle.load(requests)
    except EOFError:
      return
    try:
      answer = (True, procedural.render_numpy(spec, factor_indices=factor_indices,
                                              batch_size=batch_size))
    except Exception as e:  # pylint: disable=broad-except
      answer = (False, e)  # raised in the asking process, as if rendered there
    pickle.dump(answer, answers, protocol=5)
    answers.flush()


if __name__ == "__main__":
  _serve()
