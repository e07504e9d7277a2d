r"""The benchmark's training config: one dataset x split x model x seed x data source.

Launch (the README's quick start)::

  python -m gsgen.main \
    --config=experiments/configs/benchmark.py:dataset=dsprites,split=extrapolation,model=cnn,preset=cpu \
    --workdir=workdirs/dsprites_extrapolation_cnn_0

The argument after the colon is ``key=value`` pairs: ``dataset`` (dsprites, shapes3d,
mpi3d), ``split`` (random, composition, interpolation, extrapolation), ``model`` (see
`gsgen.models.MODELS`), ``seed``, ``source`` (procedural, or a prepared source such as
official; see `gsgen.datasets.builders.sources`) and ``preset``:

  cpu    finishes in minutes on a 2-core CPU: Adam 1e-3, batch 64, 3,000 steps, test R²
         on a seeded subset of 20,000 test points.
  paper  the full budget: Adam 1e-4, batch 64 (as the study), 300,000 steps, the whole
         test split.
  smoke  a few steps on a reduced grid, for tests.

Any field can be overridden on the command line, e.g. ``--config.train.steps=500``.
"""

import ml_collections

# Reduced grids of the smoke preset: a few hundred points, yet every split keeps train and
# test points (composition needs one factor large enough for a low band).
SMOKE_GRIDS = {"dsprites": (2, 2, 9, 9, 2), "shapes3d": (10, 2, 2, 2, 2, 2),
               "mpi3d": (2, 2, 2, 2, 2, 7, 2)}

DEFAULTS = {"dataset": "dsprites", "split": "extrapolation", "model": "cnn", "seed": "0",
            "source": "procedural", "preset": "cpu"}

PRESETS = {
    "cpu": dict(steps=3000, learning_rate=1e-3, log_every=100, checkpoint_every=1000,
                eval_batch_size=512, max_examples=20_000),
    "paper": dict(steps=300_000, learning_rate=1e-4, log_every=1000, checkpoint_every=10_000,
                  eval_batch_size=1024, max_examples=0),
    "smoke": dict(steps=4, learning_rate=1e-3, log_every=2, checkpoint_every=2,
                  eval_batch_size=64, max_examples=0),
}


def parse(arg: str | None) -> dict[str, str]:
  """``'dataset=mpi3d,seed=2'`` -> the defaults updated with those pairs."""
  values = dict(DEFAULTS)
  for pair in filter(None, (arg or "").split(",")):
    key, sep, value = pair.partition("=")
    if not sep or key not in DEFAULTS:
      raise ValueError(f"bad config argument {pair!r}: expected key=value with key one of "
                       f"{', '.join(DEFAULTS)}.")
    values[key] = value
  if values["preset"] not in PRESETS:
    raise ValueError(f"unknown preset {values['preset']!r}; choose one of "
                     f"{', '.join(PRESETS)}.")
  return values


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  values = parse(arg)
  preset = PRESETS[values["preset"]]
  config = ml_collections.ConfigDict()
  config.dataset = values["dataset"]
  config.split = values["split"]
  config.model = values["model"]
  config.seed = int(values["seed"])
  config.source = values["source"]
  config.preset = values["preset"]
  config.data_dir = ""  # prepared datasets (stored sources); empty: data/tfds
  # Procedural images from a prepared TFDS dataset instead of rendering them in the step.
  config.from_disk = False
  # A reduced grid (one size per factor) for smoke runs on procedural data; empty: full.
  config.grid = SMOKE_GRIDS.get(config.dataset, ()) if values["preset"] == "smoke" else ()
  config.progress = True

  config.train = ml_collections.ConfigDict()
  config.train.steps = preset["steps"]
  config.train.batch_size = 64
  config.train.optimizer = "adam"
  config.train.learning_rate = preset["learning_rate"]
  config.train.log_every = preset["log_every"]
  config.train.checkpoint_every = preset["checkpoint_every"]

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = preset["eval_batch_size"]
  config.eval.max_examples = preset["max_examples"]  # 0: the whole test split
  return config
