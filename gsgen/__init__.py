"""gsgen: does visual representation learning generalise within its domain? (Schott et al.)

Importing the package chooses one XLA CPU option when the user has not: convolutions stay
with XLA's own kernels rather than YNNPACK's, whose kernel-gradient convolutions are several
times slower for the benchmark's CNN (README, Performance). Set
``--xla_cpu_experimental_ynn_fusion_type`` in ``XLA_FLAGS`` yourself to decide otherwise.

Synopsis::

  import gsgen            # before JAX starts its backend, or the option has no effect
  from gsgen import train
"""

import os


def _default_xla_flags(flags: str, jaxlib_version: str) -> str:
  """``XLA_FLAGS`` with gsgen's CPU default added where the user set nothing about it."""
  if "xla_cpu_experimental_ynn_fusion_type" in flags:
    return flags
  try:
    major, minor = (int(p) for p in jaxlib_version.split(".")[:2])
  except ValueError:
    return flags
  # XLA aborts on flags it does not know; this one is known from jaxlib 0.10 on.
  if (major, minor) < (0, 10):
    return flags
  return (flags + " --xla_cpu_experimental_ynn_fusion_type=-individual_convolution").strip()


def _set_xla_flags() -> None:
  try:
    from jaxlib import version  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  os.environ["XLA_FLAGS"] = _default_xla_flags(os.environ.get("XLA_FLAGS", ""),
                                               version.__version__)


_set_xla_flags()
