"""Prints the model-zoo table: per model, parameters, training images/s and test R².

Usage::

  python benchmarks/model_zoo.py                                  # every model, cpu preset
  python benchmarks/model_zoo.py --models cnn,mlp --splits random
  python benchmarks/model_zoo.py --jobs 8                         # runs side by side
  python benchmarks/model_zoo.py --no_train                       # reprint finished runs

Each (model, split) trains with ``python -m gsgen.main`` in its own process and workdir,
``<workdir>/<dataset>_<split>_<model>_seed<seed>`` with its log in ``log.txt``. A finished
run's ``results.json`` is read back instead of training again, and an interrupted one resumes
from its last checkpoint, so the table can be built in several sittings. ``--jobs`` runs that
many trainings at once (on one GPU they share it; memory is then allocated on demand).

Throughput is measured afterwards, one model at a time in this process, at the training
batch size on procedural data (rendered in the step), timed after compilation as in
benchmarks/train_throughput.py; ``--throughput_steps 0`` skips it.
"""

import argparse
import collections
import json
import os
import pathlib
import subprocess
import sys
import time

import jax
from flax import nnx

import train_throughput  # benchmarks/ is on sys.path when this file runs as a script
from gsgen import input_pipeline
from gsgen import models
from gsgen import specs

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILE = ROOT / "gsgen" / "configs" / "benchmark.py"


def run_dir(args, model: str, split: str) -> pathlib.Path:
  return pathlib.Path(args.workdir) / f"{args.dataset}_{split}_{model}_seed{args.seed}"


def command(args, model: str, split: str) -> list[str]:
  config = (f"{CONFIG_FILE}:dataset={args.dataset},split={split},model={model},"
            f"seed={args.seed},preset={args.preset}")
  return [sys.executable, "-m", "gsgen.main", f"--config={config}",
          "--config.progress=False", f"--workdir={run_dir(args, model, split)}"]


def train_all(args, runs) -> dict:
  """Trains the runs without results, ``args.jobs`` at a time; returns {run: exit code}."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
  if args.jobs > 1:
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  todo = collections.deque(r for r in runs if not (run_dir(args, *r) / "results.json").exists())
  running, codes = {}, {}
  while todo or running:
    while todo and len(running) < args.jobs:
      run = todo.popleft()
      workdir = run_dir(args, *run)
      workdir.mkdir(parents=True, exist_ok=True)
      log = open(workdir / "log.txt", "a")  # pylint: disable=consider-using-with
      print(f"train {run[0]} on {args.dataset}/{run[1]} -> {workdir}", flush=True)
      running[run] = (subprocess.Popen(command(args, *run), stdout=log,
                                       stderr=subprocess.STDOUT, env=env, cwd=ROOT),
                      log, time.perf_counter())
    time.sleep(1)
    for run, (proc, log, start) in list(running.items()):
      if proc.poll() is None:
        continue
      log.close()
      del running[run]
      codes[run] = proc.returncode
      status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
      print(f"{status}: {run[0]} on {run[1]} in {time.perf_counter() - start:.0f} s",
            flush=True)
      if proc.returncode:
        tail = (run_dir(args, *run) / "log.txt").read_text().splitlines()[-8:]
        print("\n".join("  | " + line for line in tail), flush=True)
  return codes


def read_results(args, model: str, split: str) -> dict | None:
  path = run_dir(args, model, split) / "results.json"
  return json.loads(path.read_text()) if path.exists() else None


def num_params(dataset: str, model: str) -> int:
  spec = specs.get(dataset)
  abstract = nnx.eval_shape(lambda: models.create(
      model, spec.num_factors, in_channels=spec.image_shape[-1], rngs=nnx.Rngs(0)))
  return models.num_params(abstract)


def _r2(value) -> str:
  return "n/a" if value is None else f"{value:.3f}"


def tables(args, model_names, splits, rates) -> str:
  """Markdown: a summary table, then per-factor R² for each split."""
  factors = specs.get(args.dataset).factor_names
  head = ["model", "parameters", f"train images/s (batch {args.batch})"]
  head += [f"mean R² {split}" for split in splits]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  devices = set()
  for model in model_names:
    row = [model, f"{num_params(args.dataset, model):,}",
           f"{rates[model]:,.0f}" if model in rates else "not measured"]
    for split in splits:
      results = read_results(args, model, split)
      row.append(_r2(results["test"]["rsquared"]) if results else "not run")
      if results and "devices" in results["train"]:
        devices.add(results["train"]["devices"])
    lines.append("| " + " | ".join(row) + " |")
  out = [f"{args.dataset}, preset {args.preset}, seed {args.seed}; trained on "
         f"{', '.join(sorted(devices)) or 'n/a'}", "", *lines]
  for split in splits:
    head = ["model", *factors, "mean"]
    out += ["", f"R² per factor, {args.dataset} {split} split (test part)", "",
            "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in model_names:
      results = read_results(args, model, split)
      if results:
        test = results["test"]
        cells = [_r2(test[f"rsquared_{name}"]) for name in factors] + [_r2(test["rsquared"])]
      else:
        cells = ["not run"] * (len(factors) + 1)
      out.append("| " + " | ".join([model, *cells]) + " |")
  return "\n".join(out)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default=",".join(models.MODELS),
                      help="comma-separated names from gsgen.models.MODELS")
  parser.add_argument("--splits", default="random,extrapolation")
  parser.add_argument("--dataset", default="dsprites", choices=specs.DATASETS)
  parser.add_argument("--preset", default="cpu")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--workdir", default="workdirs/zoo")
  parser.add_argument("--jobs", type=int, default=1)
  parser.add_argument("--no_train", action="store_true", help="only tabulate finished runs")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--throughput_steps", type=int, default=20)
  args = parser.parse_args()
  model_names = args.models.split(",")
  for model in model_names:
    if model not in models.MODELS:
      parser.error(f"unknown model {model!r}; choose from {', '.join(models.MODELS)}")
  splits = args.splits.split(",")

  codes = {}
  if not args.no_train:
    codes = train_all(args, [(m, s) for m in model_names for s in splits])
  rates = {}
  if args.throughput_steps:
    device = jax.devices()[0]
    print(f"throughput on {device.device_kind} x{jax.device_count()}", flush=True)
    source = input_pipeline.make_source(args.dataset, "random")
    for model in model_names:
      rates[model] = train_throughput.measure(model, source, args.throughput_steps, args.batch)
      print(f"  {model:<20} {rates[model]:>9,.0f} images/s", flush=True)
  table = tables(args, model_names, splits, rates)
  print(table)
  pathlib.Path(args.workdir).mkdir(parents=True, exist_ok=True)
  (pathlib.Path(args.workdir) / "table.md").write_text(table + "\n")
  failed = [run for run, code in codes.items() if code]
  if failed:
    print(f"{len(failed)} run(s) failed: {failed}; see their log.txt", file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
