"""``results.json``: what a run reports, read back; the one rule for when two configs make the
same run; the printed table.

Synopsis::

  from gsgen import results
  done = results.read(workdir)                      # the dict, or None before the run ends
  print(results.format_table(done))
  results.finished(workdir, config)                 # its results if ``config`` made them
  results.differences(saved, config, ignore=results.NOT_TRAINING)   # {field: (old, new)}

Contract: a results dict names its run (`identity`) and holds its test scores, what training
recorded and the config; a run of several seeds holds one such dict per seed under
``per_seed``, each also written to its seed's folder (`gsgen.workdir.seed_dir`). Configs are
compared field by field as JSON reads them back (tuples as lists), except for the prefixes of
one named exception list:

- `NOT_RESULTS`, for "this run is finished" (the trainer and the study): only what changes
  no number of the results;
- `NOT_TRAINING`, for resuming (`check_config`): also how the run is scored, logged and
  saved, and where its prepared data lives, none of which changes what is trained.
"""

from __future__ import annotations

import json
import os
import time

from gsgen import workdir as workdir_lib

# Fields that change no number of the results: the progress bars.
NOT_RESULTS = ("progress",)
# Fields that change nothing that is trained: the above, how the final scores are computed,
# logging and checkpoint frequency, and where prepared data lives.
NOT_TRAINING = NOT_RESULTS + ("eval.", "train.log_every", "train.checkpoint_every",
                              "data.data_dir")
_MISSING = object()


class ConfigChangedError(ValueError):
  """A resumed run's config differs from the one it was started with."""


def flatten(config: dict, prefix: str = "") -> dict:
  """``{"optim": {"name": "adam"}}`` -> ``{"optim.name": "adam"}`` (lists for tuples)."""
  out = {}
  for key, value in config.items():
    if isinstance(value, dict):
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
  return out


def _plain(config) -> dict:
  """A ConfigDict or dict as JSON gives it back."""
  return json.loads(json.dumps(config.to_dict() if hasattr(config, "to_dict") else config))


def differences(saved, new, ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
  """The fields in which two configs differ, with their ``(saved, new)`` values.

  Args:
    saved, new: configs (ConfigDicts or dicts, as read from JSON or not).
    ignore: field-name prefixes left out (`NOT_RESULTS`, `NOT_TRAINING`).

  Returns:
    ``{dotted field: (saved value, new value)}``, sorted by field; a field that one side
    lacks differs, shown as None there.
  """
  a, b = flatten(_plain(saved)), flatten(_plain(new))
  out = {}
  for k in sorted(set(a) | set(b)):
    if a.get(k, _MISSING) != b.get(k, _MISSING) and not k.startswith(ignore):
      out[k] = (a.get(k), b.get(k))
  return out


def identity(config, source) -> dict:
  """What every result names: dataset, data source, split, model, learner and seed(s)."""
  out = {"dataset": source.spec.name, "data_source": source.data_source,
         "source": source.data.name, "split": source.split, "model": config.model,
         "learner": config.learner, "seed": config.seed, "grid": list(source.spec.sizes)}
  if config.num_seeds > 1:
    out["num_seeds"] = config.num_seeds
  return out


def of_seed(config, source, stages, *, test: dict, files: dict, rows: list[dict],
            num_params: int, devices: str, init_from: dict, config_changes: list,
            seeds_in_one_program: int) -> dict:
  """The results of one seed, from what its run recorded.

  Args:
    config: the seed's own single-seed config.
    source, stages: the run's data source and stages.
    test: the test scores (`gsgen.evaluate`).
    files: files the last stage's learner wrote at the end.
    rows: the seed's metric-log rows (`gsgen.metric_log.MetricLog.rows`).
    num_params, devices: the model's parameter count; ``"<n> x <device kind>"``.
    init_from: what ``config.init_from`` loaded (`gsgen.weights.start.apply`).
    config_changes: the accepted config changes (`check_config`).
    seeds_in_one_program: seeds trained as replicas of one program (recorded when > 1).
  """
  last = rows[-1] if rows else {}
  train = {"final_loss": last.get("loss"), "images_per_second": last.get("images_per_second"),
           "final_metrics": _final_metrics(rows, stages), "num_params": num_params,
           "devices": devices}
  if seeds_in_one_program > 1:
    train["seeds_in_one_program"] = seeds_in_one_program
  total = sum(s.steps for s in stages)
  return {**identity(config, source), "steps": total,
          "stages": {st.name: st.steps for st in stages}, "test": test, "files": files,
          "train": train, "init_from": init_from, "config_changes": config_changes,
          "config": config.to_dict()}


def of_run(config, source, per_seed: list[dict], config_changes: list) -> dict:
  """The run's results: the one seed's (`of_seed`), or every seed's under ``per_seed``."""
  if config.num_seeds == 1:
    return {**per_seed[0], "config": config.to_dict()}
  seeds = [config.seed + i for i in range(config.num_seeds)]
  return {**identity(config, source), "steps": per_seed[0]["steps"], "seeds": seeds,
          "per_seed": {str(s): r for s, r in zip(seeds, per_seed)},
          "config_changes": config_changes, "config": config.to_dict()}


def _final_metrics(rows: list[dict], stages) -> dict:
  """The last logged metrics of every stage (the learner's loss terms among them)."""
  out = {}
  for row in rows:
    if row.get("stage") in {s.name for s in stages}:
      out[row["stage"]] = {k: v for k, v in row.items() if k not in ("stage",)}
  return out


def write(path: str, results: dict) -> None:
  """Writes ``results.json`` of the run in ``path`` (each seed's first, in its folder)."""
  for seed, one in results.get("per_seed", {}).items():
    folder = workdir_lib.seed_dir(path, int(seed))
    os.makedirs(folder, exist_ok=True)
    workdir_lib.write_json(workdir_lib.results_path(folder), one)
  workdir_lib.write_json(workdir_lib.results_path(path), results)


def read(path: str) -> dict | None:
  """The results of the run in ``path``, or None when it has none (yet)."""
  results_file = workdir_lib.results_path(path)
  if not os.path.isfile(results_file):
    return None
  with open(results_file) as f:
    return json.load(f)


def finished(path: str, config) -> dict | None:
  """The results in ``path`` if ``config`` made them (up to `NOT_RESULTS`), else None."""
  results = read(path)
  if results is None or differences(results["config"], config, ignore=NOT_RESULTS):
    return None
  return results


def check_config(path: str, config, step: int, accept_changes: bool = False) -> list[dict]:
  """Compares ``config`` with the one the run in ``path`` was started with, and records it.

  Args:
    path: the workdir.
    config: the config of this process.
    step: the step the run resumes from (0: nothing trained yet, any config is fine).
    accept_changes: accept training fields that differ (a lower learning rate after a
      divergence, more steps) and record them.

  Returns:
    Every accepted change so far (``config_changes.json``): dicts with ``step``, ``time``
    and ``fields`` (``{name: [old, new]}``).

  Raises:
    ConfigChangedError: a field outside `NOT_TRAINING` differs and ``accept_changes`` is
      False.
  """
  changes_file = workdir_lib.changes_path(path)
  history = []
  if os.path.isfile(changes_file):
    with open(changes_file) as f:
      history = json.load(f)
  new = config.to_dict()
  if step and os.path.isfile(workdir_lib.config_path(path)):
    diff = differences(workdir_lib.read_config(path), new, ignore=NOT_TRAINING)
    if diff and not accept_changes:
      shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in
                        ((k, *v) for k, v in diff.items()))
      raise ConfigChangedError(
          f"{path} holds a run trained to step {step} with another config ({shown}). Rerun "
          f"with the saved config, use another --workdir, or pass --accept_config_changes to "
          f"continue this run with the new values (recorded in its results).")
    if diff:
      history.append({"step": step, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "fields": {k: list(v) for k, v in diff.items()}})
      workdir_lib.write_json(changes_file, history)
  workdir_lib.write_json(workdir_lib.config_path(path), new)
  return history


def format_table(results: dict) -> str:
  """A per-factor R² table of one seed's results, headed by the run's identity."""
  test = results["test"]
  names = [k[len("rsquared_"):] for k in test
           if k.startswith("rsquared_") and k != "rsquared_noncategorical"]
  head = (f"{results['dataset']} ({results['data_source']}), split {results['split']}, "
          f"model {results['model']}, learner {results['learner']}, seed {results['seed']}, "
          f"{results['steps']} steps, test examples {test['num_examples']:,} "
          f"({test['evaluated']})")
  lines = [head, f"  {'factor':<18} {'R2':>8} {'MSE':>10}"]
  for name in names:
    lines.append(f"  {name:<18} {_fmt(test['rsquared_' + name]):>8} "
                 f"{_fmt(test['mse_' + name], 5):>10}")
  lines.append(f"  {'mean':<18} {_fmt(test['rsquared']):>8} {_fmt(test['mse'], 5):>10}")
  lines.append(f"  {'non-categorical':<18} {_fmt(test['rsquared_noncategorical']):>8}")
  if test.get("split_disagreements"):
    lines.append(f"  note: {test['split_disagreements']:,} records of the benchmark split files "
                 f"disagree with the split rules; all were scored as the files assign them.")
  return "\n".join(lines)


def _fmt(x, digits=3) -> str:
  return "n/a" if x is None else f"{x:.{digits}f}"
