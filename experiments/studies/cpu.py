"""The cpu study: every dataset and split with the approaches that fit a 2-core CPU budget.

  python -m gsgen.study run --study=cpu --workdir=workdirs/study --jobs=2
  python -m gsgen.study report --workdir=workdirs/study

One seed, procedural data, the cpu preset with shorter budgets: the MLP (1,500 steps) and the
CNN (1,000 steps) on every dataset and split, about an hour on two cores. The representation
learners need more per cell on a CPU (PCL reads 128 images a step, several times the CNN's
cost per step), so they are in the paper study and in single runs. The numbers show the benchmark's behaviour on a small budget, not the paper's.
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
        "cnn": {"model": "cnn", "overrides": {"train.steps": 1000}},
    },
}
