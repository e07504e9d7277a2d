"""The procedural renderers by dataset name, and chunked rendering into numpy.

Synopsis::

  import numpy as np
  from gsgen.datasets import procedural
  render = procedural.renderer("shapes3d")        # jitted: int [batch, 6] -> uint8 images
  images = procedural.render_numpy("dsprites", np.arange(1000))   # by flat grid index

Each renderer is a pure jitted JAX function of factor indices, so the same code prepares a
dataset on the CPU and renders training batches on the accelerator. Procedural images are a
stand-in for the published datasets, never the same data.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from gsgen.datasets import render_dsprites
from gsgen.datasets import render_mpi3d
from gsgen.datasets import render_shapes3d
from gsgen import specs as specs_lib

RENDERERS: dict[str, Callable] = {
    "dsprites": render_dsprites.render,
    # Recolours the 480 geometries, ray-traced once per process: the same images as
    # render_shapes3d.render at a fraction of the cost.
    "shapes3d": render_shapes3d.render_recoloured,
    "mpi3d": render_mpi3d.render,
}


def renderer(dataset) -> Callable:
  """The jitted renderer ``factor_indices [batch, F] -> uint8 [batch, 64, 64, C]``.

  Args:
    dataset: dataset name or `specs.DatasetSpec` (a reduced grid of a dataset renders with
      that dataset's renderer: its value tables are prefixes of the full ones).
  """
  name = specs_lib.get(dataset).name
  if name not in RENDERERS:
    raise ValueError(f"no renderer for {name!r}; choose one of {', '.join(RENDERERS)}.")
  return RENDERERS[name]


def render_numpy(dataset, flat_indices=None, *, factor_indices=None,
                 batch_size: int = 512) -> np.ndarray:
  """Renders many images in fixed-size jitted chunks into one numpy array.

  The last chunk is padded to ``batch_size`` so every call reuses one compiled program, and
  one chunk stays in flight while the previous one is copied to the host.

  Args:
    dataset: dataset name or `specs.DatasetSpec`.
    flat_indices: ``[n]`` flat grid indices to render, or None when ``factor_indices`` given.
    factor_indices: ``[n, num_factors]`` factor indices (instead of ``flat_indices``).
    batch_size: images per jitted call.

  Returns:
    uint8 array ``[n, 64, 64, C]``.

  Raises:
    ValueError: wrong shape, or an index outside its factor's range.
  """
  spec = specs_lib.get(dataset)
  if (flat_indices is None) == (factor_indices is None):
    raise ValueError("pass exactly one of flat_indices and factor_indices.")
  if flat_indices is not None:
    factor_indices = spec.factor_indices(flat_indices)
  idx = np.asarray(factor_indices)
  sizes = np.asarray(spec.sizes)
  if idx.ndim != 2 or idx.shape[1] != spec.num_factors:
    raise ValueError(f"{spec.name} factor indices must have shape [n, {spec.num_factors}] "
                     f"({', '.join(spec.factor_names)}); got {idx.shape}.")
  if not np.issubdtype(idx.dtype, np.integer):
    raise ValueError(f"{spec.name} factor indices must be integers; got {idx.dtype}.")
  if idx.size and (np.any(idx < 0) or np.any(idx >= sizes)):
    raise ValueError(f"{spec.name} factor indices out of range; sizes are {spec.sizes}.")
  render = renderer(spec)
  out = np.empty((len(idx),) + spec.image_shape, np.uint8)
  pending = None
  for start in range(0, len(idx), batch_size):
    chunk = idx[start:start + batch_size].astype(np.int32)
    chunk = np.pad(chunk, ((0, batch_size - len(chunk)), (0, 0)))
    images = render(chunk)  # dispatched asynchronously
    if pending is not None:
      _copy_into(out, *pending)
    pending = (start, images)
  if pending is not None:
    _copy_into(out, *pending)
  return out


def _copy_into(out, start, images):
  stop = min(start + len(images), len(out))
  out[start:stop] = np.asarray(images)[:stop - start]
