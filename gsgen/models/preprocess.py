"""The input mapping of the ImageNet-born families: resize, grey to RGB, normalise.

`prepare` turns benchmark images in [0, 1] into what a pretrained stem expects, inside the
model, so those models keep the common contract (docs/models.md, "Inputs of the pretrained
families").

Synopsis::

  import jax.numpy as jnp
  from gsgen.models import preprocess
  x = jnp.full((2, 64, 64, 1), 0.5)
  preprocess.prepare(x, resolution=128, normalization="bit").shape     # (2, 128, 128, 3)
  preprocess.prepare(x, resolution=0, normalization="imagenet").shape  # (2, 64, 64, 3)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# ImageNet statistics of torchvision's preprocessing, per RGB channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# name -> (mean, std) per RGB channel: BiT maps [0, 1] to [-1, 1], torchvision standardises.
NORMALIZATIONS = {
    "bit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}


def check_resolution(resolution: int) -> None:
  """Raises a ValueError unless ``resolution`` is 0 (keep the input size) or at least 32."""
  if isinstance(resolution, bool) or not isinstance(resolution, int) or (
      resolution != 0 and resolution < 32):
    raise ValueError(f"resolution must be 0 (keep the input size) or an integer >= 32 (the "
                     f"stem and four stages halve it five times); got {resolution!r}.")


def prepare(x: jax.Array, *, resolution: int, normalization: str) -> jax.Array:
  """Resizes, repeats grey to RGB and normalises a batch of images.

  Args:
    x: images ``[batch, height, width, 1 or 3]`` in [0, 1].
    resolution: side the images are resized to (bilinear, half-pixel centres, as
      ``torch.nn.functional.interpolate(..., align_corners=False)``); 0 keeps their size.
    normalization: a key of `NORMALIZATIONS`.

  Returns:
    ``[batch, resolution, resolution, 3]`` float32, normalised.
  """
  if resolution and tuple(x.shape[1:3]) != (resolution, resolution):
    # Resized before the repeat: a grey image costs a third of an RGB one.
    x = jax.image.resize(x, (x.shape[0], resolution, resolution, x.shape[3]), "bilinear",
                         antialias=False)
  if x.shape[-1] == 1:
    x = jnp.broadcast_to(x, x.shape[:-1] + (3,))
  mean, std = NORMALIZATIONS[normalization]
  return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)
