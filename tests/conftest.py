"""Test setup: 8 fake CPU devices, and a compilation cache shared by every test process.

Both must be set before JAX initialises its backend, hence here rather than in a test; so
must gsgen's XLA CPU option (`gsgen.xla.configure`), which the command lines set too. The
environment variables reach the runs that tests start as subprocesses too.

Many tests compile the same programs (the smoke preset's training step, the evaluator's
forward pass) in separate processes; JAX's persistent cache lets every process after the
first load them instead of compiling again. The cache is keyed by the program, the compiler
options and the JAX version, so a stale entry is never used. `GSGEN_TEST_JAX_CACHE=''`
turns it off.
"""

import os
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
from gsgen import xla  # pylint: disable=wrong-import-position

xla.configure()  # as the command lines do: tests run with gsgen's XLA CPU option

_cache = os.environ.get("GSGEN_TEST_JAX_CACHE",
                        os.path.join(tempfile.gettempdir(), f"gsgen-test-jax-cache-{os.getuid()}"))
if _cache:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
