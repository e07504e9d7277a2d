"""The paper's study: every approach on 3 datasets x 4 splits, 10 seeds, the paper preset.

  python -m gsgen.study run --study=paper --workdir=/shared/gsgen_paper --executor=ray \
      --address=auto --gpus_per_cell=0.25

On procedural data by default; set "source" to the official data (prepared under data/tfds)
to compare with the published numbers.
"""

STUDY = {
    "name": "paper",
    "preset": "paper",
    "datasets": ("dsprites", "shapes3d", "mpi3d"),
    "splits": ("random", "composition", "interpolation", "extrapolation"),
    "seeds": tuple(range(10)),
    "source": "procedural",
    "approaches": {
        "mlp": {"model": "mlp"},
        "cnn": {"model": "cnn"},
        "coordconv": {"model": "coordconv"},
        "set_encoder": {"model": "set_encoder"},
        "equivariant_cnn": {"model": "equivariant_cnn"},
        "spatial_transformer": {"model": "spatial_transformer"},
        "resnet50": {"model": "resnet50"},
        "resnet101": {"model": "resnet101"},
        "densenet121": {"model": "densenet121"},
    },
}
