"""Training and evaluation batches for one dataset, split and data source.

Synopsis::

  from gsgen import input_pipeline, sharding, split_data
  source = split_data.make("dsprites", "extrapolation", "procedural")
  mesh = sharding.make_mesh()
  batches = input_pipeline.TrainBatches(source, global_batch_size=64, seed=0, mesh=mesh)
  batch = batches.get(step=0)          # {"factor_indices": int32 [64, 5]} as global arrays
  batch = input_pipeline.eval_batch(source, "test", np.arange(256), mesh)

Contract: training batches hold train-split points only and are a pure function of (seed,
step), so a resumed run sees exactly the batches of an uninterrupted one and a checkpoint
needs only the step. A procedural source's batch carries factor indices (rendered on the
device); a stored source's also carries uint8 images read on the host. Pair samplers give
``[B, 2, F]`` (``[B, 3, F]`` with PCL's negative). Targets are `specs.DatasetSpec.targets`.
The order, the pair shapes and the two kinds of source: docs/datasets.md, "Batches".
"""

from __future__ import annotations

import concurrent.futures

import numpy as np

from gsgen import pairs
from gsgen import sharding
from gsgen import split_data

# The current epoch's permutation (two while a batch straddles epochs): recomputing a
# permutation of ~10^6 records every step would dominate a small model's step.
_EPOCHS: dict[tuple[int, int, int], np.ndarray] = {}


def train_positions(step: int, global_batch_size: int, num_train: int,
                    seed: int) -> np.ndarray:
  """Positions into the training records of the global batch at ``step``.

  Epoch e is ``RandomState([seed, e]).permutation(num_train)``; a batch that straddles two
  epochs takes the end of one and the start of the next.
  """
  start = step * global_batch_size
  out = np.empty(global_batch_size, np.int64)
  filled = 0
  while filled < global_batch_size:
    epoch, offset = divmod(start + filled, num_train)
    key = (seed, epoch, num_train)
    if key not in _EPOCHS:
      if len(_EPOCHS) > 1:
        _EPOCHS.clear()
      _EPOCHS[key] = np.random.RandomState([seed, epoch]).permutation(num_train)
    take = min(global_batch_size - filled, num_train - offset)
    out[filled:filled + take] = _EPOCHS[key][offset:offset + take]
    filled += take
  return out


class TrainBatches:
  """Training batches by step, as global arrays sharded over the mesh's ``data`` axis."""

  def __init__(self, source: split_data.SplitData, global_batch_size: int, seed: int, mesh,
               prefetch: int = 2, sampler: str = "single", sampler_options: dict | None = None):
    """Args:
      source: the run's `gsgen.split_data.SplitData`.
      global_batch_size: examples (points or pairs) per step over all devices.
      seed: the data order's seed.
      mesh: the device mesh.
      prefetch: host batches read ahead by a thread (stored sources only).
      sampler: what an example is: ``single`` or a pair sampler (`gsgen.pairs.SAMPLERS`).
      sampler_options: the pair sampler's options (`gsgen.pairs.PairSampler`).
    """
    if sampler not in pairs.SAMPLERS:
      raise ValueError(f"unknown sampler {sampler!r}; choose one of "
                       f"{', '.join(pairs.SAMPLERS)}.")
    sharding.check_batch_size(global_batch_size, mesh)
    if len(source.train) == 0:
      raise ValueError(f"the {source.split} split of {source.spec.name} has no training "
                       f"points on grid {source.spec.sizes}.")
    self.source, self.batch_size, self.seed, self.mesh = source, global_batch_size, seed, mesh
    self.sampler = sampler
    self.images_per_step = global_batch_size * pairs.images_per_example(sampler)
    self._pairs = (pairs.PairSampler(source.spec, source.train.factor_indices, sampler,
                                     sampler_options, train_rows=source.train_rows)
                   if sampler in pairs.PAIR_SAMPLERS else None)
    self._rows = sharding.process_rows(global_batch_size)
    self._pool = (None if source.renders_on_device
                  else concurrent.futures.ThreadPoolExecutor(1))
    self._prefetch = prefetch
    self._pending: dict[int, concurrent.futures.Future] = {}

  def host_batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's rows of the batch at ``step`` as numpy arrays: ``factor_indices``
    ``[B, F]`` (pairs: ``[B, 2, F]``; with negatives ``[B, 3, F]``) and, for stored sources,
    uint8 ``image``."""
    train = self.source.train
    pos = train_positions(step, self.batch_size, len(train), self.seed)
    if self._pairs is not None:
      # The whole global batch's pairs, then this process's rows: the same pairs for any
      # number of processes.
      pos = self._pairs.examples(pos, train.factor_indices[pos], step, self.seed)
    pos = pos[self._rows]
    batch = {"factor_indices": train.factor_indices[pos].astype(np.int32)}
    if train.images is not None:
      batch["image"] = train.images[pos]
    return batch

  def get(self, step: int) -> dict:
    """The global batch at ``step`` (reads ahead the next ones for stored sources)."""
    if self._pool is None:
      return sharding.global_batch(self.host_batch(step), self.mesh)
    for s in range(step, step + self._prefetch + 1):
      if s not in self._pending:
        self._pending[s] = self._pool.submit(self.host_batch, s)
    for s in [s for s in self._pending if s < step]:
      del self._pending[s]
    return sharding.global_batch(self._pending.pop(step).result(), self.mesh)


class SeedBatches:
  """The batches of several seeds' runs at once, for replicas trained by one program.

  Replica i sees exactly the batches of a single-seed run with seed ``seeds[i]``; the global
  batch is ``[seeds, batch, ...]``, sharded over the mesh on its batch axis.
  """

  def __init__(self, source: split_data.SplitData, global_batch_size: int, seeds, mesh,
               sampler: str = "single", sampler_options: dict | None = None):
    self._runs = [TrainBatches(source, global_batch_size, s, mesh, sampler=sampler,
                               sampler_options=sampler_options) for s in seeds]
    self.mesh = mesh
    self.images_per_step = self._runs[0].images_per_step  # per replica

  def get(self, step: int) -> dict:
    """The stacked global batch at ``step``."""
    host = [run.host_batch(step) for run in self._runs]
    return sharding.global_batch({k: np.stack([h[k] for h in host]) for k in host[0]},
                                 self.mesh, axis=1)


def eval_batch(source: split_data.SplitData, part: str, positions: np.ndarray, mesh) -> dict:
  """The global evaluation batch of ``positions`` into a part; this process reads its rows.

  Args:
    source: the run's `gsgen.split_data.SplitData`.
    part: ``test`` or ``train``.
    positions: ``[batch]`` positions into the part's records.
    mesh: the device mesh.

  Returns:
    ``{"factor_indices": int32 [batch, F]}`` plus ``"image"`` (uint8) for stored sources, as
    global arrays sharded over the mesh.
  """
  recs = source.test if part == "test" else source.train
  pos = np.asarray(positions)[sharding.process_rows(len(positions))]
  batch = {"factor_indices": recs.factor_indices[pos].astype(np.int32)}
  if recs.images is not None:
    batch["image"] = recs.images[pos]
  return sharding.global_batch(batch, mesh)
