"""Images of grid points from any data source, on the host: the one way to get them.

Synopsis::

  from gsgen.datasets import images
  images.of_points(spec, "procedural", [[0, 5, 20, 16, 16]])    # uint8 [1, 64, 64, 1], rendered
  images.of_points(spec, "official", idx, data_dir="data/tfds")  # read from the prepared copy
  images.of_records(split.test, positions)                       # rows of records, either way

Contract: a source that is not stored is rendered, a stored one is read from the dataset
prepared under ``data_dir`` (default `sources.data_dir`), in any process (`fork_safe`). A
benchmark split file keeps the published order, so `of_points` refuses it and `of_records`
reads it by position (docs/datasets.md, "Images of grid points").
"""

from __future__ import annotations

import numpy as np

from gsgen import specs as specs_lib
from gsgen.datasets import fork_safe
from gsgen.datasets import procedural
from gsgen.datasets import records as records_lib
from gsgen.datasets import sources

_MAX_CHUNK = 512


def render(spec: specs_lib.DatasetSpec, factor_indices) -> np.ndarray:
  """Procedural images of ``factor_indices`` (``[n, num_factors]``) as uint8 ``[n, H, W, C]``."""
  idx = np.asarray(factor_indices)
  chunk = min(_MAX_CHUNK, 1 << max(0, int(len(idx) - 1).bit_length()))
  return fork_safe.call(_render, spec, idx, chunk)


def _render(spec, factor_indices, batch_size) -> np.ndarray:
  return procedural.render_numpy(spec, factor_indices=factor_indices, batch_size=batch_size)


def of_points(spec: specs_lib.DatasetSpec, source: str | sources.DataSource, factor_indices,
              data_dir=None) -> np.ndarray:
  """The images of grid points of ``spec`` from ``source``.

  Args:
    spec: the grid the factor indices refer to (a stored source's prepared grid).
    source: a source string or `sources.DataSource`.
    factor_indices: int ``[n, num_factors]``.
    data_dir: where stored sources are prepared (default `sources.data_dir`).

  Returns:
    uint8 ``[n, H, W, C]``.

  Raises:
    ValueError: a benchmark split-file source, or indices off the grid.
    FileNotFoundError: a stored source that is not prepared (the message says how).
  """
  data = sources.parse(spec, source)
  idx = np.asarray(factor_indices)
  if not data.stored:
    return render(spec, idx)
  if data.kind == "benchmark":
    raise ValueError(f"{data.name} holds split files in file order, not the grid; use the "
                     f"official source for images of grid points.")
  # Imported here: procedural images need no TFDS.
  from gsgen import datasets  # pylint: disable=g-import-not-at-top
  recs = datasets.load(data.dataset, data, data_dir=data_dir)
  return np.asarray(recs.images[recs.spec.flat_index(idx)])


def of_records(recs: records_lib.Records, positions) -> np.ndarray:
  """uint8 ``[n, H, W, C]`` images of the records at ``positions``: read when the records
  hold images, rendered from their factor indices when they do not."""
  positions = np.asarray(positions, np.int64)
  if recs.images is not None:
    return np.asarray(recs.images[positions])
  return render(recs.spec, recs.factor_indices[positions])
