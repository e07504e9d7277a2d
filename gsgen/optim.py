"""The optax chain of a stage, built from ``config.optim``: optimizer, schedule, weight decay and
which parameters train.

Synopsis::

  from gsgen import optim
  tx = optim.build(config.optim, total_steps=config.train.steps)
  schedule = optim.schedule(config.optim, total_steps=10_000)
  schedule(3000)                                       # the learning rate at step 3000
  optimizer = nnx.Optimizer(model, tx, wrt=optim.trainable(config.optim))

Freezing is by selection, not by zeroed updates: `trainable` is an NNX filter that decides
which parameters the gradient is taken of and the optimizer holds state for, so a frozen
encoder is never touched (bitwise) and costs no backward pass.
"""

from __future__ import annotations

import re

import jax.numpy as jnp
import optax
from flax import nnx

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup_cosine", "step")


def check(optim_config) -> None:
  """Raises a ValueError naming the field of ``config.optim`` that is out of range."""
  c = optim_config
  if c.name not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {c.name!r} (config.optim.name); choose one of "
                     f"{', '.join(OPTIMIZERS)}.")
  if c.schedule not in SCHEDULES:
    raise ValueError(f"unknown schedule {c.schedule!r} (config.optim.schedule); choose one "
                     f"of {', '.join(SCHEDULES)}.")
  if not c.learning_rate > 0:
    raise ValueError(f"config.optim.learning_rate must be positive; got {c.learning_rate}.")
  if c.weight_decay < 0:
    raise ValueError(f"config.optim.weight_decay must be >= 0; got {c.weight_decay}.")
  if not 0 <= c.momentum < 1:
    raise ValueError(f"config.optim.momentum must be in [0, 1); got {c.momentum}.")
  if c.warmup_steps < 0:
    raise ValueError(f"config.optim.warmup_steps must be >= 0; got {c.warmup_steps}.")
  fractions = tuple(c.decay_at)
  if any(not 0 < f < 1 for f in fractions) or list(fractions) != sorted(fractions):
    raise ValueError(f"config.optim.decay_at must be increasing fractions in (0, 1); got "
                     f"{fractions}.")
  try:
    re.compile(c.trainable)
  except re.error as e:
    raise ValueError(f"config.optim.trainable is not a regular expression: {e}") from e


def schedule(optim_config, total_steps: int) -> optax.Schedule:
  """The learning rate as a function of the step (0-based, as optax counts).

  Args:
    optim_config: ``config.optim``: ``learning_rate``, ``schedule`` (constant,
      warmup_cosine or step), ``warmup_steps`` (linear from 0; warmup_cosine and step) and
      ``decay_at`` (step: fractions of ``total_steps`` where the rate is multiplied by 0.1).
    total_steps: the stage's length.

  Returns:
    An optax schedule.
  """
  c = optim_config
  lr, warmup = c.learning_rate, int(c.warmup_steps)
  if c.schedule == "constant":
    return optax.constant_schedule(lr)
  if c.schedule == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1), end_value=0.0)
  boundaries = {int(round(f * total_steps)): 0.1 for f in c.decay_at}
  decay = optax.piecewise_constant_schedule(lr, boundaries)
  if not warmup:
    return decay
  # The warm-up scales the step schedule rather than preceding it, so the decays stay at
  # their fractions of the whole stage.
  return lambda step: decay(step) * jnp.minimum(1.0, step / warmup)


def build(optim_config, total_steps: int) -> optax.GradientTransformation:
  """The optimizer of a stage.

  Args:
    optim_config: ``config.optim`` as `check` accepts it (`gsgen.validate` checks a run's at
      its start); also ``name`` (adam, adamw or sgd), ``momentum`` (sgd) and
      ``weight_decay`` (decoupled: AdamW's own, and added to the update of adam and sgd
      before the learning rate scales it).
    total_steps: the stage's length (for the schedule).

  Returns:
    An optax transformation.
  """
  c = optim_config
  lr = schedule(c, total_steps)
  if c.name == "adamw":
    return optax.adamw(lr, weight_decay=c.weight_decay)
  if c.name == "adam":
    tx = optax.adam(lr)
  else:
    tx = optax.sgd(lr, momentum=c.momentum or None)
  if c.weight_decay:
    tx = optax.chain(optax.add_decayed_weights(c.weight_decay), tx)
  return tx


def path_string(path) -> str:
  """``('encoder', 'convs', 0, 'kernel')`` -> ``'encoder/convs/0/kernel'``."""
  return "/".join(str(p) for p in path)


def trainable(optim_config) -> nnx.filterlib.Filter:
  """The parameters a stage trains: ``nnx.Param`` whose path matches ``optim_config.trainable``.

  The pattern is a regular expression searched in the slash-joined path (``head`` trains
  every parameter under ``head``; ``.*`` trains all).
  """
  pattern = re.compile(optim_config.trainable)
  return nnx.All(nnx.Param,
                 lambda path, value: pattern.search(path_string(path)) is not None)


def train_mode(model: nnx.Module, optim_config) -> None:
  """Training mode for what trains; inference mode for every part that trains none of its
  parameters (a frozen encoder or backbone, a frozen normalisation layer).

  A frozen BatchNorm keeps using (and never updates) its running statistics, so a frozen
  backbone stays bitwise unchanged and behaves as it did when it was trained; the readout's
  encoder is frozen this way too.
  """
  model.train()
  pattern = re.compile(optim_config.trainable)
  params = [path_string(p) for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))]
  for path, module in nnx.iter_modules(model):
    prefix = path_string(path)
    own = [p for p in params if not prefix or p.startswith(prefix + "/")]
    frozen = own and not any(pattern.search(p) for p in own)
    # A BatchNorm without scale or bias is frozen unless its path says it trains.
    if frozen or (isinstance(module, nnx.BatchNorm) and not pattern.search(prefix + "/scale")):
      module.eval()
