"""The cpu study: the ten approaches that train on a CPU, dSprites' four splits, three seeds.

  python -m gsgen.study run --study=cpu --workdir=workdirs/study --jobs=2
  python -m gsgen.study report --workdir=workdirs/study        # report.html and the rest

Procedural data, the cpu preset (Adam 1e-3, batch 64), 4,000 test examples a cell. Every
approach runs on every dSprites split with seeds 0-2; the MLP, the CNN and PCL also on
Shapes3D and MPI3D. About two hours on two cores: the budgets are small, and chosen by time
rather than by steps. Each approach gets about the same CPU time per seed (its steps are its
measured images per second on one core times that time, `benchmarks/train_throughput.py`):
about 50 seconds for a supervised model on dSprites (the MLP stops at 1,000 steps, where its
loss has flattened), about 80 for a representation learner (the study's subject) followed by
a 150-step readout, and about 30 on Shapes3D and MPI3D, whose images take longer to render.
The numbers show the benchmark's behaviour on a small budget, not the paper's.
"""

_READOUT = 150

STUDY = {
    "name": "cpu",
    "preset": "cpu",
    "datasets": ("dsprites", "shapes3d", "mpi3d"),
    "splits": ("random", "composition", "interpolation", "extrapolation"),
    "seeds": (0, 1, 2),
    # On a CPU the replicas run one after the other, so this only saves each seed's start
    # and compilation; the cells share compiled programs through the study's cache too.
    "seeds_per_program": 3,
    "overrides": {"eval.max_examples": 4_000},
    "approaches": {
        # Representation learners (steps of pairs for Ada-GVAE and SlowVAE: 128 images).
        "pcl": {"learner": "pcl", "group": "weakly_supervised",
                "overrides": {"train.steps": 120, "readout.steps": _READOUT},
                "dataset_overrides": {"shapes3d": {"train.steps": 60},
                                      "mpi3d": {"train.steps": 60}}},
        "beta_vae": {"learner": "beta_vae", "group": "unsupervised", "datasets": ("dsprites",),
                     "overrides": {"train.steps": 240, "readout.steps": _READOUT}},
        "ada_gvae": {"learner": "ada_gvae", "group": "weakly_supervised",
                     "datasets": ("dsprites",),
                     "overrides": {"train.steps": 120, "readout.steps": _READOUT}},
        "slow_vae": {"learner": "slow_vae", "group": "weakly_supervised",
                     "datasets": ("dsprites",),
                     "overrides": {"train.steps": 120, "readout.steps": _READOUT}},
        # Supervised models.
        "equivariant_cnn": {"model": "equivariant_cnn", "datasets": ("dsprites",),
                            "overrides": {"train.steps": 80}},
        "set_encoder": {"model": "set_encoder", "datasets": ("dsprites",),
                        "overrides": {"train.steps": 80}},
        "spatial_transformer": {"model": "spatial_transformer", "datasets": ("dsprites",),
                                "overrides": {"train.steps": 150}},
        "coordconv": {"model": "coordconv", "datasets": ("dsprites",),
                      "overrides": {"train.steps": 350}},
        "cnn": {"model": "cnn", "overrides": {"train.steps": 500},
                "dataset_overrides": {"shapes3d": {"train.steps": 150},
                                      "mpi3d": {"train.steps": 150}}},
        "mlp": {"model": "mlp", "overrides": {"train.steps": 1000},
                "dataset_overrides": {"shapes3d": {"train.steps": 250},
                                      "mpi3d": {"train.steps": 250}}},
    },
}
