"""gsgen's XLA CPU option: set where a process starts, never by importing the package."""

import os
import subprocess
import sys

import pytest

from gsgen import xla

DEFAULT = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


@pytest.mark.parametrize("flags,version,expected", [
    ("", "0.10.2", DEFAULT),
    ("--xla_force_host_platform_device_count=8", "0.10.0",
     "--xla_force_host_platform_device_count=8 " + DEFAULT),
    # The user's own choice stays.
    ("--xla_cpu_experimental_ynn_fusion_type=+individual_convolution", "0.10.2",
     "--xla_cpu_experimental_ynn_fusion_type=+individual_convolution"),
    # Older XLA does not know the flag and would abort on it.
    ("", "0.9.1", ""),
    ("", "dev", ""),
])
def test_default_xla_flags(flags, version, expected):
  assert xla.default_flags(flags, version) == expected


def _python(code: str, flags: str | None = None) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  if flags is not None:
    env["XLA_FLAGS"] = flags
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc


def test_importing_gsgen_leaves_the_environment_alone():
  code = ("import os; import gsgen, gsgen.train, gsgen.models, gsgen.study; "
          "print(repr(os.environ.get('XLA_FLAGS')))")
  assert _python(code).stdout.strip() == "None"
  assert _python(code, "--xla_cpu_use_onednn=false").stdout.strip() == (
      "'--xla_cpu_use_onednn=false'")


def test_configure_adds_the_default_and_keeps_the_users_choice():
  code = "from gsgen import xla; print(xla.configure())"
  assert _python(code).stdout.strip() == DEFAULT
  assert _python(code, "--xla_force_host_platform_device_count=2").stdout.strip() == (
      "--xla_force_host_platform_device_count=2 " + DEFAULT)
  mine = "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"
  assert _python(code, mine).stdout.strip() == mine


def test_configure_after_the_backend_started_says_it_has_no_effect():
  code = "import jax; jax.devices(); from gsgen import xla; xla.configure()"
  assert "has no effect in this process" in _python(code).stderr
  quiet = "from gsgen import xla; xla.configure(); import jax; jax.devices()"
  assert "has no effect" not in _python(quiet).stderr


_SHOW = "lambda *a, **k: print(os.environ.get('XLA_FLAGS')) or {'files': []}"


@pytest.mark.parametrize("code", [
    # python -m gsgen.main: the flags are set before absl runs `main`.
    f"import os; from gsgen import main as m; m.app.run = {_SHOW}; m.run()",
    # python -m gsgen.study report: the report scores runs in this process.
    f"import os; from gsgen.study import __main__ as m; m.report.write_all = {_SHOW}; "
    "m.main(['report', '--workdir=unused', '--no_figures'])",
])
def test_the_command_lines_configure_before_they_run(code):
  assert DEFAULT in _python(code).stdout
