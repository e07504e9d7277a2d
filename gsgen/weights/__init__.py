"""A model's weights from elsewhere: published weight files and other runs' checkpoints.

Three modules, from the bytes up:

- `files`: readers of the three formats (numpy ``.npz``, ``.safetensors``, PyTorch ``.pth``),
  recognised from the file's bytes; shapes without the data; numpy alone for the first two.
- `schemes`: which network a file holds (the tensor-name scheme of each family), whether it
  fits a gsgen model, and its tensors in gsgen's layout; ``python -m gsgen.weights inspect``.
- `start`: the starting points of a run (``config.init_from``): another run's checkpoint or a
  weight file, copied into a freshly built model.

Synopsis::

  python -m gsgen.weights inspect data/weights/BiT-M-R50x1.npz

  from gsgen.weights import schemes, start
  found = schemes.identify("data/weights/BiT-M-R50x1.npz")
  loaded = start.from_weights(model, found.path, found.model, found=found)

Importing the package imports none of them, so the readers stay free of JAX.
"""
