"""The jitted programs of a stage: its training step, the loss of a saved state, and the
predictor of normalised targets.

Synopsis::

  from gsgen import steps
  step = steps.make_train_step(graphdef, stage, spec, render, mesh, key)
  state, metrics = step(state, batch, np.int32(1))        # the state is donated
  predict = steps.make_predict(graphdef, learner, spec, render)
  targets = predict(state, batch)

Each is a pure function of (state, batch, step) jitted over the device mesh; the learner gives
the loss and the predictor, so every learner runs through the same programs. A key per seed
turns the training step into N replicas trained at once by one vmapped program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from gsgen import optim
from gsgen import sharding
from gsgen.learners import learner as learner_lib


def prepare_batch(batch: dict, spec, render) -> dict:
  """What a learner's loss sees: float images in [0, 1], factor indices and targets.

  Procedural batches carry only factor indices (``[B, F]`` or pairs ``[B, 2, F]``) and are
  rendered here, inside the jitted step, on the device that trains.
  """
  idx = batch["factor_indices"]
  if "image" in batch:
    images = batch["image"]
  else:
    flat = render(idx.reshape(-1, idx.shape[-1]))
    images = flat.reshape(idx.shape[:-1] + flat.shape[1:])
  return {"image": images.astype(jnp.float32) / 255.0, "factor_indices": idx,
          "targets": spec.targets(idx)}


def loss_inputs(batch: dict, step, key, spec, render) -> tuple[dict, jax.Array]:
  """What a stage's loss gets at ``step``: the prepared batch with ``step`` added, and the
  run's key folded with the step. The training step and the saved-state check both use it,
  so a state's loss is checked on exactly the batch and random draws it was trained with."""
  return {**prepare_batch(batch, spec, render), "step": step}, jax.random.fold_in(key, step)


def make_train_step(graphdef, stage: learner_lib.Stage, spec, render, mesh, key):
  """The jitted step of a stage: ``(state, batch, step) -> (state, metrics)``, state donated.

  ``metrics`` holds the loss, the learner's own terms, the norm of the gradient of the
  trainable parameters and the norm of all parameters after the update. With a key per
  seed (``key`` of shape ``[N]``), the step trains N replicas at once: state, batch and
  metrics get a leading seed axis and one vmapped program updates them all.
  """
  wrt = optim.trainable(stage.optim)
  options = stage.learner.loss_options(stage.options)

  def train_step(state, batch, step, key):
    model, optimizer = nnx.merge(graphdef, state)
    optim.train_mode(model, stage.optim)
    batch, rng = loss_inputs(batch, step, key, spec, render)

    def loss_fn(model):
      return stage.learner.loss(model, batch, rng, **options)

    (loss, aux), grads = nnx.value_and_grad(
        loss_fn, argnums=nnx.DiffState(0, wrt), has_aux=True)(model)
    optimizer.update(model, grads)
    if stage.learner.constrain is not None:
      stage.learner.constrain(model)
    metrics = {"loss": loss, **aux, "grad_norm": optax.tree.norm(grads),
               "param_norm": optax.tree.norm(nnx.state(model, nnx.Param))}
    return nnx.state((model, optimizer)), metrics

  replicated = sharding.replicated(mesh)
  return jax.jit(_over_seeds(train_step, key, (0, 0, None, 0)), donate_argnums=0,
                 out_shardings=(replicated, replicated))


def _over_seeds(fn, key, in_axes):
  """``fn`` with ``key`` bound, over a leading seed axis when there is a key per seed.

  On accelerators the replicas are vmapped (one wide program fills the device). On a CPU, a
  vmapped convolution over per-seed kernels becomes a grouped convolution, which XLA's CPU
  backend runs many times slower than plain ones (and so does a ``lax.map`` loop around
  them), so there the replicas are unrolled one after the other inside the same program.
  """
  if key.ndim == 0:
    return lambda *args: fn(*args, key)
  if jax.default_backend() != "cpu":
    return lambda *args: jax.vmap(fn, in_axes=in_axes)(*args, key)

  def unrolled(*args):
    outs = []
    for i in range(key.shape[0]):
      one = [a if ax is None else jax.tree.map(lambda x: x[i], a)  # pylint: disable=cell-var-from-loop
             for a, ax in zip(args, in_axes)]
      outs.append(fn(*one, key[i]))
    return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

  return unrolled


def make_state_loss(graphdef, stage: learner_lib.Stage, spec, render, key):
  """The jitted ``(state, batch, step) -> loss`` of a state as it is, without updating it.

  A state is only saved once the loss it gives is finite: an update can leave every
  parameter finite yet so large that the next loss overflows, and a checkpoint of it would
  fail again on every resume.
  """
  options = stage.learner.loss_options(stage.options)

  def state_loss(state, batch, step, key):
    model, _ = nnx.merge(graphdef, state)
    optim.train_mode(model, stage.optim)
    batch, rng = loss_inputs(batch, step, key, spec, render)
    return stage.learner.loss(model, batch, rng, **options)[0]

  return jax.jit(_over_seeds(state_loss, key, (0, 0, None, 0)))


def make_predict(graphdef, learner: learner_lib.Learner, spec, render):
  """The jitted ``(state, batch) -> normalised targets`` of a learner, in inference mode."""

  def predict(state, batch):
    model, _ = nnx.merge(graphdef, state)
    model.eval()
    return learner.predict(model, prepare_batch(batch, spec, render)["image"])

  return jax.jit(predict)
