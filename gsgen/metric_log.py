"""The metric log of a run: ``metrics.jsonl`` (one JSON line per logged step) and TensorBoard.

Synopsis::

  from gsgen import metric_log
  log = metric_log.MetricLog(workdir, start_step=0)
  log.write({"step": 100, "stage": "train", "loss": 0.02})
  log.last["loss"]
  log.close()

A resumed run keeps the lines up to its checkpoint and drops those a killed process wrote
after it, so the log of a resumed run reads as that of an uninterrupted one.
"""

from __future__ import annotations

import json
import os

import jax


class MetricLog:
  """``metrics.jsonl`` plus TensorBoard events; only the first process writes."""

  def __init__(self, workdir: str, start_step: int):
    """Args:
      workdir: the run's folder.
      start_step: the step the run resumes from; later lines are dropped.
    """
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.rows = read(self.path, max_step=start_step) if os.path.exists(self.path) else []
    self._primary = jax.process_index() == 0
    if not self._primary:
      return
    with open(self.path, "w") as f:
      f.writelines(json.dumps(row) + "\n" for row in self.rows)
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

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
    prefix = row.get("stage", "train")
    for key, value in row.items():
      if key not in ("step", "stage"):
        self._tb.add_scalar(f"{prefix}/{key}", value, row["step"])

  def close(self) -> None:
    if self._primary:
      self._tb.close()


def read(path: str, max_step: int | None = None) -> list[dict]:
  """The rows of a ``metrics.jsonl`` up to ``max_step``."""
  with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  return [r for r in rows if max_step is None or r["step"] <= max_step]
