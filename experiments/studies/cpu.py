"""The cpu study: every dataset and split with the approaches that fit a 2-core CPU budget.

  python -m gsgen.study run --study=cpu --workdir=workdirs/study --jobs=2
  python -m gsgen.study report --workdir=workdirs/study

One seed, the cpu preset with fewer steps; procedural data. The numbers show the benchmark's
behaviour on a small budget, not the paper's (see the paper study for that).
"""

STUDY = {
    "name": "cpu",
    "preset": "cpu",
    "datasets": ("dsprites", "shapes3d", "mpi3d"),
    "splits": ("random", "composition", "interpolation", "extrapolation"),
    "seeds": (0,),
    "overrides": {"train.steps": 1500, "eval.max_examples": 10_000},
    "approaches": {
        "mlp": {"model": "mlp"},
        "cnn": {"model": "cnn"},
    },
}
