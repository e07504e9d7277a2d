"""Prints training images per second of a model at batch 64, from each data source.

Usage::

  python benchmarks/train_throughput.py                        # CNN on dSprites
  python benchmarks/train_throughput.py --model resnet18 --dataset shapes3d --steps 20

Sources (``--sources``, comma-separated source strings): ``procedural`` (rendered inside the
jitted step on the training device) and any stored source, e.g. ``procedural:stored`` (a
dataset prepared on disk, read on the host; prepared first under --data_dir if missing, on a
reduced grid with --grid to keep that quick; official sources read --official_dir);
``--fixed_batch`` adds the step alone, on one batch held in memory. Timed after compilation,
on whatever devices JAX sees; the device is printed. ``benchmarks/vs_pytorch.py`` builds its
gsgen side from `build`.
"""

import argparse
import os
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gsgen import input_pipeline
from gsgen import learners
from gsgen import sharding
from gsgen import specs
from gsgen import train
from gsgen.configs import benchmark
from gsgen.datasets import procedural
from gsgen.datasets import sources
from gsgen.learners import learner as learner_lib


def build(model: str, source, batch_size: int = 64, learner: str = "regression",
          fixed_batch: bool = False):
  """A compiled training step of the first stage of ``learner`` with ``model`` on ``source``.

  Args:
    model: a model name of `gsgen.models`.
    source: from `gsgen.input_pipeline.make_source`.
    batch_size: images per step.
    learner: a learner name.
    fixed_batch: train on one batch of images, rendered (or read) once, instead of
      drawing a new batch from ``source`` every step.

  Returns:
    ``run(steps) -> images trained``; compilation happens here.
  """
  config = benchmark.get_config(f"dataset={source.spec.name},model={model},learner={learner},"
                                f"preset=paper")
  config.train.batch_size = batch_size
  stage = learner_lib.stages(learners.get(learner), config)[0]
  mesh = sharding.make_mesh()
  graphdef, state, _ = train.create_state(config, stage, source.spec, mesh, nnx.Rngs(0))
  render = procedural.renderer(source.spec) if source.renders_on_device else None
  step_fn = train.make_train_step(graphdef, stage, source.spec, render, mesh,
                                  jax.random.key(0))
  batches = input_pipeline.TrainBatches(source, batch_size, 0, mesh,
                                        sampler=stage.learner.sampler)
  if fixed_batch:
    host = batches.host_batch(0)
    if render is not None:
      host["image"] = np.asarray(render(host["factor_indices"]))
    fixed = sharding.global_batch(host, mesh)
    batches = types.SimpleNamespace(get=lambda step: fixed)
  held = {"state": state, "step": 1}
  state, metrics = step_fn(state, batches.get(0), jnp.int32(1))  # compile
  jax.block_until_ready(metrics)
  held["state"] = state

  def run(steps: int) -> int:
    state, step = held["state"], held["step"]
    for step in range(step + 1, step + steps + 1):
      state, metrics = step_fn(state, batches.get(step - 1), jnp.int32(step))
    jax.block_until_ready(metrics)
    held["state"], held["step"] = state, step
    return steps * batch_size

  return run


def measure(model: str, source, steps: int, batch_size: int = 64,
            learner: str = "regression") -> float:
  """Training images per second of the first stage of ``learner`` with ``model`` on
  ``source``, timed after compilation."""
  run = build(model, source, batch_size, learner)
  start = time.perf_counter()
  images = run(steps)
  return images / (time.perf_counter() - start)


def make_source(dataset: str, name: str, data_dir: str, official_dir: str = "data",
                grid: str = ""):
  """The training source ``name`` (a source string), prepared under ``data_dir`` first if it
  is a stored one and missing (on the reduced ``grid``, e.g. "3,6,10,32,32", if given)."""
  data = sources.parse(dataset, name)
  if data.stored:
    from gsgen.datasets import prepare  # pylint: disable=g-import-not-at-top
    sizes = tuple(int(s) for s in grid.split(",")) if grid else None
    prepare.prepare(dataset, data, data_dir, official_dir, grid_sizes=sizes)
  return input_pipeline.make_source(dataset, data.benchmark_split or "random", data,
                                    data_dir=data_dir)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="cnn")
  parser.add_argument("--dataset", default="dsprites", choices=specs.DATASETS)
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--sources", default="procedural,procedural:stored")
  parser.add_argument("--fixed_batch", action="store_true",
                      help="also time the step alone, on one batch held in memory")
  parser.add_argument("--data_dir", default="/tmp/gsgen_benchmark_tfds")
  parser.add_argument("--official_dir", default="data")
  parser.add_argument("--grid", default="",
                      help="reduced grid for stored sources, e.g. 3,6,10,32,32")
  args = parser.parse_args()
  device = jax.devices()[0]
  print(f"device: {device.device_kind} x{jax.device_count()} ({device.platform}), "
        f"{os.cpu_count()} CPU cores; {args.model} on {args.dataset}, batch {args.batch}")
  runs = [(name, False) for name in args.sources.split(",")]
  if args.fixed_batch:
    runs.append(("procedural", True))
  for name, fixed in runs:
    source = make_source(args.dataset, name, args.data_dir, args.official_dir, args.grid)
    run = build(args.model, source, args.batch, fixed_batch=fixed)
    start = time.perf_counter()
    rate = run(args.steps) / (time.perf_counter() - start)
    label = "fixed batch" if fixed else source.data.name
    print(f"train {args.model:<12} {label:<17} {rate:>9,.0f} images/s")


if __name__ == "__main__":
  main()
