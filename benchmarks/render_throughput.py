"""Prints procedural rendering throughput and the cost of preparing full datasets.

Usage::

  python benchmarks/render_throughput.py                   # renderers only (about a minute)
  python benchmarks/render_throughput.py --prepare dsprites --data_dir /tmp/gsgen_tfds

Rendering is timed after compilation, on whatever device JAX picks (CPU here), with each
dataset's in-step renderer (`gsgen.datasets.procedural.renderer`) and, for Shapes3D, also
with the reference that traces every ray (``render_shapes3d.render``). Preparation
runs `python -m gsgen.datasets.prepare` in a child process and reports its wall time and
peak resident memory (ru_maxrss of the child).
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

import jax
import numpy as np

from gsgen.datasets import procedural
from gsgen.datasets import render_shapes3d
from gsgen import specs
from gsgen import xla


def render_rate(name: str, batch: int, seconds: float, render=None) -> float:
  """Images per second of ``render`` (default: the dataset's in-step renderer) at ``batch``."""
  spec = specs.get(name)
  render = render or procedural.renderer(name)
  rng = np.random.default_rng(0)
  idx = spec.factor_indices(rng.integers(0, spec.num_images, batch)).astype(np.int32)
  render(idx).block_until_ready()  # compile
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    render(idx).block_until_ready()
    count += batch
  return count / (time.perf_counter() - start)


_CHILD = """
import resource, runpy, sys
sys.argv = ["prepare"] + sys.argv[1:]
try:
  runpy.run_module("gsgen.datasets.prepare", run_name="__main__")
except SystemExit as e:
  if e.code:
    raise
print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def prepare_cost(name: str, data_dir: str) -> tuple[float, float]:
  """Wall seconds and peak resident MiB of preparing one full procedural dataset."""
  folder = os.path.join(data_dir, f"gsgen_{name}", "procedural")
  shutil.rmtree(folder, ignore_errors=True)
  start = time.perf_counter()
  out = subprocess.run([sys.executable, "-c", _CHILD, "--dataset", name, "--source",
                        "procedural", "--data_dir", data_dir], check=True,
                       capture_output=True, text=True).stdout
  seconds = time.perf_counter() - start
  peak_kib = int(out.split("peak_kib")[-1].split()[0])
  return seconds, peak_kib / 1024


def main():
  xla.restart_with_huge_pages()  # as gsgen's command lines do
  xla.configure()  # gsgen's XLA CPU option, as its command lines set it
  parser = argparse.ArgumentParser()
  parser.add_argument("--batches", default="64,512",
                      help="batch sizes: 64 is a training step's, 512 a preparation chunk's")
  parser.add_argument("--seconds", type=float, default=5.0)
  parser.add_argument("--prepare", nargs="*", default=[], choices=specs.DATASETS,
                      help="datasets to prepare in full (procedural) and time")
  parser.add_argument("--data_dir", default="/tmp/gsgen_benchmark_tfds")
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, "
        f"{os.cpu_count()} CPU cores; load averages "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
  start = time.perf_counter()
  render_shapes3d.geometry_table()
  print(f"shapes3d geometry table (once per process): {time.perf_counter() - start:.1f} s")
  # Shapes3D's in-step renderer recolours precomputed geometries; the reference traces every
  # ray of every image, as the in-step renderer did before.
  variants = [(name, None, "") for name in specs.DATASETS]
  variants.insert(2, ("shapes3d", render_shapes3d.render, " (tracing every ray)"))
  for batch in (int(b) for b in args.batches.split(",")):
    for name, render, note in variants:
      rate = render_rate(name, batch, args.seconds, render)
      full = specs.get(name).num_images / rate
      print(f"render {name:<9} batch {batch:<4} {rate:>9,.0f} images/s  "
            f"(whole grid in {full:,.0f} s){note}")
  for name in args.prepare:
    seconds, peak = prepare_cost(name, args.data_dir)
    n = specs.get(name).num_images
    print(f"prepare {name:<8} {n:,} images in {seconds:,.0f} s ({n / seconds:,.0f} images/s), "
          f"peak memory {peak:,.0f} MiB (procedural, array_record)")


if __name__ == "__main__":
  main()
