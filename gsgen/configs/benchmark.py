r"""The benchmark's config: one dataset x split x model (or learner) x seed x data source.

Launch (the README's quick start)::

  python -m gsgen.main \
    --config=benchmark:dataset=dsprites,split=extrapolation,model=cnn,preset=cpu \
    --workdir=workdirs/dsprites_extrapolation_cnn_0

Transfer learning (docs/models.md) from a weight file under data/weights (`TRANSFER_WEIGHTS`)::

  python -m gsgen.main \
    --config=benchmark:dataset=mpi3d,split=extrapolation,model=bit_resnet50,preset=transfer \
    --workdir=workdirs/mpi3d_extrapolation_bit_resnet50_transfer

The argument after the colon is ``key=value`` pairs: ``dataset``, ``split``, ``model``,
``learner``, ``seed``, ``source`` and ``preset`` (`PRESETS`). Every field can then be
overridden, e.g. ``--config.optim.learning_rate=3e-4``; ``python -m gsgen.main --help``
lists them with their meaning (`FIELDS`). A representation learner (``learner=beta_vae``,
``ada_gvae``, ``slow_vae``, ``pcl``) trains ``train.steps`` and is then read out for
``readout.steps`` (`LEARNER_BUDGETS`), in the same workdir::

  python -m gsgen.main \
    --config=benchmark:dataset=dsprites,split=extrapolation,learner=pcl,preset=cpu \
    --workdir=workdirs/dsprites_extrapolation_pcl_0
"""

from __future__ import annotations

import ml_collections

from gsgen import learners
from gsgen import models
from gsgen import specs

# Reduced grids of the smoke preset: a few hundred points, yet every split keeps train and
# test points (composition needs one factor large enough for a low band).
SMOKE_GRIDS = {"dsprites": (2, 2, 9, 9, 2), "shapes3d": (10, 2, 2, 2, 2, 2),
               "mpi3d": (2, 2, 2, 2, 2, 7, 2)}

DEFAULTS = {"dataset": "dsprites", "split": "extrapolation", "model": "cnn",
            "learner": "regression", "seed": "0", "source": "procedural", "preset": "cpu"}

PRESETS = {
    # Minutes on a 2-core CPU; R² on a seeded subset of the test split.
    "cpu": dict(steps=3000, learning_rate=1e-3, log_every=100, checkpoint_every=1000,
                eval_batch_size=512, max_examples=20_000),
    # The study's budget: Adam 1e-4, batch 64, the whole test split.
    "paper": dict(steps=300_000, learning_rate=1e-4, log_every=1000, checkpoint_every=10_000,
                  eval_batch_size=1024, max_examples=0),
    # A few steps on a reduced grid, for tests.
    "smoke": dict(steps=4, learning_rate=1e-3, log_every=2, checkpoint_every=2,
                  eval_batch_size=64, max_examples=0),
    # Fine-tuning a pretrained network (docs/models.md, after BiT's HyperRule): SGD with momentum,
    # linear warm-up, x0.1 at 30, 60 and 90 % of the steps, batch 512 where memory allows,
    # images resized to 128, weights from TRANSFER_WEIGHTS.
    "transfer": dict(steps=10_000, learning_rate=0.003, log_every=100, checkpoint_every=1000,
                     eval_batch_size=512, max_examples=0, optimizer="sgd", schedule="step",
                     warmup_steps=500, batch_size=512, resolution=128),
}

# The weight file the transfer preset starts each model from (the published file names:
# BiT-M's ImageNet-21k .npz, torchvision's ImageNet-1k .pth); any file `python -m
# gsgen.weights inspect` says fits the model can replace it.
TRANSFER_WEIGHTS = {
    "bit_resnet50": "data/weights/BiT-M-R50x1.npz",
    "bit_resnet101": "data/weights/BiT-M-R101x1.npz",
    "densenet121": "data/weights/densenet121-a639ec97.pth",
    "resnet18": "data/weights/resnet18-f37072fd.pth",
    "resnet50": "data/weights/resnet50-0676ba61.pth",
    "resnet101": "data/weights/resnet101-63fe2227.pth",
}


def _learner_budgets() -> dict[str, dict[str, dict]]:
  """``{preset: {learner: its budget there}}`` over the presets where a learner has one."""
  by_preset = {preset: {name: dict(learner.budgets[preset])
                        for name, learner in learners.LEARNERS.items()
                        if preset in learner.budgets} for preset in PRESETS}
  return {preset: table for preset, table in by_preset.items() if table}


# Steps of the representation (train.steps) and of its readout (readout.steps) by preset and
# learner, where they differ from the preset's: each learner's own (`Learner.budgets`). A
# supervised learner has no readout unless readout.steps is set.
LEARNER_BUDGETS = _learner_budgets()

# What each field means: `python -m gsgen.main --help` prints this.
FIELDS = {
    "dataset": "dsprites, shapes3d or mpi3d",
    "split": "random, composition, interpolation or extrapolation",
    "seed": "initialisation, data order and random draws of the run",
    "num_seeds": "train seeds seed .. seed+N-1 as N replicas in one program (results per "
                 "seed under seed<s>/)",
    "preset": "the budget the config was built from (cpu, paper, smoke, transfer)",
    "model": "model name (gsgen.models.MODELS); choose it in the config argument, so that "
             "model_kwargs holds its options",
    "model_kwargs": "the model constructor's options, with their defaults",
    "learner": "training objective (gsgen.learners.LEARNERS)",
    "learner_kwargs": "the learner's hyperparameters, with their defaults (z: latents; "
                      "beta, gamma: weights of the KL terms; rate_prior: SlowVAE's Laplace "
                      "prior; k: factors changed per Ada-GVAE pair, 0 drawn; "
                      "transition_rate: the Laplace pair sampler's rate; kl_warmup: steps "
                      "over which the VAEs' KL weight ramps up to beta, 0 none)",
    "init_from.workdir": "start from the final checkpoint of another run's workdir",
    "init_from.weights": "start from a pretrained weight file (BiT .npz, .safetensors, .pth; "
                         "`python -m gsgen.weights inspect FILE` says what it fits); the "
                         "regression head starts at zero",
    "init_from.include": "regex: parameters (slash-joined paths) to load",
    "init_from.exclude": "regex: parameters not to load (e.g. a classifier head); empty: none",
    "optim.name": "adam, adamw or sgd",
    "optim.learning_rate": "peak learning rate",
    "optim.schedule": "constant, warmup_cosine or step (x0.1 at optim.decay_at)",
    "optim.warmup_steps": "linear warm-up from 0 (warmup_cosine, step)",
    "optim.decay_at": "fractions of the steps where the step schedule multiplies by 0.1",
    "optim.weight_decay": "decoupled weight decay (0: none)",
    "optim.momentum": "SGD momentum",
    "optim.trainable": "regex: parameters that train ('.*': all, full fine-tuning; '^head/': "
                       "the head only); the rest stay frozen",
    "data.source": "procedural (rendered in the step), procedural:stored, official, "
                   "toy/realistic/real (MPI3D), benchmark_<split>",
    "data.data_dir": "where prepared datasets are (empty: data/tfds)",
    "data.grid": "a reduced grid, one size per factor (procedural; empty: the full grid)",
    "train.steps": "training steps (of the representation, for a representation learner)",
    "train.batch_size": "global batch size (a multiple of the device count); pairs for the "
                        "pair learners, so 64 pairs are 128 images; the transfer preset's 512 "
                        "needs an accelerator: lower it (and the learning rate in proportion) "
                        "on a CPU",
    "train.log_every": "steps between metric lines",
    "train.checkpoint_every": "steps between checkpoints",
    "readout.steps": "steps of an MLP readout on the frozen representation after training "
                     "(required by representation learners; 0: none)",
    "readout.optim": "the readout's optimizer, fields as optim.*; trainable selects the "
                     "readout head, so the encoder stays frozen",
    "eval.batch_size": "global evaluation batch size (a multiple of the device count)",
    "eval.max_examples": "score a seeded random subset of this many test points (0: all)",
    "progress": "show progress bars",
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
  try:
    int(values["seed"])
  except ValueError:
    raise ValueError(f"seed must be an integer; got seed={values['seed']!r}.") from None
  return values


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of ``arg`` (``key=value`` pairs, see `DEFAULTS`), every field set."""
  values = parse(arg)
  preset = PRESETS[values["preset"]]
  budget = LEARNER_BUDGETS.get(values["preset"], {}).get(values["learner"], {})
  config = ml_collections.ConfigDict()
  config.dataset = values["dataset"]
  config.split = values["split"]
  config.seed = int(values["seed"])
  config.num_seeds = 1
  config.preset = values["preset"]
  config.model = values["model"]
  kwargs = models.options(config.model) if config.model in models.MODELS else {}
  if "resolution" in kwargs and "resolution" in preset:
    kwargs["resolution"] = preset["resolution"]
  config.model_kwargs = ml_collections.ConfigDict(kwargs)
  config.learner = values["learner"]
  config.learner_kwargs = ml_collections.ConfigDict(_learner_options(config.learner))

  transfer = values["preset"] == "transfer"
  config.init_from = ml_collections.ConfigDict(dict(
      workdir="", weights=TRANSFER_WEIGHTS.get(config.model, "") if transfer else "",
      include=".*", exclude=""))
  optim = dict(name=preset.get("optimizer", "adam"), learning_rate=preset["learning_rate"],
               schedule=preset.get("schedule", "constant"),
               warmup_steps=preset.get("warmup_steps", 0), decay_at=(0.3, 0.6, 0.9),
               weight_decay=0.0, momentum=0.9, trainable=".*")
  config.optim = ml_collections.ConfigDict(optim)
  config.data = ml_collections.ConfigDict(dict(
      source=values["source"], data_dir="",
      grid=_smoke_grid(config.dataset) if values["preset"] == "smoke" else ()))
  config.train = ml_collections.ConfigDict(dict(
      steps=budget.get("steps", preset["steps"]), batch_size=preset.get("batch_size", 64),
      log_every=preset["log_every"],
      checkpoint_every=preset["checkpoint_every"]))
  # The readout trains only its MLP head (paths under "head/"): the encoder stays frozen.
  config.readout = ml_collections.ConfigDict(dict(
      steps=budget.get("readout_steps", 0),
      optim=ml_collections.ConfigDict({**optim, "trainable": "^head/"})))
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=preset["eval_batch_size"], max_examples=preset["max_examples"]))
  config.progress = True
  return config


def _smoke_grid(dataset: str) -> tuple[int, ...]:
  """The smoke preset's reduced grid of ``dataset``; a dataset without one is an error (the
  full grid would turn a test's few steps into a full evaluation)."""
  if dataset not in SMOKE_GRIDS:
    specs.get(dataset)  # an unknown name gets the error that lists the datasets
    raise ValueError(f"the smoke preset has no reduced grid for dataset {dataset!r}; "
                     f"SMOKE_GRIDS has one for {', '.join(SMOKE_GRIDS)}.")
  return SMOKE_GRIDS[dataset]


def _learner_options(name: str) -> dict:
  return dict(learners.LEARNERS[name].options) if name in learners.LEARNERS else {}


def describe(config: ml_collections.ConfigDict | None = None) -> str:
  """Every field of ``config`` (default: ``get_config()``) with its value and meaning."""
  config = get_config() if config is None else config
  lines = []

  def walk(node, prefix):
    for key in node.keys():
      value, name = node[key], prefix + key
      if isinstance(value, ml_collections.ConfigDict):
        if name in FIELDS:
          lines.append(f"  --config.{name}.*: {FIELDS[name]}")
        walk(value, name + ".")
        continue
      lines.append(f"  --config.{name}={value!r}: {FIELDS.get(name, '')}".rstrip(": "))

  walk(config, "")
  return "\n".join(lines)
