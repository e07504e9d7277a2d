"""Progress bars that suit where their output goes.

Synopsis::

  from gsgen import progress
  for batch in progress.bar(range(100), desc="evaluate", unit="batch"):
    ...

On a terminal a bar redraws in place, so it may update often. Elsewhere (a log file, a
scheduler's output, a notebook capturing stderr) every update is a new line, so the bar
updates at most once every `QUIET_INTERVAL_SECONDS`.
"""

from __future__ import annotations

import sys

import tqdm

QUIET_INTERVAL_SECONDS = 60.0


def bar(iterable=None, **kwargs) -> tqdm.tqdm:
  """``tqdm.tqdm(iterable, **kwargs)``, throttled when stderr is not a terminal.

  Args:
    iterable: what to iterate over (None for a bar updated by hand).
    **kwargs: tqdm's options.

  Returns:
    The bar.
  """
  if not _is_terminal(sys.stderr):
    kwargs.setdefault("mininterval", QUIET_INTERVAL_SECONDS)
    kwargs.setdefault("maxinterval", QUIET_INTERVAL_SECONDS * 10)
  return tqdm.tqdm(iterable, **kwargs)


def _is_terminal(stream) -> bool:
  try:
    return stream.isatty()
  except (AttributeError, ValueError):  # replaced or closed streams
    return False
