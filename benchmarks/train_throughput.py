"""Prints training images per second of a model at batch 64, from each data source.

Usage::

  python benchmarks/train_throughput.py                        # CNN on dSprites
  python benchmarks/train_throughput.py --model resnet18 --dataset shapes3d --steps 20
  python benchmarks/train_throughput.py --model bit_resnet50 --preset transfer --batch 64 \
      --sources procedural --steps 5        # at the preset's 128x128, with peak memory
  python benchmarks/train_throughput.py --learners regression,beta_vae,ada_gvae,slow_vae,pcl \
      --sources procedural --steps 30
  python benchmarks/train_throughput.py --num_seeds 1,4,8 --sources procedural

Sources (``--sources``, comma-separated source strings): ``procedural`` (rendered inside the
jitted step on the training device) and any stored source, e.g. ``procedural:stored`` (a
dataset prepared on disk, read on the host; prepared first under --data_dir if missing, on a
reduced grid with --grid to keep that quick; official sources read --official_dir). Timed after
compilation, on whatever devices JAX sees; the device is printed, and with it the peak resident
memory of the process (host memory: on a CPU, what training needed). For a representation
learner the first stage is timed (the representation, not its readout); the pair learners'
batch of 64 pairs counts as 128 images. ``--fixed_batch`` adds the step alone, on one batch
held in memory. ``benchmarks/vs_pytorch.py`` builds its gsgen side from `build`.
"""

import argparse
import os
import resource
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
from gsgen import split_data
from gsgen import steps as steps_lib
from gsgen import train
from gsgen import xla
from gsgen.configs import benchmark
from gsgen.datasets import procedural
from gsgen.datasets import sources


def build(model: str, source, batch_size: int = 64, learner: str = "regression",
          preset: str = "paper", num_seeds: int = 1, fixed_batch: bool = False):
  """A compiled training step of the first stage of ``learner`` with ``model`` on ``source``.

  Args:
    model: a model name of `gsgen.models`.
    source: a `gsgen.split_data.SplitData` (`make_source`).
    batch_size: examples per step (pairs, for a pair learner).
    learner: a learner name.
    preset: gives the optimizer and the model's resolution (its weight file is not loaded: the
      speed is the same).
    num_seeds: replicas trained by one program.
    fixed_batch: train on one batch, rendered (or read) once, instead of drawing a new batch
      from ``source`` every step.

  Returns:
    ``run(steps) -> images trained per seed``; compilation happens here.
  """
  config = benchmark.get_config(f"dataset={source.spec.name},model={model},learner={learner},"
                                f"preset={preset}")
  config.init_from.weights = ""
  config.train.batch_size = batch_size
  stage = learners.stages(learners.get(learner), config)[0]
  mesh = sharding.make_mesh()
  built = [train.create_state(config, stage, source.spec, mesh, nnx.Rngs(s))
           for s in range(num_seeds)]
  graphdef = built[0][0]
  keys = jax.vmap(jax.random.key)(jnp.arange(num_seeds))
  options = stage.learner.sampler_options(stage.options)
  if num_seeds == 1:
    state, key = built[0][1], keys[0]
    batches = input_pipeline.TrainBatches(source, batch_size, 0, mesh,
                                          sampler=stage.learner.sampler,
                                          sampler_options=options)
  else:
    state = jax.tree.map(lambda *xs: jnp.stack(xs), *[b[1] for b in built])
    key = keys
    batches = input_pipeline.SeedBatches(source, batch_size, range(num_seeds), mesh,
                                         sampler=stage.learner.sampler,
                                         sampler_options=options)
  render = procedural.renderer(source.spec) if source.renders_on_device else None
  step_fn = steps_lib.make_train_step(graphdef, stage, source.spec, render, mesh, key)
  images_per_step = batches.images_per_step
  if fixed_batch:
    if num_seeds != 1:
      raise ValueError("--fixed_batch times one seed; drop --num_seeds")
    host = batches.host_batch(0)
    if render is not None:  # single points [B, F] or pairs [B, 2, F]
      idx = host["factor_indices"]
      flat = np.asarray(render(idx.reshape(-1, idx.shape[-1])))
      host["image"] = flat.reshape(idx.shape[:-1] + flat.shape[1:])
    fixed = sharding.global_batch(host, mesh)
    batches = types.SimpleNamespace(get=lambda step: fixed)
  state, metrics = step_fn(state, batches.get(0), train.step_number(1, mesh))  # compile
  jax.block_until_ready(metrics)
  held = {"state": state, "step": 1}

  def run(steps: int) -> int:
    state, step = held["state"], held["step"]
    for step in range(step + 1, step + steps + 1):
      state, metrics = step_fn(state, batches.get(step - 1), train.step_number(step, mesh))
    jax.block_until_ready(metrics)
    held["state"], held["step"] = state, step
    return steps * images_per_step

  return run


def measure(model: str, source, steps: int, batch_size: int = 64,
            learner: str = "regression", preset: str = "paper", num_seeds: int = 1,
            fixed_batch: bool = False) -> float:
  """Training images per second (per seed) of the first stage of ``learner`` with ``model`` on
  ``source``, timed after compilation; see `build`. A batch of ``batch_size`` pairs is twice
  the images."""
  run = build(model, source, batch_size, learner, preset, num_seeds, fixed_batch)
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
  return split_data.make(dataset, data.benchmark_split or "random", data, data_dir=data_dir)


def main():
  xla.restart_with_huge_pages()  # as gsgen's command lines do
  xla.configure()  # gsgen's XLA CPU option, as its command lines set it
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="cnn")
  parser.add_argument("--learners", default="regression",
                      help="comma-separated learners (gsgen.learners.LEARNERS)")
  parser.add_argument("--dataset", default="dsprites", choices=specs.DATASETS)
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--preset", default="paper", help="optimizer and resolution, e.g. transfer")
  parser.add_argument("--sources", default="procedural,procedural:stored")
  parser.add_argument("--fixed_batch", action="store_true",
                      help="also time the step alone, on one batch held in memory")
  parser.add_argument("--data_dir", default="/tmp/gsgen_benchmark_tfds")
  parser.add_argument("--official_dir", default="data")
  parser.add_argument("--grid", default="",
                      help="reduced grid for stored sources, e.g. 3,6,10,32,32")
  parser.add_argument("--num_seeds", default="1",
                      help="replicas trained by one program, e.g. 1,4,8 (figures per seed)")
  args = parser.parse_args()
  device = jax.devices()[0]
  print(f"device: {device.device_kind} x{jax.device_count()} ({device.platform}), "
        f"{os.cpu_count()} CPU cores; {args.model} on {args.dataset}, batch {args.batch}")
  runs = [(name, False) for name in args.sources.split(",")]
  if args.fixed_batch:
    runs.append(("procedural", True))
  for name, fixed in runs:
    source = make_source(args.dataset, name, args.data_dir, args.official_dir, args.grid)
    label = "fixed batch" if fixed else source.data.name
    for learner in args.learners.split(","):
      for n in ((1,) if fixed else (int(k) for k in args.num_seeds.split(","))):
        rate = measure(args.model, source, args.steps, args.batch, learner=learner,
                       preset=args.preset, num_seeds=n, fixed_batch=fixed)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        print(f"train {args.model:<12} {learner:<10} {label:<17} seeds/program {n:<2} "
              f"{rate:>9,.1f} images/s per seed, peak memory {peak:.1f} GiB", flush=True)

if __name__ == "__main__":
  main()
