"""The images a user hands to `gsgen.evaluate.evaluate_model`, checked before they are scored.

Synopsis::

  from gsgen import user_images
  fetch = user_images.source(images, spec)           # the whole grid's images by flat index
  fetch = user_images.source(test_images, spec, image_indices=test_flat_indices)
  batch = fetch(flat_indices)                        # checked uint8 [n, H, W, C]

Images scored against the wrong targets give plausible, wrong numbers, so every way of
passing them is checked: the count (a test part's array is not the grid's), the dtype, the
shape and the value range, each refusal naming the fix.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from gsgen import specs as specs_lib


def check(batch, spec: specs_lib.DatasetSpec) -> np.ndarray:
  """Refuses images that would be scored wrongly, with the fix in the message.

  Args:
    batch: what the ``images`` source returned for a batch.
    spec: the dataset.

  Returns:
    ``batch`` as a numpy uint8 array ``[batch, H, W, C]``.

  Raises:
    ValueError: wrong dtype or shape, or a binary image array stored as 0/1 (the official
      dSprites ``imgs``), which would be scored as near-black images.
  """
  batch = np.asarray(batch)
  want = spec.image_shape
  if batch.dtype != np.uint8:
    raise ValueError(f"images must be uint8 in 0..255, got {batch.dtype}; convert them, e.g. "
                     f"(images * 255).astype(np.uint8) for floats in [0, 1].")
  if batch.ndim == 3 and want[-1] == 1 and batch.shape[1:] == want[:2]:
    raise ValueError(f"images of {spec.name} need a channel axis: got {batch.shape[1:]}, "
                     f"expected {want}; pass images[..., None].")
  if batch.shape[1:] != want:
    raise ValueError(f"images of {spec.name} must have shape [batch, {', '.join(map(str, want))}]"
                     f"; got {batch.shape}.")
  if want[-1] == 1 and batch.max(initial=0) == 1:
    raise ValueError(f"{spec.name} images hold only the values 0 and 1 (as the official "
                     f"dSprites array does) and would be scored as near-black images; scale "
                     f"them to 0/255 (images * 255) or read them with gsgen.datasets, which "
                     f"does.")
  return batch


def source(images, spec: specs_lib.DatasetSpec,
                 image_indices: np.ndarray | None = None) -> Callable[[np.ndarray], np.ndarray]:
  """``flat_indices -> checked uint8 images`` from what a user passes as ``images``.

  Args:
    images: the whole grid's images by flat index (array-like), the images of the flat
      indices ``image_indices`` in that order (array-like), or a function ``flat_indices ->
      images``.
    spec: the dataset.
    image_indices: with an array of some points' images (a test part's, say): their flat
      indices.

  Returns:
    The function; each call checks the count, dtype and shape of what it returns.

  Raises:
    ValueError: an array whose length is neither the grid's nor that of ``image_indices``
      (naming both, and how to pass a part's images); later calls: a function returning the
      wrong number of images, or a flat index missing from ``image_indices``.
  """
  if callable(images):
    if image_indices is not None:
      raise ValueError("image_indices goes with an array of images, not a function; the "
                       "function itself maps flat indices to images.")
    get, what = images, "the images function"
  elif image_indices is None:
    if len(images) != spec.num_images:
      raise ValueError(
          f"images holds {len(images):,} images, the {spec.name} grid {spec.num_images:,}: "
          f"pass the whole grid's images by flat index, or an array of some points' images "
          f"with their flat indices, e.g. for the test part's images in ascending flat order: "
          f"image_indices=gsgen.splits.indices(dataset, split, 'test').")
    get, what = (lambda idx: images[idx]), "images[flat_indices]"
  else:
    flat = np.asarray(image_indices, np.int64)
    if len(flat) != len(images):
      raise ValueError(f"images holds {len(images):,} images but image_indices "
                       f"{len(flat):,} flat indices; they must pair up one to one.")
    order = np.argsort(flat, kind="stable")

    def get(idx):
      at = np.minimum(np.searchsorted(flat, idx, sorter=order), len(flat) - 1)
      found = order[at]
      if np.any(flat[found] != idx):
        missing = np.asarray(idx)[flat[found] != idx][0]
        raise ValueError(f"flat index {missing} is to be scored but is not among "
                         f"image_indices; pass the images of every point of the part.")
      return images[found]
    what = "images[positions of image_indices]"

  def fetch(idx):
    batch = get(idx)
    if len(batch) != len(idx):
      raise ValueError(f"{what} returned {len(batch)} images for {len(idx)} flat indices; "
                       f"it must return one image per index, in their order.")
    return check(batch, spec)

  return fetch
