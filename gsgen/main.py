r"""Command-line entry point: train and score one configuration.

Synopsis::

  python -m gsgen.main \
    --config=benchmark:dataset=dsprites,split=extrapolation,model=cnn,preset=cpu \
    --workdir=workdirs/dsprites_extrapolation_cnn_0 --config.train.steps=500

``--config`` takes a packaged config by its short name (`gsgen.configs`) or the path of any
config file, each optionally followed by ``:`` and its argument; ``--help`` lists every
config field. Rerunning with the same workdir resumes. All absl flags of gsgen are defined here.

A mistake on the command line (a misspelt field, a value of the wrong type, an unknown preset)
prints one line naming the field and what it could be, and exits 1. SIGTERM or SIGINT saves
the step the run reached, prints one line with the command that resumes it and exits with
128 + the signal number (143 for SIGTERM, which schedulers requeue on; 130 for SIGINT).
"""

import importlib.util
import os
import shlex
import sys

if __name__ == "__main__":
  # python -m gsgen.main: start over with huge pages before the imports below, so that they
  # are read once (`run` does it for the console script).
  from gsgen import xla as _xla
  _xla.restart_with_huge_pages()

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

import jax

from gsgen import configs
from gsgen import results as results_lib
from gsgen import train
from gsgen import workdir as workdir_lib
from gsgen import xla
from gsgen.configs import benchmark

_CONFIG = config_flags.DEFINE_config_file(
    "config", None,
    "Config: a packaged config's short name or a config file, then ':' and its argument, "
    "e.g. benchmark:dataset=mpi3d,split=random,model=cnn,preset=cpu. Argument keys: "
    f"{', '.join(benchmark.DEFAULTS)}; presets: {', '.join(benchmark.PRESETS)}. Fields "
    "(override with --config.<field>=value; defaults of preset=cpu, model=cnn):\n"
    + benchmark.describe(), lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and results.")
_STOP_AFTER = flags.DEFINE_integer(
    "stop_after_step", None, "Checkpoint and exit at this step (rerun to continue).")
_ACCEPT_CHANGES = flags.DEFINE_bool(
    "accept_config_changes", False,
    "Resume a run whose training config changed (e.g. a lower learning rate after a "
    "divergence, or more steps); the changes are recorded in its results.")
_DISTRIBUTED = flags.DEFINE_bool(
    "jax_distributed", False, "Call jax.distributed.initialize() first (multi-host runs).")
flags.mark_flags_as_required(["config", "workdir"])

# Mistakes of the user (a bad field, a missing file, a busy or mismatched workdir, a
# divergence): the message says what to do, a traceback would bury it.
USER_ERRORS = (ValueError, FileNotFoundError, PermissionError, FloatingPointError,
               workdir_lib.RunLockedError)


class CommandLineError(ValueError):
  """A mistake on the command line, in one line that names the fix."""


def resolve_config_flag(argv: list[str]) -> list[str]:
  """Rewrites ``--config=NAME[:arg]`` with a packaged config's short name to its file path."""
  out = []
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      arg = "--config=" + configs.resolve(arg[len("--config="):])
    elif i and argv[i - 1] == "--config":
      arg = configs.resolve(arg)
    out.append(arg)
  return out


def _config_arg(argv: list[str]) -> str | None:
  """The value of ``--config`` in ``argv`` (resolved to a file), or None."""
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg[len("--config="):]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def load_config(arg: str) -> ml_collections.ConfigDict:
  """The config ``FILE[:argument]`` names, as ``--config`` loads it.

  Raises:
    CommandLineError: no such file, or the file refuses its argument (naming why).
  """
  path, _, config_arg = arg.partition(":")
  if not path.endswith(".py") or not os.path.isfile(path):
    raise CommandLineError(f"--config={arg}: no config file {path!r}; use a packaged config "
                           f"({', '.join(configs.NAMES)}) or the path of a .py config file.")
  spec = importlib.util.spec_from_file_location("gsgen_user_config", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # pylint: disable=broad-except
    raise CommandLineError(f"--config={arg}: the config file fails when run: "
                           f"{type(e).__name__}: {e}") from None
  if not callable(getattr(module, "get_config", None)):
    raise CommandLineError(f"--config={arg}: {path} defines no get_config(); a config file "
                           f"returns its ConfigDict from get_config(arg).")
  try:
    return module.get_config(config_arg) if config_arg else module.get_config()
  except ValueError as e:
    raise CommandLineError(f"--config: {e}") from None


def check_overrides(config: ml_collections.ConfigDict, argv: list[str]) -> None:
  """Checks every ``--config.<field>=<value>`` of ``argv`` against ``config``.

  ml_collections would find the same mistakes, as a traceback; this names the field, the
  names it could be and the type it takes (`gsgen.configs.check_override`).

  Raises:
    CommandLineError: an unknown field (at any level), a section given a value, or a value
      that does not parse as the field's type.
  """
  for i, arg in enumerate(argv):
    negated = arg.startswith("--noconfig.")
    if not (arg.startswith("--config.") or negated):
      continue
    name, has_value, value = arg[len("--noconfig." if negated else "--config."):].partition("=")
    if not has_value and not negated and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
      value, has_value = argv[i + 1], True  # absl's "--flag value" form (not for booleans)
    try:
      configs.check_override(config, name, value if has_value else None)
    except ValueError as e:
      text = str(e)  # "--config.x=v: ..." rather than "--config.x: config.x=v: ..."
      raise CommandLineError(f"--{text}" if text.startswith(f"config.{name}")
                             else f"--config.{name}: {text}") from None


HELP_FLAGS = ("--help", "-h", "--helpshort", "--helpfull", "-?", "--helpxml")


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with each mistake as one line on stderr and exit status 1.

  ``--help`` exits 0 (absl exits 1 after printing it).
  """
  wants_help = any(a in HELP_FLAGS for a in argv[1:])
  try:
    argv = resolve_config_flag(argv)
    sys.argv = argv  # config_flags reads the --config.* overrides from sys.argv
    arg = _config_arg(argv)
    if arg is not None and not wants_help:
      check_overrides(load_config(arg), argv)
    return flags.FLAGS(argv)
  except SystemExit as e:
    sys.exit(0 if wants_help else e.code)
  except (flags.Error, CommandLineError, ValueError, KeyError, AttributeError, TypeError) as e:
    _fail(e)


def _fail(error: BaseException):
  """Prints ``error`` as one line (the last line of an embedded traceback) and exits 1."""
  lines = [l.strip() for l in str(error).strip().splitlines() if l.strip()]
  text = lines[-1] if "Traceback" in str(error) else " ".join(lines)
  print(f"error: {text or type(error).__name__}", file=sys.stderr)
  sys.exit(1)


def main(argv):
  if len(argv) > 1:
    _fail(CommandLineError(f"unexpected arguments {' '.join(argv[1:])!r}: flags take the "
                           f"form --name=value (python -m gsgen.main --help lists them)."))
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax reports every save at INFO
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  logging.info("JAX process %d of %d, devices: %s", jax.process_index(), jax.process_count(),
               jax.devices())
  try:
    results = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                       stop_after_step=_STOP_AFTER.value,
                                       accept_config_changes=_ACCEPT_CHANGES.value)
  except workdir_lib.Interrupted as e:
    print(f"{e}; resume with: {_RESUME}", file=sys.stderr, flush=True)
    sys.exit(e.exit_status)
  except USER_ERRORS as e:
    if logging.get_verbosity() > logging.WARNING:
      raise
    print(f"error: {e} (--verbosity=0 shows the traceback)", file=sys.stderr)
    sys.exit(1)
  if results is None:
    print(f"stopped at step {_STOP_AFTER.value}; rerun with the same --workdir to continue.")
  elif jax.process_index() == 0:
    for one in results.get("per_seed", {"": results}).values():
      print(results_lib.format_table(one))
    print(f"results: {workdir_lib.results_path(_WORKDIR.value)}")


# The command as the user typed it: what resumes a stopped run.
_RESUME = shlex.join(["python", "-m", "gsgen.main", *sys.argv[1:]])


def run():
  """The console entry: parses the flags (one line per mistake), then runs `main`."""
  xla.restart_with_huge_pages()
  xla.configure()
  try:
    app.run(main, flags_parser=parse_flags)
  except KeyboardInterrupt:
    # Ctrl-C before training began, or a second one while it saved: nothing new is saved.
    print(f"stopped by SIGINT; rerun to resume from the last checkpoint: {_RESUME}",
          file=sys.stderr)
    sys.exit(130)


if __name__ == "__main__":
  run()
