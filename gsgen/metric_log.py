"""The metric log of a run: ``metrics.jsonl`` (one JSON line per logged step) and TensorBoard.

Synopsis::

  from gsgen import metric_log
  log = metric_log.MetricLog(workdir, start_step=0)
  log.write({"step": 100, "stage": "train", "loss": 0.02})
  log.last["loss"]
  log.close()

A resumed run keeps the lines up to its checkpoint and drops those a killed process wrote
after it (and a last line torn by a full disk or a power loss), so the log of a resumed run
reads as that of an uninterrupted one. Lines are appended and flushed with the TensorBoard
events at every write, so a killed process loses nothing it logged.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import jax

from gsgen import workdir as workdir_lib


class MetricLog:
  """``metrics.jsonl`` plus TensorBoard events; only the first process writes."""

  def __init__(self, workdir: str, start_step: int):
    """Args:
      workdir: the run's folder.
      start_step: the step the run resumes from; later lines are dropped.
    """
    self.path = workdir_lib.metrics_path(workdir)
    self._primary = jax.process_index() == 0
    self.rows, clean = [], True
    if os.path.exists(self.path):
      rows, clean = _read(self.path)
      self.rows = [r for r in rows if r["step"] <= start_step]
      clean = clean and len(self.rows) == len(rows)
    if not self._primary:
      return
    if not clean:  # rewritten whole or not at all
      workdir_lib.write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.rows))
    self._tb = _summary_writer()(os.path.join(workdir, workdir_lib.TENSORBOARD), flush_secs=10)

  @property
  def last(self) -> dict:
    """The newest row (empty before the first)."""
    return self.rows[-1] if self.rows else {}

  def write(self, row: dict) -> None:
    """Appends one row (``step`` plus scalars; ``stage`` names the stage)."""
    self.rows.append(row)
    if not self._primary:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
      f.flush()
      os.fsync(f.fileno())
    prefix = row.get("stage", "train")
    for key, value in row.items():
      if key not in ("step", "stage"):
        self._tb.add_scalar(f"{prefix}/{key}", value, row["step"])
    self._tb.flush()

  def scalars(self, prefix: str, values: dict, step: int) -> None:
    """Writes numbers to TensorBoard only (the final test scores, say)."""
    if not self._primary:
      return
    for key, value in values.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        self._tb.add_scalar(f"{prefix}/{key}", value, step)
    self._tb.flush()

  def close(self) -> None:
    if self._primary:
      self._tb.close()


def read(path: str, max_step: int | None = None) -> list[dict]:
  """The rows of a ``metrics.jsonl`` up to ``max_step``; a torn last line is dropped.

  Raises:
    ValueError: a line before the last is not JSON (the file is damaged, not torn).
  """
  rows, _ = _read(path)
  return [r for r in rows if max_step is None or r["step"] <= max_step]


def _read(path: str) -> tuple[list[dict], bool]:
  """``(rows, clean)``: clean is False when a torn last line was dropped."""
  with open(path) as f:
    text = f.read()
  lines = text.splitlines()
  rows, clean = [], text.endswith("\n") or not text
  for k, line in enumerate(lines):
    if not line.strip():
      clean = False
      continue
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError as e:
      if k + 1 < len(lines):
        raise ValueError(f"{path}: line {k + 1} is not JSON ({e}); the log is damaged. Move "
                         f"it away to continue the run without its history.") from None
      logging.warning("%s: dropped a torn last line (%d bytes), as a killed process or a "
                      "full disk leaves it; the run resumes from its checkpoint.", path,
                      len(line))
      clean = False
  return rows, clean


def _summary_writer():
  """tensorboardX's SummaryWriter, imported without PyTorch.

  tensorboardX imports torch whenever it is installed (for tensors we never pass), which
  adds seconds to the start of every run where the benchmark extra is installed. Unless
  torch is already loaded, it is hidden for the duration of the import.
  """
  if "tensorboardX" in sys.modules or "torch" in sys.modules:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    return SummaryWriter
  sys.modules["torch"] = None  # `import torch` raises ImportError
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  finally:
    del sys.modules["torch"]
  return SummaryWriter
