r"""Command-line entry point: train and score one configuration.

Synopsis::

  python -m gsgen.main \
    --config=benchmark:dataset=dsprites,split=extrapolation,model=cnn,preset=cpu \
    --workdir=workdirs/dsprites_extrapolation_cnn_0 --config.train.steps=500

``--config`` takes a packaged config by its short name (`gsgen.configs`) or the path of any
config file, each optionally followed by ``:`` and its argument; ``--help`` lists every
config field. Rerunning with the same workdir resumes. All absl flags of gsgen are defined here.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

import jax

from gsgen import configs
from gsgen import report
from gsgen import train
from gsgen import workdir as workdir_lib
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
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
  except USER_ERRORS as e:
    if logging.get_verbosity() > logging.WARNING:
      raise
    print(f"error: {e}", file=sys.stderr)
    print("(--verbosity=0 shows the traceback)", file=sys.stderr)
    sys.exit(1)
  if results is None:
    print(f"stopped at step {_STOP_AFTER.value}; rerun with the same --workdir to continue.")
  elif jax.process_index() == 0:
    for one in results.get("per_seed", {"": results}).values():
      print(report.format_table(one))
    print(f"results: {_WORKDIR.value}/results.json")


def run():
  """The console entry: resolves short config names, then runs `main` under absl."""
  sys.argv = resolve_config_flag(sys.argv)
  app.run(main)


if __name__ == "__main__":
  run()
