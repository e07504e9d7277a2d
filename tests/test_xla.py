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


@pytest.mark.parametrize("tunables,libc,mode,expected", [
    ("", ("glibc", "2.36"), "madvise", "glibc.malloc.hugetlb=1"),
    ("", ("glibc", "2.35"), "always", "glibc.malloc.hugetlb=1"),
    # Other tunables stay, joined as glibc reads them.
    ("glibc.malloc.arena_max=2", ("glibc", "2.39"), "madvise",
     "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
    # The user's choice, or a process already restarted with it.
    ("glibc.malloc.hugetlb=0", ("glibc", "2.36"), "madvise", None),
    ("glibc.malloc.hugetlb=1", ("glibc", "2.36"), "madvise", None),
    # No huge pages to ask for, a glibc that does not know the tunable, another C library.
    ("", ("glibc", "2.36"), "never", None),
    ("", ("glibc", "2.36"), "", None),
    ("", ("glibc", "2.34"), "madvise", None),
    ("", ("", ""), "madvise", None),
])
def test_huge_page_tunables(tunables, libc, mode, expected):
  assert xla.huge_page_tunables(tunables, libc, mode) == expected


def test_thp_mode_reads_the_bracketed_word(tmp_path):
  path = tmp_path / "enabled"
  path.write_text("always [madvise] never\n")
  assert xla.thp_mode(str(path)) == "madvise"
  path.write_text("[always] madvise never\n")
  assert xla.thp_mode(str(path)) == "always"
  assert xla.thp_mode(str(tmp_path / "absent")) == ""


def _restarts_here() -> bool:
  import platform  # pylint: disable=g-import-not-at-top
  return xla.huge_page_tunables("", platform.libc_ver(), xla.thp_mode()) is not None


_RESTART = ("import os, sys; from gsgen import xla; print('start', flush=True); "
            "xla.restart_with_huge_pages(); print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])")


def test_restart_runs_the_command_again_once_with_huge_pages():
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  proc = subprocess.run([sys.executable, "-c", _RESTART, "--flag=1"], capture_output=True,
                        text=True, env=env, check=True)
  if not _restarts_here():
    assert proc.stdout.split("\n")[:2] == ["start", "None ['--flag=1']"]
    pytest.skip("no glibc >= 2.35 with transparent huge pages here: nothing to restart")
  # The command ran from the top twice, the second time with the tunable, and stopped there.
  assert proc.stdout.split("\n")[:3] == ["start", "start", "glibc.malloc.hugetlb=1 ['--flag=1']"]
  # The user's own setting is left as it is: no restart.
  env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=0"
  proc = subprocess.run([sys.executable, "-c", _RESTART], capture_output=True, text=True,
                        env=env, check=True)
  assert proc.stdout.split("\n")[:2] == ["start", "glibc.malloc.hugetlb=0 []"]
  # Code read from standard input cannot run again: it goes on as it is.
  del env["GLIBC_TUNABLES"]
  proc = subprocess.run([sys.executable, "-"], input=_RESTART, capture_output=True, text=True,
                        env=env, check=True)
  assert proc.stdout.split("\n")[:2] == ["start", "None []"]


# A program whose buffer of intermediate values is 96 MB, run five times; prints the page
# faults of the last four.
_FAULTS = """
import resource, sys
from gsgen import xla
if sys.argv[1] == "restart":
  xla.restart_with_huge_pages()
import jax, jax.numpy as jnp
f = jax.jit(lambda x: jnp.sum(jnp.tanh(x[:, None] * x[None, :4096]) @ x[:4096]))
x = jnp.linspace(0, 1, 6144)
jax.block_until_ready(f(x))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
  jax.block_until_ready(f(x))
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_huge_pages_spare_xla_the_page_faults_of_its_buffers():
  if not _restarts_here():
    pytest.skip("no glibc >= 2.35 with transparent huge pages here")
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  faults = {}
  for how in ("restart", "small"):
    proc = subprocess.run([sys.executable, "-c", _FAULTS, how], capture_output=True, text=True,
                          env={**env, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
                          if how == "small" else env, check=True)
    faults[how] = int(proc.stdout.split()[-1])
  # 96 MB in 4 KiB pages is 24,576 faults a run; in 2 MiB pages 48.
  assert faults["small"] > 4 * 20_000, faults
  assert faults["restart"] < faults["small"] / 10, faults


_TUNABLES_AT_EXIT = ("import atexit, os, runpy, sys; "
                     "atexit.register(lambda: print('tunables', os.environ.get('GLIBC_TUNABLES')))")


@pytest.mark.parametrize("module,args", [
    ("gsgen.main", ["--helpshort"]),
    ("gsgen.study", ["list", "--study=smoke"]),
])
def test_the_command_lines_restart_with_huge_pages(module, args):
  # python -m MODULE ARGS, reporting GLIBC_TUNABLES as it exits.
  code = (f"{_TUNABLES_AT_EXIT}; sys.argv = ['{module}', *{args!r}]; "
          f"runpy.run_module('{module}', run_name='__main__', alter_sys=True)")
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  wanted = "glibc.malloc.hugetlb=1" if _restarts_here() else "None"
  assert proc.stdout.strip().split("\n")[-1] == f"tunables {wanted}"
