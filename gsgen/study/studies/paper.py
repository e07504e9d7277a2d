"""The paper's study: every approach on 3 datasets x 4 splits, 10 seeds, the paper preset.

  python -m gsgen.study run --study=paper --workdir=/shared/gsgen_paper --executor=ray \
      --address=auto --gpus_per_cell=0.25

On procedural data by default; set "source" to the official data (prepared under data/tfds)
to compare with the published numbers. The transfer approaches need their weight files under
data/weights/; without them their cells fail at start, are reported, and the rest runs on.
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
        "beta_vae": {"learner": "beta_vae", "group": "unsupervised"},
        "ada_gvae": {"learner": "ada_gvae", "group": "weakly_supervised"},
        "slow_vae": {"learner": "slow_vae", "group": "weakly_supervised"},
        "pcl": {"learner": "pcl", "group": "weakly_supervised"},
        # Fine-tuned from weight files placed under data/weights/ (see data/README.md).
        "rn50_imagenet21k": {"model": "bit_resnet50", "preset": "transfer", "group": "transfer"},
        "rn101_imagenet21k": {"model": "bit_resnet101", "preset": "transfer",
                              "group": "transfer"},
        "densenet121_imagenet": {"model": "densenet121", "preset": "transfer",
                                 "group": "transfer"},
    },
}
