"""Prints procedural rendering throughput and the cost of preparing full datasets.

Usage::

  python benchmarks/render_throughput.py                   # renderers only (about a minute)
  python benchmarks/render_throughput.py --prepare dsprites --data_dir /tmp/gsgen_tfds

Rendering is timed after compilation, on whatever device JAX picks (CPU here). Preparation
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
from gsgen import specs


def render_rate(name: str, batch: int, seconds: float) -> float:
  spec = specs.get(name)
  render = procedural.renderer(name)
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
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=512)
  parser.add_argument("--seconds", type=float, default=5.0)
  parser.add_argument("--prepare", nargs="*", default=[], choices=specs.DATASETS,
                      help="datasets to prepare in full (procedural) and time")
  parser.add_argument("--data_dir", default="/tmp/gsgen_benchmark_tfds")
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, "
        f"{os.cpu_count()} CPU cores, batch {args.batch}")
  for name in specs.DATASETS:
    rate = render_rate(name, args.batch, args.seconds)
    full = specs.get(name).num_images / rate
    print(f"render {name:<9} {rate:>9,.0f} images/s  (whole grid in {full:,.0f} s)")
  for name in args.prepare:
    seconds, peak = prepare_cost(name, args.data_dir)
    n = specs.get(name).num_images
    print(f"prepare {name:<8} {n:,} images in {seconds:,.0f} s ({n / seconds:,.0f} images/s), "
          f"peak memory {peak:,.0f} MiB (procedural, array_record)")


if __name__ == "__main__":
  main()
