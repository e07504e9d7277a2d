"""The one training engine: every learner and stage of a run, then the test-split scores.

Synopsis::

  from gsgen import train
  from gsgen.configs import benchmark
  config = benchmark.get_config("dataset=dsprites,split=random,model=cnn,preset=cpu")
  results = train.train_and_evaluate(config, "/tmp/gsgen_run")
  results["test"]["rsquared_x_position"]

A learner (`gsgen.learners`) says what to optimise; this module does the rest the same way for
all of them: a pure step over (state, batch, step) jitted over the device mesh with the state
donated, the step number folded into the run's key, orbax checkpoints and a metric log, the
stages one after the other with global step numbers, and the final evaluation. Everything
that decides the next batch or random draw is a function of the step, so a rerun in the same
workdir resumes exactly where the last one stopped. SIGTERM or SIGINT (`gsgen.workdir`) ends
the current step, saves it (with the finite-state check of every save) and raises
`gsgen.workdir.Interrupted`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from gsgen import checkpoint as checkpoint_lib
from gsgen import evaluate
from gsgen import input_pipeline
from gsgen import learners
from gsgen import metric_log
from gsgen import models
from gsgen import optim
from gsgen import progress
from gsgen import results as results_lib
from gsgen import sharding
from gsgen import split_data
from gsgen import steps as steps_lib
from gsgen import validate
from gsgen import workdir as workdir_lib
from gsgen.datasets import procedural
from gsgen.learners import learner as learner_lib
from gsgen.weights import start as start_lib


def create_state(config, stage: learner_lib.Stage, spec, mesh, rngs: nnx.Rngs,
                 previous: nnx.Module | None = None, first_stage: bool = True,
                 weights_file=None):
  """A stage's fresh model and optimizer, with what carries over from ``previous``.

  Args:
    config, stage, spec, mesh, rngs: the run's config, the stage, its grid, the device mesh
      and the initialisation of the fresh model.
    previous: the previous stage's trained model (None when resuming inside this stage,
      whose checkpoint then holds everything).
    first_stage: whether ``config.init_from`` applies (it loads the first stage's model).
    weights_file: the identified ``config.init_from.weights`` (`gsgen.validate.config`
      returns it), so the file's header is not read again.

  Returns:
    ``(graphdef, replicated state, init record)``; the record says what ``config.init_from``
    loaded (first stage only).
  """
  model = stage.learner.build(config.model, config.model_kwargs, spec, rngs,
                              **stage.learner.build_options(stage.options))
  record = {}
  if first_stage:
    record = start_lib.apply(model, config.init_from, config.model, weights_file)
  elif previous is not None and stage.carry is not None:
    stage.carry(model, previous)
  optimizer = nnx.Optimizer(model, optim.build(stage.optim, stage.steps),
                            wrt=optim.trainable(stage.optim))
  graphdef, state = nnx.split((model, optimizer))
  return graphdef, sharding.replicate(state, mesh), record


@dataclasses.dataclass(frozen=True)
class _Run:
  """What a run resolved once and each of its stages uses.

  Attributes:
    config: the run's config.
    source: its data (`gsgen.split_data.SplitData`).
    render: the procedural renderer used inside the step, or None for stored images.
    mesh: the device mesh.
    ckpt: the run's checkpointer.
    logs: one metric log per seed.
    run_id: the run's identity (`gsgen.results.identity`), saved with each checkpoint.
    seeds: the seeds trained, one replica each.
    stop: the stop request of SIGTERM/SIGINT (`gsgen.workdir.stop_signals`).
    total: the global step count of all stages.
  """
  config: ml_collections.ConfigDict
  source: split_data.SplitData
  render: Callable | None
  mesh: jax.sharding.Mesh
  ckpt: checkpoint_lib.Checkpointer
  logs: tuple[metric_log.MetricLog, ...]
  run_id: dict
  seeds: tuple[int, ...]
  stop: workdir_lib.StopRequest
  total: int


def _saved(state) -> dict:
  pure = nnx.to_pure_dict(state)
  return {"model": pure[0], "opt": pure[1]}


def _restore(ckpt, step, state):
  pure, _ = ckpt.restore(step, like=_saved(state))
  nnx.replace_by_pure_dict(state, {0: pure["model"], 1: pure["opt"]})
  return state


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_after_step: int | None = None,
                       accept_config_changes: bool = False) -> dict | None:
  """Trains the stages of ``config.learner`` on the train part and scores the test part.

  Args:
    config: a config from `gsgen.configs` (every field set).
    workdir: where checkpoints, metrics and results go; an existing run there resumes, and
      a finished one returns its results.
    stop_after_step: save a checkpoint and return None once this global step is reached,
      before the end (for time-limited jobs; rerun to continue).
    accept_config_changes: resume even though training fields of the config changed (a
      lower learning rate after a divergence, more steps); the changes are recorded.

  Returns:
    The results dict also written to ``workdir/results.json``, or None when stopped early.

  Raises:
    gsgen.workdir.Interrupted: SIGTERM or SIGINT arrived; the step it names is saved.
    FloatingPointError: the loss or the parameters became NaN or infinite; the message
      names the step and the last good checkpoint.
    ValueError: a bad config field (before anything is created), or a workdir holding a
      different run or config (`gsgen.results.ConfigChangedError`).
    gsgen.workdir.RunLockedError: another live process holds the workdir.
  """
  # The run's data first: everything after checks against it and takes it, never the names.
  source = split_data.make(config.dataset, config.split, config.data.source,
                           data_dir=config.data.data_dir,
                           grid_sizes=tuple(config.data.grid) or None)
  weights_file = validate.config(config, jax.device_count(), source.spec)
  learner = learners.get(config.learner)
  stages = learners.stages(learner, config)
  if stages[-1].learner.predict is None:
    raise ValueError(f"the last stage ({stages[-1].name}) of learner {learner.name!r} does not "
                     f"predict factors; add a readout stage.")
  primary = jax.process_index() == 0
  if not primary:
    with workdir_lib.stop_signals() as stop:
      return _train_and_evaluate(config, workdir, stop_after_step, stages, source, [], stop,
                                 weights_file)
  with workdir_lib.lock(workdir), workdir_lib.stop_signals() as stop:
    validate.writable(workdir_lib.checkpoints(workdir))
    finished = results_lib.finished(workdir, config)
    if finished is not None:
      return finished
    ckpt = checkpoint_lib.Checkpointer(workdir_lib.checkpoints(workdir), 1)
    start = ckpt.latest_step() or 0
    held = ckpt.read_meta(start)["identity"] if start else None
    ckpt.close()
    run_id = results_lib.identity(config, source)
    if held is not None and held != run_id:
      raise ValueError(f"{workdir} holds a run of {held}, not {run_id}; use another workdir.")
    changes = results_lib.check_config(workdir, config, start, accept_config_changes)
    return _train_and_evaluate(config, workdir, stop_after_step, stages, source, changes,
                               stop, weights_file)


def _train_and_evaluate(config, workdir, stop_after_step, stages, source, changes, stop,
                        weights_file):
  spec, run_id = source.spec, results_lib.identity(config, source)
  seeds = [config.seed + i for i in range(config.num_seeds)]
  stacked = len(seeds) > 1  # replicas with a leading seed axis, trained by one program
  mesh = sharding.make_mesh()
  render = procedural.renderer(spec) if source.renders_on_device else None

  ckpt = checkpoint_lib.Checkpointer(workdir_lib.checkpoints(workdir),
                                     config.train.checkpoint_every)
  start = ckpt.latest_step() or 0
  # Each replica of a several-seed run logs and writes into its own seed folder.
  folders = [workdir_lib.seed_dir(workdir, s) if stacked else workdir for s in seeds]
  logs = [metric_log.MetricLog(folder, start) for folder in folders]
  bounds = np.cumsum([0] + [s.steps for s in stages]).tolist()
  total = bounds[-1]
  last = total if stop_after_step is None else min(total, stop_after_step)
  keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
  previous, init_records = None, [{}] * len(seeds)
  run = _Run(config, source, render, mesh, ckpt, tuple(logs), run_id, tuple(seeds), stop,
             total)
  trained = False
  try:
    for k, stage in enumerate(stages):
      first, end = bounds[k], bounds[k + 1]
      if start > end:
        continue  # a later stage's checkpoint holds everything needed
      built = [create_state(config, stage, spec, mesh,
                            nnx.Rngs(s if k == 0 else jax.random.fold_in(keys[i], 1 << 20 | k)),
                            previous[i] if previous and start <= first else None,
                            first_stage=k == 0, weights_file=weights_file)
               for i, s in enumerate(seeds)]
      graphdef = built[0][0]
      state = _stack([b[1] for b in built]) if stacked else built[0][1]
      if k == 0:
        init_records = [b[2] for b in built]
      if start > first:
        found = ckpt.read_meta(start).get("stage")
        if found != stage.name:
          raise ValueError(f"{workdir}: the checkpoint at step {start} is of stage {found!r}, "
                           f"not {stage.name!r}; the run's stages changed. Use another "
                           f"workdir.")
        state = _restore(ckpt, start, state)
      stage_keys = jax.vmap(lambda key: jax.random.fold_in(key, k))(keys)  # pylint: disable=cell-var-from-loop
      state = _run_stage(run, stage, graphdef, state, steps=(max(start, first), min(end, last)),
                         offset=first, key=stage_keys if stacked else stage_keys[0])
      if last < end:
        return None
      previous = [nnx.merge(graphdef, _unstack(state, i) if stacked else state)[0]
                  for i in range(len(seeds))]
    trained = True
  finally:
    ckpt.close()
    if not trained or last < total:
      for log in logs:
        log.close()
  stop.training_saved(total, total)

  predict = steps_lib.make_predict(graphdef, stages[-1].learner, spec, render)
  per_seed = []
  for i, s in enumerate(seeds):
    one = copy.deepcopy(config)  # replica i's config is that of its single-seed run
    one.seed, one.num_seeds = s, 1
    replica = _unstack(state, i) if stacked else state
    test = _evaluate(one, source, lambda batch: predict(replica, batch), mesh)  # pylint: disable=cell-var-from-loop
    logs[i].scalars("test", test, total)
    logs[i].close()
    files = {}
    if stages[-1].learner.on_end is not None and jax.process_index() == 0:
      files = stages[-1].learner.on_end(previous[i], source, folders[i], one) or {}
    per_seed.append(results_lib.of_seed(
        one, source, stages, test=test, files=files, rows=logs[i].rows,
        num_params=models.num_params(previous[i]),
        devices=f"{jax.device_count()} x {jax.devices()[0].device_kind}",
        init_from=init_records[i], config_changes=changes, seeds_in_one_program=len(seeds)))
  results = results_lib.of_run(config, source, per_seed, changes)
  if jax.process_index() == 0:
    results_lib.write(workdir, results)
  return results


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _unstack(tree, i):
  return jax.tree.map(lambda x: x[i], tree)


def step_number(step: int, mesh):
  """A stage's step number as its training step takes it.

  On one device it is a host scalar, which travels with the call: a ``jnp.int32`` would be
  an op of its own, which on a CPU waits for the previous step and keeps the next batch from
  being read meanwhile. On a CPU with several devices (a test's fake ones) it stays that op:
  the wait keeps two steps from running at once, whose collectives XLA's CPU backend can
  leave waiting on each other until it aborts.
  """
  if mesh.devices.size > 1 and jax.default_backend() == "cpu":
    return jnp.int32(step)
  return np.int32(step)


def _run_stage(run: _Run, stage, graphdef, state, *, steps, offset, key):
  """Runs global steps ``steps[0] + 1 .. steps[1]`` of a stage; returns the state.

  A stop request (`gsgen.workdir.StopRequest`) is read after every step: that step is then
  logged and saved as the last one would be, and `gsgen.workdir.Interrupted` raised.
  """
  config, source, render, mesh = run.config, run.source, run.render, run.mesh
  ckpt, logs, seeds, stop = run.ckpt, run.logs, run.seeds, run.stop
  begin, stop_step = steps
  if begin >= stop_step:
    return state
  train_step = steps_lib.make_train_step(graphdef, stage, source.spec, render, mesh, key)
  state_loss = steps_lib.make_state_loss(graphdef, stage, source.spec, render, key)
  batch_size = config.train.batch_size
  sampler_options = stage.learner.sampler_options(stage.options)
  if len(seeds) == 1:
    batches = input_pipeline.TrainBatches(source, batch_size, seeds[0], mesh,
                                          sampler=stage.learner.sampler,
                                          sampler_options=sampler_options)
  else:
    batches = input_pipeline.SeedBatches(source, batch_size, seeds, mesh,
                                         sampler=stage.learner.sampler,
                                         sampler_options=sampler_options)
  pending, tick, tick_step = [], time.perf_counter(), begin
  bar = progress.bar(total=stop_step - offset, initial=begin - offset, unit="step",
                     dynamic_ncols=True,
                     desc=f"{source.spec.name}/{config.split}/{config.model}/{stage.name}/"
                          f"seed{'s' if len(seeds) > 1 else ''}"
                          f"{'-'.join(map(str, sorted({seeds[0], seeds[-1]})))}",
                     disable=not config.progress or jax.process_index() != 0)
  for step in range(begin + 1, stop_step + 1):
    local = step - offset  # the stage's own step count: its data order and key
    batch = batches.get(local - 1)
    state, metrics = train_step(state, batch, step_number(local, mesh))
    pending.append((step, metrics))
    bar.update(1)
    stopping = stop.signum is not None  # read once: a signal may arrive at any moment
    last = step == stop_step or stopping
    if step % config.train.log_every == 0 or last or ckpt.should_save(step):
      fetched = _check_finite(jax.device_get(pending), ckpt, seeds)
      now = time.perf_counter()
      rate = (step - tick_step) * batches.images_per_step / max(now - tick, 1e-9)
      for i, log in enumerate(logs):
        values = {k: np.asarray(v).reshape(-1)[i] for k, v in fetched[-1][1].items()}
        log.write({"step": step, "stage": stage.name,
                   **{k: float(v) for k, v in values.items()}, "images_per_second": rate})
      bar.set_postfix(loss=f"{logs[0].last['loss']:.4g}",
                      img_s=f"{rate * len(seeds):,.0f}")
      pending, tick, tick_step = [], now, step
    if ckpt.should_save(step) or last:
      loss = np.asarray(state_loss(state, batch, step_number(local, mesh))).reshape(-1)
      if not np.all(np.isfinite(loss)):
        i = int(np.flatnonzero(~np.isfinite(loss))[0])
        raise FloatingPointError(_divergence(
            f"the loss of the updated state ({loss[i]}{_of_seed(seeds, i)})", step, ckpt))
      ckpt.save(step, _saved(state), {"step": step, "seed": config.seed,
                                      "identity": run.run_id, "stage": stage.name})
    if stopping:
      bar.close()
      stop.check(step, run.total)
  bar.close()
  return state


def _of_seed(seeds, i) -> str:
  return f", seed {seeds[i]}" if len(seeds) > 1 else ""


def _check_finite(fetched, ckpt, seeds):
  """Stops (before any save) once a loss or the updated parameters are not finite."""
  for step, metrics in fetched:
    for name, what in (("loss", "loss"), ("param_norm", "parameters after the update")):
      values = np.asarray(metrics[name], np.float64).reshape(-1)
      if not np.all(np.isfinite(values)):
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        raise FloatingPointError(_divergence(
            f"non-finite {what} ({values[i]}{_of_seed(seeds, i)})", step, ckpt))
  return fetched


def _divergence(what: str, step: int, ckpt) -> str:
  """The message of a diverged run: what, where, and how to resume from the last good save."""
  ckpt.wait()
  good = ckpt.latest_step()
  resume = (f"the last good checkpoint is step {good}: rerun with the same --workdir, a "
            f"lower --config.optim.learning_rate and --accept_config_changes to resume "
            f"from it" if good else
            "no checkpoint was saved: rerun with a lower --config.optim.learning_rate")
  return (f"{what} at step {step}; nothing from it was saved. Lower the learning rate or "
          f"check the data; {resume}.")


def _evaluate(config, source, predict, mesh) -> dict:
  """Scores the test part (a seeded subset if ``config.eval.max_examples`` is set)."""
  n = len(source.test)
  positions = np.arange(n)
  if config.eval.max_examples and config.eval.max_examples < n:
    rng = np.random.RandomState(config.seed)
    positions = np.sort(rng.choice(n, config.eval.max_examples, replace=False))
  benchmark_files = source.data.kind == "benchmark"
  acc = evaluate.Accumulator(source.spec, source.split, part="test",
                             membership="given" if benchmark_files else "rules",
                             train_mean=source.train_mean)
  result = evaluate.run(
      predict, lambda pos: input_pipeline.eval_batch(source, "test", pos, mesh),
      source.test.factor_indices, positions, config.eval.batch_size, acc,
      progress=config.progress and jax.process_index() == 0, desc="evaluate test split")
  result["evaluated"] = ("all" if len(positions) == n
                         else f"random subset of {len(positions)} of {n}")
  if benchmark_files:
    result["split_disagreements"] = source.disagreeing_records
  return result
