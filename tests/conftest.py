"""Test setup: 8 fake CPU devices, so data-parallel code runs sharded in every test.

The flag must be set before JAX initialises its backend, hence here rather than in a test.
"""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
