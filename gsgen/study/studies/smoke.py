"""The smoke study: four cells of a few seconds each, for tests and for trying the runner.

  python -m gsgen.study run --study=smoke --workdir=workdirs/smoke --jobs=2
"""

STUDY = {
    "name": "smoke",
    "preset": "smoke",
    "datasets": ("dsprites",),
    "splits": ("random", "extrapolation"),
    "seeds": (0,),
    "approaches": {
        "cnn": {"model": "cnn"},
        "mlp": {"model": "mlp"},
    },
}
