"""Side by side on this machine: gsgen against the authors' PyTorch pipeline, training and evaluation.

Usage::

  pip install -e ".[bench]"                 # PyTorch (CPU) for the reference side
  python benchmarks/vs_pytorch.py           # all three parts; 20-35 minutes on 2 CPU cores
  python benchmarks/vs_pytorch.py --parts train --repeats 9
  python benchmarks/vs_pytorch.py --parts learners --repeats 5 --learner_steps 20
  python benchmarks/vs_pytorch.py --parts eval --eval_images 100000 --eval_repeats 3

The reference is the published benchmark's own pipeline (lablet_generalization_benchmark,
Schott et al.), written again here: their VanillaCNN, their Dataset's per-item conversion
(channel transpose and torchvision's ``ToTensor``, targets divided by the factor sizes minus one), a
``DataLoader`` over in-memory arrays (batch 64 shuffled for training with Adam 1e-4; batch 256
for evaluation, as their loader shuffles), and their evaluation loop (the model called on each
batch outside ``no_grad``, predictions and targets stacked, R² per factor against the variance
of the normalised targets over the full grid). gsgen trains its CNN from a prepared dataset
(``procedural:stored``), with images rendered inside the step, and on one fixed batch; it
evaluates with `gsgen.evaluate.evaluate_model` on the same in-memory images and with the
engine's evaluation (images rendered inside the jitted predict), on the dSprites
extrapolation test split with the same weights, whose R² both sides print. Beside them, each
side's forward pass alone runs on one fixed batch of 256 of those images, called as the
evaluation calls it (PyTorch outside ``no_grad``, gsgen's jitted forward read back batch by
batch), over ``FORWARD_BATCHES`` batches: what the model costs without data loading or
scoring, the bound of both evaluations. The ``learners``
part trains beta-VAE (the model of Ada-GVAE and SlowVAE too) and PCL against plain PyTorch
references of the same architecture and loss (`torch_learners`) on one fixed batch of 64
examples, and gsgen's through its engine on a fixed batch and rendered inside the step; PCL's
rates are also given per example, since the reference encodes four images per example.

Every variant is a worker process, set up once (data, compilation, warm-up); the parent then
asks the workers for one timed repeat at a time, in turn, so that all see the same machine,
and prints the median images/s of each, the ratios gsgen / PyTorch and the load averages.
Only a quiet machine gives figures to quote: a busy one slows the two sides differently.

PyTorch allocates a step's activations anew every step, and glibc serves large allocations as
fresh pages (page faults) until the process has freed one large array, after which it keeps
them on its heap: the same beta-VAE step ran 1.4x faster after that (about 1,100 against 770
images/s here). Its workers therefore set glibc's allocator to keep freed memory
(`_keep_freed_memory`), so the reference always runs in its faster state; XLA's speed is
the same either way. The script restarts itself with glibc's huge pages for malloc, as
gsgen's command lines do (`gsgen.xla.restart_with_huge_pages`), and both sides' workers
inherit that: it spares XLA a page fault per 4 KiB of each step's buffer of intermediate
values, while PyTorch's speed is the same with or without it.
"""

import argparse
import multiprocessing
import os
import platform
import sys
import time
import warnings

import numpy as np

DATASET, SPLIT = "dsprites", "extrapolation"
# Representation learners with a PyTorch reference (benchmarks/torch_learners.py); Ada-GVAE
# and SlowVAE train beta-VAE's model, so its figures are theirs up to the loss.
LEARNERS = ("beta_vae", "pcl")
# The published loaders' factor sizes (their normalisation divides by size - 1).
FACTOR_SIZES = (3, 6, 40, 32, 32)
# Batches of 256 that each side's forward pass alone runs per timed repeat.
FORWARD_BATCHES = 200


# --- data shared by the workers: rendered once, memory-mapped by each -----------------------

def _data(cache_dir: str, part: str, count: int, seed: int = 0):
  """Images ``[n, 1, 64, 64]`` uint8 (the published CHW layout), factor indices and flat
  indices of ``count`` seeded points of the split's ``part`` (all if ``count`` is 0)."""
  from gsgen import splits  # pylint: disable=g-import-not-at-top
  flat = splits.indices(DATASET, SPLIT, part)
  if count and count < len(flat):
    flat = np.sort(np.random.default_rng(seed).choice(flat, count, replace=False))
  path = os.path.join(cache_dir, f"{DATASET}_{SPLIT}_{part}_{len(flat)}_{seed}.npy")
  if not os.path.exists(path):
    from gsgen.datasets import procedural  # pylint: disable=g-import-not-at-top
    os.makedirs(cache_dir, exist_ok=True)
    images = procedural.render_numpy(DATASET, flat, batch_size=1024)
    np.save(path + ".tmp.npy", images.reshape(len(flat), 1, 64, 64))
    os.replace(path + ".tmp.npy", path)
  from gsgen import specs  # pylint: disable=g-import-not-at-top
  return np.load(path, mmap_mode="r"), specs.get(DATASET).factor_indices(flat), flat


# --- the reference: the authors' pipeline in PyTorch ----------------------------------------

def _torch_dataset(images, factor_indices):
  """Their Dataset: one stored image and its normalised targets per item."""
  import torch  # pylint: disable=g-import-not-at-top
  import torch.utils.data  # pylint: disable=g-import-not-at-top
  divisor = np.asarray(FACTOR_SIZES) - 1

  def to_tensor(image):
    """torchvision's ``ToTensor`` of a uint8 HWC array: CHW float32 in [0, 1]."""
    return torch.from_numpy(image.transpose(2, 0, 1)).contiguous().to(torch.float32).div(255)

  class Dataset(torch.utils.data.Dataset):

    def __len__(self):
      return len(images)

    def __getitem__(self, i):
      return to_tensor(np.transpose(images[i], (1, 2, 0))), factor_indices[i] / divisor

  return Dataset()


def _keep_freed_memory():
  """glibc's allocator never returns freed memory to the system nor maps large blocks
  afresh (``mallopt``), so a step's new tensors reuse pages already touched."""
  import ctypes  # pylint: disable=g-import-not-at-top
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return  # not glibc: its allocator has no such switch
  libc.mallopt(-4, 0)  # M_MMAP_MAX: no block from mmap
  libc.mallopt(-1, 2 ** 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB freed at the top


def _torch_worker(kind: str, opts: dict):
  _keep_freed_memory()
  import torch  # pylint: disable=g-import-not-at-top
  import torch_learners  # pylint: disable=g-import-not-at-top  (benchmarks/ is on sys.path)
  # The arrays are memory-mapped read-only; every item is copied into a new tensor anyway.
  warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
  if kind in LEARNERS:
    images = _data(opts["cache_dir"], "train", opts["train_images"])[0][:64]
    step, per_example = torch_learners.make_step(kind, torch.tensor(images / 255.0,
                                                                     dtype=torch.float32))

    def run_learner():
      for _ in range(opts["learner_steps"]):
        step()
      return opts["learner_steps"] * 64 * per_example, per_example
    run_learner()  # warm-up
    return run_learner
  torch.manual_seed(0)
  model = torch_learners.vanilla_cnn(len(FACTOR_SIZES), 1)
  if kind == "forward":
    images = _data(opts["cache_dir"], "test", opts["eval_images"])[0][:256]
    batch = torch.tensor(images / 255.0, dtype=torch.float32)
    model.eval()

    def run_forward():
      for _ in range(FORWARD_BATCHES):
        model(batch).detach().cpu().numpy()  # as their evaluation loop calls it
      return FORWARD_BATCHES * 256, None
    run_forward()  # warm-up
    return run_forward
  if kind == "eval":
    images, factors, _ = _data(opts["cache_dir"], "test", opts["eval_images"])
    np.savez(os.path.join(opts["cache_dir"], "weights.npz"),
             **{k: v.numpy() for k, v in model.state_dict().items()})
    loader = torch.utils.data.DataLoader(_torch_dataset(images, factors), batch_size=256,
                                         shuffle=True)
    grid = np.stack(np.unravel_index(np.arange(np.prod(FACTOR_SIZES)), FACTOR_SIZES), -1)
    variance = (grid / (np.asarray(FACTOR_SIZES) - 1)).var(0)
    model.eval()

    def run():
      predictions, targets = [], []
      for image_batch, target_batch in loader:
        predictions.append(model(torch.tensor(image_batch.numpy())).detach().cpu().numpy())
        targets.append(target_batch.numpy())
      mse = ((np.vstack(predictions) - np.vstack(targets)) ** 2).mean(0)
      return len(images), (1 - mse / variance).tolist()
    return run

  images, factors, _ = _data(opts["cache_dir"], "train", opts["train_images"])
  loader = torch.utils.data.DataLoader(_torch_dataset(images, factors), batch_size=64,
                                       shuffle=True, drop_last=True)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
  batches = iter(())
  fixed = next(iter(loader))

  def step(image_batch, target_batch):
    loss = torch.nn.functional.mse_loss(model(image_batch), target_batch.float())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

  def run():
    nonlocal batches
    for _ in range(opts["steps"]):
      if kind == "fixed":
        step(*fixed)
        continue
      batch = next(batches, None)
      if batch is None:
        batches = iter(loader)
        batch = next(batches)
      step(*batch)
    return opts["steps"] * 64, None

  run()  # warm-up
  return run


# --- gsgen ------------------------------------------------------------------------------------

def _gsgen_worker(kind: str, opts: dict):
  from gsgen import xla  # pylint: disable=g-import-not-at-top
  xla.configure()  # gsgen's XLA CPU option, as its command lines set it
  if kind.split(":")[0] in LEARNERS:
    import train_throughput  # pylint: disable=g-import-not-at-top  (benchmarks/ is on sys.path)
    learner, batches = kind.split(":")
    source = train_throughput.make_source(DATASET, "procedural", opts["data_dir"])
    train = train_throughput.build("cnn", source, 64, learner=learner,
                                   fixed_batch=batches == "fixed")
    steps = opts["learner_steps"]
    per_example = train(steps) / (steps * 64)  # warm-up; images a step / examples a step
    return lambda: (train(steps), per_example)
  if kind in ("stored", "rendered", "fixed"):
    import train_throughput  # pylint: disable=g-import-not-at-top  (benchmarks/ is on sys.path)
    name = "procedural:stored" if kind == "stored" else "procedural"
    source = train_throughput.make_source(DATASET, name, opts["data_dir"], grid=opts["grid"])
    train = train_throughput.build("cnn", source, 64, fixed_batch=kind == "fixed")
    train(opts["steps"])  # warm-up
    return lambda: (train(opts["steps"]), None)

  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from gsgen import evaluate, input_pipeline, learners, sharding, split_data, splits  # pylint: disable=g-import-not-at-top,g-multiple-import
  from gsgen import steps as steps_lib  # pylint: disable=g-import-not-at-top
  from gsgen import train as train_lib  # pylint: disable=g-import-not-at-top
  from gsgen.configs import benchmark  # pylint: disable=g-import-not-at-top
  from gsgen.datasets import procedural  # pylint: disable=g-import-not-at-top
  from gsgen.weights import start  # pylint: disable=g-import-not-at-top
  config = benchmark.get_config(f"dataset={DATASET},split={SPLIT},model=cnn,preset=paper")
  stage = learners.stages(learners.get("regression"), config)[0]
  source = split_data.make(DATASET, SPLIT, "procedural")
  mesh = sharding.make_mesh()
  graphdef, state, _ = train_lib.create_state(config, stage, source.spec, mesh, nnx.Rngs(0))
  held = nnx.merge(graphdef, state)  # (model, optimizer)
  model = held[0]
  start.copy_into(model, _weights_from_torch(os.path.join(opts["cache_dir"], "weights.npz")),
                  source="the PyTorch worker's VanillaCNN")
  model.eval()  # inference mode, as the engine's predict sets it
  graphdef, state = nnx.split(held)
  images, _, flat = _data(opts["cache_dir"], "test", opts["eval_images"])
  names = source.spec.factor_names
  # The model alone, float32 images in, predictions out: the forward-alone and
  # evaluate_model variants time the same program.
  forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)[0](x))

  if kind == "forward":
    batch = np.ascontiguousarray(images[:256].transpose(0, 2, 3, 1)) / np.float32(255.0)

    def run():
      for _ in range(FORWARD_BATCHES):
        np.asarray(forward(state, batch))  # read back each batch, as evaluate_model does
      return FORWARD_BATCHES * 256, None
  elif kind == "evaluate_model":
    row = np.full(source.spec.num_images, -1, np.int64)
    row[flat] = np.arange(len(flat))

    def run():
      scores = evaluate.evaluate_model(
          lambda x: forward(state, x), DATASET, SPLIT,
          lambda idx: images[row[idx]].reshape(len(idx), 64, 64, 1), indices=flat,
          batch_size=256, progress=False)
      return len(flat), [scores[f"rsquared_{n}"] for n in names]
  else:
    predict = steps_lib.make_predict(graphdef, stage.learner, source.spec,
                                     procedural.renderer(source.spec))
    # The test records are the test part's grid points in ascending flat order.
    positions = np.searchsorted(splits.indices(DATASET, SPLIT, "test"), flat)

    def run():
      acc = evaluate.Accumulator(source.spec, SPLIT, part="test")
      scores = evaluate.run(lambda b: predict(state, b),
                            lambda pos: input_pipeline.eval_batch(source, "test", pos, mesh),
                            source.test.factor_indices, positions, 256, acc)
      return len(positions), [scores[f"rsquared_{n}"] for n in names]
  run()  # warm-up: compilation
  return run


def _weights_from_torch(path: str) -> dict:
  """The VanillaCNN's state dict as gsgen CNN variables (HWIO kernels, [in, out] dense)."""
  arrays = np.load(path)
  names = {"0": "convs/0", "2": "convs/1", "4": "convs/2", "6": "convs/3", "8": "last",
           "11": "head"}
  out = {}
  for key, value in arrays.items():
    layer, kind = key.split(".")
    if kind == "weight":
      value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
    out[f"{names[layer]}/{'kernel' if kind == 'weight' else 'bias'}"] = value
  return out


# --- the alternating driver -------------------------------------------------------------------

def _serve(conn, side: str, kind: str, opts: dict):
  """A worker: set up, say so, then one timed repeat per request."""
  try:
    run = (_torch_worker if side == "torch" else _gsgen_worker)(kind, opts)
    conn.send(("ready", None))
    while conn.recv() == "go":
      start = time.perf_counter()
      images, extra = run()
      conn.send((images / (time.perf_counter() - start), extra))
  except Exception as e:  # pylint: disable=broad-except
    conn.send(("error", f"{side}/{kind}: {type(e).__name__}: {e}"))
    raise


def _start(side, kind, opts):
  ctx = multiprocessing.get_context("spawn")
  parent, child = ctx.Pipe()
  proc = ctx.Process(target=_serve, args=(child, side, kind, opts), daemon=True)
  proc.start()
  status, message = parent.recv()
  if status == "error":
    raise RuntimeError(message)
  return proc, parent


def _alternate(variants: list, opts: dict, repeats: int) -> dict:
  """``{label: (rates, extra of the last repeat)}`` and the 1-minute loads seen."""
  workers = {label: _start(side, kind, opts) for label, side, kind in variants}
  rates = {label: [] for label in workers}
  extra, loads = {}, []
  for _ in range(repeats):
    for label, (_, conn) in workers.items():
      loads.append(os.getloadavg()[0])
      conn.send("go")
      rate, extra[label] = conn.recv()
      if rate == "error":
        raise RuntimeError(extra[label])
      rates[label].append(rate)
  for proc, conn in workers.values():
    conn.send("stop")
    proc.join()
  return {label: (rates[label], extra[label]) for label in rates}, loads


def _report(title, results, loads, ratios, per_example=False):
  """Prints each variant's median rate and the ratios; with ``per_example``, the rates are
  also divided by the images each example encodes (the ratios then compare examples/s)."""
  print(title)
  for label, (rates, extra) in results.items():
    line = (f"  {label:<64} {np.median(rates):>8,.0f} images/s  "
            f"[{min(rates):,.0f} - {max(rates):,.0f}]")
    if per_example:
      line += f"  {np.median(rates) / extra:>6,.0f} examples/s ({extra:g} images each)"
    print(line)
  for name, (num, den) in ratios.items():
    scale = results[den][1] / results[num][1] if per_example else 1.0
    unit = "examples/s" if per_example else ""
    print(f"  ratio gsgen / PyTorch, {name:<36} "
          f"{scale * np.median(results[num][0]) / np.median(results[den][0]):.2f} {unit}")
  print(f"  1-minute load average during the repeats: {min(loads):.2f} - {max(loads):.2f} "
        f"(median {np.median(loads):.2f}) on {os.cpu_count()} cores")


def main():
  from gsgen import xla  # pylint: disable=g-import-not-at-top
  xla.restart_with_huge_pages()  # as gsgen's command lines do; the workers of both sides inherit it
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--parts", default="train,learners,eval")
  parser.add_argument("--repeats", type=int, default=7, help="training repeats per variant")
  parser.add_argument("--steps", type=int, default=60, help="training steps per repeat")
  parser.add_argument("--learner_steps", type=int, default=20,
                      help="representation-learner steps per repeat")
  parser.add_argument("--train_images", type=int, default=20_000,
                      help="in-memory training images of the PyTorch DataLoader")
  parser.add_argument("--eval_images", type=int, default=0,
                      help="seeded subset of the test split to evaluate (0: all 497,280)")
  parser.add_argument("--eval_repeats", type=int, default=2)
  parser.add_argument("--grid", default="3,6,10,32,32",
                      help="grid of the prepared dataset (procedural:stored)")
  parser.add_argument("--data_dir", default="/tmp/gsgen_benchmark_tfds")
  parser.add_argument("--cache_dir", default="/tmp/gsgen_vs_pytorch")
  args = parser.parse_args()
  opts = {k: getattr(args, k) for k in ("steps", "learner_steps", "train_images", "eval_images", "grid",
                                          "data_dir", "cache_dir")}
  import importlib.metadata  # pylint: disable=g-import-not-at-top
  version = importlib.metadata.version
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; "
        f"load averages {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start")
  print(f"torch {version('torch')}, jax {version('jax')}, python {sys.version.split()[0]}; "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} (gsgen's workers add "
        f"gsgen.xla.DEFAULT unless it names the option); "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r} (both sides)")
  parts = args.parts.split(",")
  if "train" in parts:
    results, loads = _alternate([
        ("PyTorch VanillaCNN, their DataLoader over in-memory arrays", "torch", "loader"),
        ("PyTorch VanillaCNN, one fixed batch", "torch", "fixed"),
        (f"gsgen CNN, prepared dataset (procedural:stored, grid {args.grid})", "gsgen",
         "stored"),
        ("gsgen CNN, rendered inside the step (procedural)", "gsgen", "rendered"),
        ("gsgen CNN, one fixed batch", "gsgen", "fixed")], opts, args.repeats)
    labels = list(results)
    _report(f"training, dSprites, batch 64, Adam; {args.repeats} alternating repeats of "
            f"{args.steps} steps (median, [min - max]):", results, loads, {
                "fixed batch / fixed batch": (labels[4], labels[1]),
                "prepared / DataLoader": (labels[2], labels[0]),
                "rendered in the step / DataLoader": (labels[3], labels[0])})
  if "learners" in parts:
    _data(args.cache_dir, "train", args.train_images)  # rendered once, before the workers
    names = {"beta_vae": "beta-VAE", "pcl": "PCL"}
    for learner in LEARNERS:
      results, loads = _alternate([
          (f"PyTorch {names[learner]}, one fixed batch", "torch", learner),
          (f"gsgen {names[learner]}, one fixed batch", "gsgen", f"{learner}:fixed"),
          (f"gsgen {names[learner]}, rendered inside the step (procedural)", "gsgen",
           f"{learner}:rendered")], opts, args.repeats)
      labels = list(results)
      _report(f"training {names[learner]}, dSprites, batch 64 examples, Adam; {args.repeats} "
              f"alternating repeats of {args.learner_steps} steps (median, [min - max]):",
              results, loads, {"fixed batch / fixed batch": (labels[1], labels[0]),
                               "rendered in the step / fixed batch": (labels[2], labels[0])},
              per_example=True)
  if "eval" in parts:
    _data(args.cache_dir, "test", args.eval_images)  # rendered once, before the workers
    results, loads = _alternate([
        ("PyTorch, their Dataset + DataLoader (256), VanillaCNN, R²", "torch", "eval"),
        ("gsgen evaluate_model, the same in-memory images", "gsgen", "evaluate_model"),
        ("gsgen engine, rendered inside the jitted predict", "gsgen", "engine"),
        ("PyTorch VanillaCNN forward alone, one fixed batch of 256", "torch", "forward"),
        ("gsgen CNN forward alone, one fixed batch of 256", "gsgen", "forward")],
        opts, args.eval_repeats)
    labels = list(results)
    count = len(_data(args.cache_dir, "test", args.eval_images)[2])
    _report(f"evaluation, dSprites {SPLIT} test split ({count:,} images), batch 256, the same "
            f"weights; {args.eval_repeats} alternating repeats (forward alone: "
            f"{FORWARD_BATCHES} batches):", results, loads, {
                "evaluate_model / their loop": (labels[1], labels[0]),
                "engine / their loop": (labels[2], labels[0]),
                "forward alone / forward alone": (labels[4], labels[3]),
                "forward alone / their loop": (labels[4], labels[0])})
    r2 = np.asarray([results[label][1] for label in labels[:3]])
    print(f"  R² per factor, PyTorch: {np.round(r2[0], 5).tolist()}")
    print(f"  largest difference of gsgen's R² from PyTorch's: {np.abs(r2[1:] - r2[0]).max():.1e}")


if __name__ == "__main__":
  main()
