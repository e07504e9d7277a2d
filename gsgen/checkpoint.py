"""Orbax checkpoints of a run: the training state plus a small JSON record.

Synopsis::

  from gsgen import checkpoint
  ckpt = checkpoint.Checkpointer(workdir + "/checkpoints", every_steps=1000)
  step = ckpt.latest_step()                       # None on a fresh run
  state, meta = ckpt.restore(step, like=state)    # arrays placed like `like`
  ckpt.save(step, state, {"step": step, "seed": 0})
  ckpt.close()

The input pipeline's position is a pure function of the step and the seed (see
`gsgen.input_pipeline`), so the JSON record holding them is all a resumed run needs to see
exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves every ``every_steps`` steps (and when forced), keeps the newest few."""

  def __init__(self, directory: str, every_steps: int, max_to_keep: int = 2,
               create: bool = True):
    """Args:
      directory: the checkpoint folder.
      every_steps: save interval in steps.
      max_to_keep: how many checkpoints stay on disk.
      create: create the folder if it is missing (False to read another run's).
    """
    self.every_steps = every_steps
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create),
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()})

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def should_save(self, step: int) -> bool:
    return step % self.every_steps == 0

  def save(self, step: int, state, meta: dict) -> None:
    """Saves ``state`` (a pytree of arrays) and ``meta`` (JSON-serialisable) at ``step``."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, step: int, like):
    """Restores the state at ``step`` with the shapes, dtypes and shardings of ``like``.

    Returns:
      ``(state, meta)``.
    """
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return restored["state"], restored["meta"]

  def read_meta(self, step: int) -> dict:
    """The JSON record saved at ``step`` (cheap: no arrays are read)."""
    return self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))["meta"]

  def read(self, step: int):
    """Restores ``(state, meta)`` at ``step`` as saved, on this process's first device.

    For inspecting or reusing a run: its shapes and dtypes come from the checkpoint, so no
    template is needed, and it reads on any devices, whatever those it was trained on.
    """
    tree = self._manager.item_metadata(step)["state"]
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree,
        is_leaf=lambda m: hasattr(m, "shape") and hasattr(m, "dtype"))
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return restored["state"], restored["meta"]

  def wait(self) -> None:
    """Waits until pending saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
