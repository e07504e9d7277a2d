"""Command-line entry point: train and score one configuration.

Synopsis::

  python -m gsgen.main \
    --config=experiments/configs/benchmark.py:dataset=dsprites,split=extrapolation,model=cnn,preset=cpu \
    --workdir=workdirs/dsprites_extrapolation_cnn_0

Fields of the config can be overridden (``--config.train.steps=500``). Rerunning with the
same workdir resumes. All absl flags of gsgen are defined here.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

import jax

from gsgen import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. experiments/configs/benchmark.py:dataset=dsprites.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and results.")
_STOP_AFTER = flags.DEFINE_integer(
    "stop_after_step", None, "Checkpoint and exit at this step (rerun to continue).")
_DISTRIBUTED = flags.DEFINE_bool(
    "jax_distributed", False, "Call jax.distributed.initialize() first (multi-host runs).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax reports every save at INFO
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  logging.info("JAX process %d of %d, devices: %s", jax.process_index(), jax.process_count(),
               jax.devices())
  results = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                     stop_after_step=_STOP_AFTER.value)
  if results is None:
    print(f"stopped at step {_STOP_AFTER.value}; rerun with the same --workdir to continue.")
  elif jax.process_index() == 0:
    print(train.format_table(results))
    print(f"results: {_WORKDIR.value}/results.json")


if __name__ == "__main__":
  app.run(main)
