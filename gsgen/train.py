"""Trains a factor regressor on a split's train part and scores it on the test part.

Synopsis::

  from gsgen import train
  from experiments.configs import benchmark
  config = benchmark.get_config("dataset=dsprites,split=random,model=cnn,preset=cpu")
  results = train.train_and_evaluate(config, "/tmp/gsgen_run")
  results["test"]["rsquared_x_position"]

The model is split once into a graph definition and a state; a pure step over (state, batch)
is jitted over a device mesh with the state replicated and the batch sharded on the ``data``
axis (see `gsgen.sharding`), and its input state is donated. Rerunning with the same workdir
resumes from the newest checkpoint; the data order is a function of the step, so the resumed
run sees the batches an uninterrupted run sees. The workdir receives ``metrics.jsonl`` (one
line per logged step), TensorBoard events under ``tensorboard/``, ``checkpoints/`` and, at
the end, ``results.json`` (every metric of SPEC section 4 and the run's identity).
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm
from flax import nnx

from gsgen import checkpoint as checkpoint_lib
from gsgen import evaluate
from gsgen import input_pipeline
from gsgen import models
from gsgen import sharding
from gsgen import splits as splits_lib

OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd}


def mse_loss(predictions, targets):
  """Mean squared error over the batch and all factors (normalised targets)."""
  return jnp.mean((predictions - targets) ** 2)


def make_optimizer(train_config) -> optax.GradientTransformation:
  """The optax optimizer named by ``train_config.optimizer`` at ``learning_rate``."""
  name = train_config.optimizer
  if name not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
  return OPTIMIZERS[name](train_config.learning_rate)


def _images(batch, render):
  """Float images in [0, 1]: stored images, or rendered from factor indices on device."""
  if "image" in batch:
    return batch["image"].astype(jnp.float32) / 255.0
  return render(batch["factor_indices"]).astype(jnp.float32) / 255.0


def make_steps(graphdef, spec, render, mesh):
  """The jitted train step and prediction function of a run.

  Returns:
    ``(train_step, predict)``: ``train_step(state, batch) -> (state, metrics)`` with the
    state donated; ``predict(state, batch) -> [batch, num_factors]`` in inference mode.
  """
  replicated = sharding.replicated(mesh)

  def train_step(state, batch):
    model, optimizer = nnx.merge(graphdef, state)
    model.train()
    images = _images(batch, render)
    targets = spec.targets(batch["factor_indices"])

    def loss_fn(model):
      return mse_loss(model(images), targets)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return nnx.state((model, optimizer)), {"loss": loss, "grad_norm": optax.tree.norm(grads)}

  def predict(state, batch):
    model, _ = nnx.merge(graphdef, state)
    model.eval()
    return model(_images(batch, render))

  train_step = jax.jit(train_step, donate_argnums=0, out_shardings=(replicated, replicated))
  return train_step, jax.jit(predict)


def create_state(config, spec, mesh):
  """Builds the model and optimizer; returns ``(graphdef, replicated state)``."""
  model = models.create(config.model, spec.num_factors, in_channels=spec.image_shape[-1],
                        rngs=nnx.Rngs(config.seed))
  optimizer = nnx.Optimizer(model, make_optimizer(config.train), wrt=nnx.Param)
  graphdef, state = nnx.split((model, optimizer))
  return graphdef, sharding.replicate(state, mesh)


def identity(config, source) -> dict:
  """What every result names: dataset, data source, split, model and seed."""
  return {"dataset": source.spec.name, "data_source": source.data_source,
          "source": source.name, "split": source.split, "model": config.model,
          "seed": config.seed, "grid": list(source.spec.sizes)}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_after_step: int | None = None) -> dict | None:
  """Trains ``config.model`` on the train part of ``config.split`` and scores the test part.

  Args:
    config: a config from ``experiments/configs/benchmark.py``.
    workdir: where checkpoints, metrics and results go; an existing run there resumes.
    stop_after_step: save a checkpoint and return None once this step is reached, before
      the end (for time-limited jobs; rerun to continue).

  Returns:
    The results dict also written to ``workdir/results.json``, or None when stopped early.

  Raises:
    FloatingPointError: the loss became NaN or infinite; the message names the step.
    ValueError: bad names in the config, or a workdir holding a different run.
  """
  os.makedirs(workdir, exist_ok=True)
  splits_lib.check_split(config.split)
  source = input_pipeline.make_source(
      config.dataset, config.split, config.source, data_dir=config.data_dir or None,
      grid_sizes=tuple(config.grid) if config.get("grid") else None,
      from_disk=config.get("from_disk", False))
  spec, run_id = source.spec, identity(config, source)
  mesh = sharding.make_mesh()
  graphdef, state = create_state(config, spec, mesh)
  render = None
  if source.renders_on_device:
    from gsgen.datasets import procedural  # pylint: disable=g-import-not-at-top
    render = procedural.renderer(spec)
  train_step, predict = make_steps(graphdef, spec, render, mesh)

  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                     config.train.checkpoint_every)
  start = ckpt.latest_step() or 0
  if start:
    meta = ckpt.read_meta(start)
    if meta["identity"] != run_id:
      raise ValueError(f"{workdir} holds a run of {meta['identity']}, not {run_id}; use "
                       f"another workdir.")
    pure, _ = ckpt.restore(start, like=nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, pure)
  total = config.train.steps
  last = total if stop_after_step is None else min(total, stop_after_step)
  log = _MetricLog(workdir, start)
  batches = input_pipeline.TrainBatches(source, config.train.batch_size, config.seed, mesh)

  pending, tick, tick_step = [], time.perf_counter(), start
  bar = tqdm.tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
                  desc=f"{spec.name}/{config.split}/{config.model}/seed{config.seed}",
                  disable=not config.get("progress", True) or jax.process_index() != 0)
  for step in range(start + 1, last + 1):
    state, metrics = train_step(state, batches.get(step - 1))
    pending.append((step, metrics))
    bar.update(1)
    if step % config.train.log_every == 0 or step == last or ckpt.should_save(step):
      fetched = _check_finite(jax.device_get(pending))
      now = time.perf_counter()
      rate = (step - tick_step) * config.train.batch_size / max(now - tick, 1e-9)
      row = {"step": step, **{k: float(v) for k, v in fetched[-1][1].items()},
             "images_per_second": rate}
      log.write(row)
      bar.set_postfix(loss=f"{row['loss']:.4g}", img_s=f"{rate:,.0f}")
      pending, tick, tick_step = [], now, step
    if ckpt.should_save(step) or step == last:
      ckpt.save(step, nnx.to_pure_dict(state), {"step": step, "seed": config.seed,
                                                "identity": run_id})
  bar.close()
  ckpt.close()
  if last < total:
    log.close()
    return None

  result = _evaluate(config, source, state, predict, mesh)
  results = {**run_id, "steps": total, "test": result,
             "train": {"final_loss": log.last.get("loss"),
                       "images_per_second": log.last.get("images_per_second"),
                       "num_params": models.num_params(nnx.merge(graphdef, state)[0]),
                       "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}"},
             "config": config.to_dict()}
  log.close()
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=1)
  return results


def _check_finite(fetched):
  for step, metrics in fetched:
    loss = float(metrics["loss"])
    if not np.isfinite(loss):
      raise FloatingPointError(
          f"non-finite loss ({loss}) at step {step}; training stopped before saving it. "
          f"Lower the learning rate or check the data; the last checkpoint is intact.")
  return fetched


def _evaluate(config, source, state, predict, mesh) -> dict:
  """Scores the test part (a seeded subset if ``config.eval.max_examples`` is set)."""
  n = len(source.test_records)
  records = None
  if config.eval.max_examples and config.eval.max_examples < n:
    rng = np.random.RandomState(config.seed)
    records = np.sort(rng.choice(n, config.eval.max_examples, replace=False))
  acc = evaluate.Accumulator(source.spec, source.split, part="test")
  total = n if records is None else len(records)
  for batch, mask in tqdm.tqdm(
      input_pipeline.eval_batches(source, "test", config.eval.batch_size, mesh, records),
      total=-(-total // config.eval.batch_size), unit="batch", desc="evaluate test split",
      disable=not config.get("progress", True) or jax.process_index() != 0):
    acc.update(predict(state, batch), np.asarray(batch["factor_indices"]), mask)
  result = acc.result()
  result["evaluated"] = "all" if records is None else f"random subset of {total} of {n}"
  return result


class _MetricLog:
  """metrics.jsonl plus TensorBoard events; on resume, drops lines past the checkpoint."""

  def __init__(self, workdir: str, start_step: int):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.last: dict = {}
    self._primary = jax.process_index() == 0
    if not self._primary:
      return
    kept = []
    if os.path.exists(self.path):
      with open(self.path) as f:
        kept = [line for line in f if json.loads(line)["step"] <= start_step]
    with open(self.path, "w") as f:
      f.writelines(kept)
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, row: dict) -> None:
    self.last = row
    if not self._primary:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    for key, value in row.items():
      if key != "step":
        self._tb.add_scalar(f"train/{key}", value, row["step"])

  def close(self) -> None:
    if self._primary:
      self._tb.close()


def format_table(results: dict) -> str:
  """A per-factor R² table of a results dict, headed by the run's identity."""
  test = results["test"]
  names = [k[len("rsquared_"):] for k in test
           if k.startswith("rsquared_") and k != "rsquared_noncategorical"]
  head = (f"{results['dataset']} ({results['data_source']}), split {results['split']}, "
          f"model {results['model']}, seed {results['seed']}, {results['steps']} steps, "
          f"test examples {test['num_examples']:,} ({test['evaluated']})")
  lines = [head, f"  {'factor':<18} {'R2':>8} {'MSE':>10}"]
  for name in names:
    lines.append(f"  {name:<18} {_fmt(test['rsquared_' + name]):>8} "
                 f"{_fmt(test['mse_' + name], 5):>10}")
  lines.append(f"  {'mean':<18} {_fmt(test['rsquared']):>8} {_fmt(test['mse'], 5):>10}")
  lines.append(f"  {'non-categorical':<18} {_fmt(test['rsquared_noncategorical']):>8}")
  return "\n".join(lines)


def _fmt(x, digits=3) -> str:
  return "n/a" if x is None else f"{x:.{digits}f}"
