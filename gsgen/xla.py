"""XLA's CPU options for gsgen's programs, set by the process that trains, scores or times.

Synopsis::

  from gsgen import xla
  xla.restart_with_huge_pages()  # a command's first line: may restart the process once
  xla.configure()       # first, before the process's first JAX computation

Contract: `configure` adds gsgen's CPU default to ``XLA_FLAGS`` unless the user chose that
option, and only where jaxlib knows it; called after JAX started its backend it changes
nothing and says so. `restart_with_huge_pages` runs the same command again, once, with
glibc's transparent-huge-page tunable for malloc (`huge_page_tunables`) where glibc and the
kernel support it and ``GLIBC_TUNABLES`` says nothing about it; glibc reads tunables only when
a process starts. Importing gsgen never edits the environment: the command lines and the
benchmarks call both where they start, the tests and the notebook `configure`. Which
settings and why: README, "Performance".
"""

from __future__ import annotations

import logging
import os
import platform
import sys

OPTION = "xla_cpu_experimental_ynn_fusion_type"
DEFAULT = f"--{OPTION}=-individual_convolution"

# XLA's CPU client allocates each execution's buffer of intermediate values (76 MB for a
# beta-VAE step at batch 64) with malloc on a worker thread and frees it at the end. glibc
# maps a block that size afresh every time (a worker thread's arena cannot hold it), so each
# step paid about 18,600 page faults and a quarter of its CPU time in the kernel; in
# transparent huge pages the same buffer takes a few hundred faults and fewer TLB misses.
TUNABLE = "glibc.malloc.hugetlb"
HUGE_PAGES = f"{TUNABLE}=1"
THP_MODES = "/sys/kernel/mm/transparent_hugepage/enabled"


def default_flags(flags: str, jaxlib_version: str) -> str:
  """``flags`` with gsgen's CPU default added where the user set nothing about it.

  Args:
    flags: the ``XLA_FLAGS`` string.
    jaxlib_version: e.g. ``"0.10.2"``; XLA aborts on flags it does not know, and this one is
      known from jaxlib 0.10 on.

  Returns:
    The flags to run with.
  """
  version = _major_minor(jaxlib_version)
  if OPTION in flags or version is None or version < (0, 10):
    return flags
  return (flags + " " + DEFAULT).strip()


def _major_minor(version: str) -> tuple[int, int] | None:
  """``(2, 36)`` of ``"2.36"`` or ``"2.36.1"``; None where the version does not start with
  two numbers (``"dev"``, ``""``)."""
  try:
    major, minor = (int(p) for p in version.split(".")[:2])
  except ValueError:
    return None
  return major, minor


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


def huge_page_tunables(tunables: str, libc: tuple[str, str], thp_mode: str) -> str | None:
  """``GLIBC_TUNABLES`` with malloc in transparent huge pages, or None where that changes
  nothing.

  Args:
    tunables: the current ``GLIBC_TUNABLES`` (``name=value`` pairs joined by ``:``).
    libc: ``platform.libc_ver()``, e.g. ``("glibc", "2.36")``; glibc knows the tunable from
      2.35 on.
    thp_mode: the kernel's transparent-huge-page mode (`thp_mode`): huge pages on request
      need ``always`` or ``madvise``.

  Returns:
    ``tunables`` with ``glibc.malloc.hugetlb=1`` added; None if the tunables already name it
    (the user's choice, or this process was restarted with it), for another C library or an
    older glibc, or if the kernel gives no huge pages.
  """
  name, version = libc[0], _major_minor(libc[1])
  if (TUNABLE in tunables or thp_mode not in ("always", "madvise") or name != "glibc"
      or version is None or version < (2, 35)):
    return None
  return f"{tunables}:{HUGE_PAGES}" if tunables else HUGE_PAGES


def thp_mode(path: str = THP_MODES) -> str:
  """The kernel's transparent-huge-page mode (the bracketed word of ``path``), or "" where
  the file is absent (not Linux) or unreadable."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return ""
  start, end = text.find("["), text.find("]")
  return text[start + 1:end] if 0 <= start < end else ""


def restart_with_huge_pages() -> None:
  """Runs this command again (``os.execv``, the same interpreter and arguments) with
  `huge_page_tunables` in ``GLIBC_TUNABLES``, where they change something; otherwise returns.

  A command's first line, before it does anything: the restarted process starts from the
  top and returns here. Nothing happens under a debugger or tracer (restarting would detach
  it), nor for code read from standard input or typed in (it cannot be read again), and a
  command that cannot restart goes on as it is, saying so. To run without:
  ``GLIBC_TUNABLES=glibc.malloc.hugetlb=0``.
  """
  wanted = huge_page_tunables(os.environ.get("GLIBC_TUNABLES", ""), platform.libc_ver(),
                              thp_mode())
  if (wanted is None or sys.gettrace() is not None or not sys.executable
      or sys.flags.interactive or sys.argv[0] in ("", "-")):
    return
  os.environ["GLIBC_TUNABLES"] = wanted
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execv(sys.executable, sys.orig_argv)
  except OSError as e:
    logging.warning("could not restart with %s (%s); XLA's CPU buffers stay in small pages.",
                    wanted, e)
