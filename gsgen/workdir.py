"""A run's folder: one live run at a time, its config on record, files replaced atomically.

Synopsis::

  from gsgen import workdir as workdir_lib
  with workdir_lib.lock(path):                        # refuses a second live run
    changes = workdir_lib.check_config(path, config, accept_changes=False)
    workdir_lib.write_json(os.path.join(path, "results.json"), results)

The lock is an advisory ``flock`` on ``run.lock``: the kernel drops it when its process dies,
however it dies, so a killed run never blocks the next one, while a live one (on this machine,
or on another one sharing the folder) is named in the refusal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import time

import ml_collections

# Fields whose change does not alter what is trained: logging, progress bars, where
# prepared data lives, and how the final scores are computed.
NOT_TRAINING = ("progress", "eval.", "train.log_every", "train.checkpoint_every",
                "data.data_dir")
CONFIG_FILE = "config.json"
CHANGES_FILE = "config_changes.json"


class RunLockedError(RuntimeError):
  """Another live process holds the workdir."""


class ConfigChangedError(ValueError):
  """A resumed run's config differs from the one it was started with."""


@contextlib.contextmanager
def lock(path: str):
  """Holds ``path/run.lock`` for the duration; refuses if a live process holds it.

  Raises:
    RunLockedError: naming the holder's pid, host and start time.
  """
  os.makedirs(path, exist_ok=True)
  lock_path = os.path.join(path, "run.lock")
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
    with os.fdopen(fd, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def flatten(config: dict, prefix: str = "") -> dict:
  """``{"optim": {"name": "adam"}}`` -> ``{"optim.name": "adam"}`` (lists for tuples)."""
  out = {}
  for key, value in config.items():
    if isinstance(value, dict):
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
  return out


def training_differences(saved: dict, new: dict) -> dict[str, tuple]:
  """The fields that change what is trained, with their ``(saved, new)`` values."""
  a, b = flatten(saved), flatten(new)
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
          if a.get(k) != b.get(k) and not k.startswith(NOT_TRAINING)}


def check_config(path: str, config: ml_collections.ConfigDict, step: int,
                 accept_changes: bool = False) -> list[dict]:
  """Compares ``config`` with the one the run in ``path`` was started with.

  Args:
    path: the workdir.
    config: the config of this process.
    step: the step the run resumes from (0: nothing trained yet, any config is fine).
    accept_changes: accept training fields that differ (a lower learning rate after a
      divergence, more steps) and record them.

  Returns:
    Every accepted change so far (``config_changes.json``): dicts with ``step``, ``time``
    and ``fields`` (``{name: [old, new]}``).

  Raises:
    ConfigChangedError: a training field differs and ``accept_changes`` is False.
  """
  changes_path = os.path.join(path, CHANGES_FILE)
  history = []
  if os.path.isfile(changes_path):
    with open(changes_path) as f:
      history = json.load(f)
  config_path = os.path.join(path, CONFIG_FILE)
  new = config.to_dict()
  if step and os.path.isfile(config_path):
    with open(config_path) as f:
      saved = json.load(f)
    diff = training_differences(saved, json.loads(json.dumps(new)))
    if diff and not accept_changes:
      shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in
                        ((k, *v) for k, v in diff.items()))
      raise ConfigChangedError(
          f"{path} holds a run trained to step {step} with another config ({shown}). Rerun "
          f"with the saved config, use another --workdir, or pass --accept_config_changes to "
          f"continue this run with the new values (recorded in its results).")
    if diff:
      history.append({"step": step, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "fields": {k: list(v) for k, v in diff.items()}})
      write_json(changes_path, history)
  write_json(config_path, new)
  return history
