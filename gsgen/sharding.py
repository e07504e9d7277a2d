"""Every sharding decision of gsgen: one data-parallel mesh, replicated state, sharded batches.

Synopsis::

  from gsgen import sharding
  mesh = sharding.make_mesh()                         # all devices on one "data" axis
  state = sharding.replicate(state, mesh)             # parameters on every device
  batch = sharding.global_batch(local_batch, mesh)    # this process's rows -> global arrays

Data parallelism is plain ``jax.jit`` over a ``Mesh`` with ``NamedSharding``: parameters are
replicated, the batch is split along its first axis over the ``data`` axis, and XLA inserts
the gradient all-reduce (and global batch-norm statistics) itself. With several processes,
each reads only its own contiguous share of every global batch (`process_rows`).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A one-axis mesh over ``devices`` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, axis: int = 0) -> NamedSharding:
  """Arrays split over the ``data`` axis along their dimension ``axis``."""
  return NamedSharding(mesh, PartitionSpec(*([None] * axis), DATA_AXIS))


def replicate(tree, mesh: Mesh):
  """Places every array of ``tree`` on every device of ``mesh``."""
  return jax.device_put(tree, replicated(mesh))


def check_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """The per-process batch size; raises if the global batch does not split evenly."""
  devices = mesh.devices.size
  if global_batch_size % devices:
    raise ValueError(f"batch size {global_batch_size} must be a multiple of the number of "
                     f"devices ({devices}); set --config.train.batch_size accordingly.")
  return global_batch_size // jax.process_count()


def process_rows(global_batch_size: int) -> slice:
  """The rows of a global batch that this process reads."""
  local = global_batch_size // jax.process_count()
  start = jax.process_index() * local
  return slice(start, start + local)


def global_batch(local_tree, mesh: Mesh, axis: int = 0):
  """Assembles per-process numpy arrays into global arrays sharded on the ``data`` axis.

  Args:
    local_tree: this process's rows (along ``axis``) of every array.
    mesh: the device mesh.
    axis: the batch axis (1 for ``[seeds, batch, ...]``).
  """
  sharding = batch_sharded(mesh, axis)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                      local_tree)
