"""XLA's CPU options for gsgen's programs, set by the process that trains, scores or times.

Synopsis::

  from gsgen import xla
  xla.configure()       # first, before the process's first JAX computation

Contract: `configure` adds gsgen's CPU default to ``XLA_FLAGS`` unless the user chose that
option, and only where jaxlib knows it; called after JAX started its backend it changes
nothing and says so. Importing gsgen never edits the environment: the command lines, the
benchmarks, the tests and the notebook call `configure` where they start. Which option and
why: README, "Performance".
"""

from __future__ import annotations

import logging
import os

OPTION = "xla_cpu_experimental_ynn_fusion_type"
DEFAULT = f"--{OPTION}=-individual_convolution"


def default_flags(flags: str, jaxlib_version: str) -> str:
  """``flags`` with gsgen's CPU default added where the user set nothing about it.

  Args:
    flags: the ``XLA_FLAGS`` string.
    jaxlib_version: e.g. ``"0.10.2"``; XLA aborts on flags it does not know, and this one is
      known from jaxlib 0.10 on.

  Returns:
    The flags to run with.
  """
  if OPTION in flags:
    return flags
  try:
    major, minor = (int(p) for p in jaxlib_version.split(".")[:2])
  except ValueError:
    return flags
  if (major, minor) < (0, 10):
    return flags
  return (flags + " " + DEFAULT).strip()


def _backend_started() -> bool:
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  started = getattr(xla_bridge, "backends_are_initialized", None)
  return bool(started and started())


def configure() -> str:
  """Sets ``XLA_FLAGS`` to `default_flags` of its value, before JAX starts its backend.

  Returns:
    The flags in the environment afterwards.
  """
  try:
    from jaxlib import version  # pylint: disable=g-import-not-at-top
  except ImportError:
    return os.environ.get("XLA_FLAGS", "")
  current = os.environ.get("XLA_FLAGS", "")
  wanted = default_flags(current, version.__version__)
  if wanted != current:
    if _backend_started():
      logging.warning("gsgen.xla.configure() came after JAX started its backend; %s has no "
                      "effect in this process (call it first).", DEFAULT)
    os.environ["XLA_FLAGS"] = wanted
  return wanted
