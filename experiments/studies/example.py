"""A study of your own: a file anywhere, given to the runner by its path.

  python -m gsgen.study run --study=experiments/studies/example.py --workdir=workdirs/example
  python -m gsgen.study list --study=experiments/studies/example.py

The named studies (``--study=smoke``, ``cpu``, ``paper``) ship inside the package, in
gsgen/study/studies/; copy one of them to start a study of your own. This one compares the
MLP and the CNN on the extrapolation split of dSprites, two seeds, 1,000 steps each.
"""

STUDY = {
    "name": "example",
    "preset": "cpu",
    "datasets": ("dsprites",),
    "splits": ("extrapolation",),
    "seeds": (0, 1),
    "overrides": {"train.steps": 1000, "eval.max_examples": 4_000},
    "approaches": {
        "mlp": {"model": "mlp"},
        "cnn": {"model": "cnn"},
    },
}
