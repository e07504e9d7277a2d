"""Text reports of results: the per-factor R² table a run prints at its end.

Synopsis::

  from gsgen import report
  print(report.format_table(json.load(open(workdir + "/results.json"))))
"""

from __future__ import annotations


def format_table(results: dict) -> str:
  """A per-factor R² table of a results dict, headed by the run's identity."""
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
