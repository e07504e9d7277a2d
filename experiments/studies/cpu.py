"""The cpu study: every dataset and split with the approaches that fit a 2-core CPU budget.

  python -m gsgen.study run --study=cpu --workdir=workdirs/study --jobs=2
  python -m gsgen.study report --workdir=workdirs/study

One seed, procedural data, the cpu preset with half its steps for the supervised models (the
representation learner keeps its own cpu budget: 1,000 steps of 64 pairs and a 1,000-step
readout). About two hours on two cores. The numbers show the benchmark's behaviour on a small
budget, not the paper's: the paper study has that.
"""

STUDY = {
    "name": "cpu",
    "preset": "cpu",
    "datasets": ("dsprites", "shapes3d", "mpi3d"),
    "splits": ("random", "composition", "interpolation", "extrapolation"),
    "seeds": (0,),
    "overrides": {"eval.max_examples": 10_000},
    "approaches": {
        "mlp": {"model": "mlp", "overrides": {"train.steps": 1500}},
        "cnn": {"model": "cnn", "overrides": {"train.steps": 1500}},
        "pcl": {"learner": "pcl", "group": "weakly_supervised"},
    },
}
