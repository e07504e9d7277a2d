"""Pictures of a trained VAE, written into its workdir at the end of a run: test images above
their reconstructions, and latent traversals.

Losses say how well a VAE reconstructs on average; the pictures say what it reconstructs
(a blurred sprite, the wrong shape, an empty canvas) and which latents it uses: a traversal
sweeps one latent across the range its posterior means take on test images, the others held
at one test image's code, and a latent whose row does not change is unused (its KL, printed
beside the row, is near 0).

Synopsis::

  from gsgen.learners import pictures
  files = pictures.write(vae_model, source, workdir, config)
  # {'reconstructions': 'reconstructions.png', 'traversals': 'traversals.png'}
  grid = pictures.traversals(vae_model, code, low, high, steps=9)   # [z, 9, 64, 64, C]
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gsgen.datasets import images as images_lib
from gsgen.learners import vae
from gsgen.models import latent

SHOWN = 8  # test images shown with their reconstructions
RANGE_IMAGES = 256  # test images whose posterior means set each latent's range
STEPS = 9  # values per traversal row
# Below this many representation steps a VAE has not left its initialisation: the titles say so.
FEW_STEPS = 100


def test_images(source, count: int, seed: int) -> np.ndarray:
  """``count`` test images (a seeded choice, in test-record order) as uint8 ``[n, H, W, C]``."""
  n = len(source.test)
  pos = np.sort(np.random.RandomState(seed).choice(n, min(count, n), replace=False))
  return images_lib.of_records(source.test, pos)


def _jitted(model: nnx.Module, method):
  graphdef, state = nnx.split(model)
  fn = jax.jit(lambda s, x: method(nnx.merge(graphdef, s), x))
  return lambda x: np.asarray(fn(state, jnp.asarray(x, jnp.float32)))


def traversals(model: latent.VAE, code: np.ndarray, low: np.ndarray, high: np.ndarray,
               steps: int = STEPS) -> np.ndarray:
  """Decoded codes where one latent at a time sweeps ``linspace(low[i], high[i], steps)``.

  Args:
    model: the VAE.
    code: ``[z]`` the code the other latents keep.
    low, high: ``[z]`` each latent's range.
    steps: values per latent.

  Returns:
    Pixel probabilities ``[z, steps, H, W, C]`` in [0, 1].
  """
  z = len(code)
  codes = np.repeat(np.asarray(code, np.float32)[None, None], z, 0).repeat(steps, 1)
  for i in range(z):
    codes[i, :, i] = np.linspace(low[i], high[i], steps)
  decode = _jitted(model, lambda m, c: jax.nn.sigmoid(m.decode(c)))
  out = decode(codes.reshape(z * steps, z))
  return out.reshape((z, steps) + out.shape[1:])


def _mosaic(rows: np.ndarray, gap: int = 2) -> np.ndarray:
  """``[r, c, H, W, C]`` images in [0, 1] -> one ``[r*(H+gap), c*(W+gap), C]`` picture."""
  r, c, h, w, ch = rows.shape
  out = np.ones((r, h + gap, c, w + gap, ch), np.float32)
  out[:, :h, :, :w] = rows.transpose(0, 2, 1, 3, 4)
  return out.reshape(r * (h + gap), c * (w + gap), ch)[:-gap, :-gap]


def _save(picture: np.ndarray, labels: list[str], title: str, path: str) -> None:
  # Imported here: matplotlib adds about a second to the start of every run otherwise.
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  fig = figure.Figure(figsize=(picture.shape[1] / 60 + 1.6, picture.shape[0] / 60 + 0.6),
                      dpi=100)
  ax = fig.add_subplot()
  if picture.shape[-1] == 1:
    ax.imshow(picture[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
  else:
    ax.imshow(np.clip(picture, 0.0, 1.0), interpolation="nearest")
  row = picture.shape[0] / len(labels)
  ax.set_yticks([row * (i + 0.5) for i in range(len(labels))], labels)
  ax.set_xticks([])
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)


def write(model: latent.VAE, source, workdir: str, config) -> dict[str, str]:
  """Writes ``reconstructions.png`` and ``traversals.png`` into ``workdir``.

  Args:
    model: the trained VAE.
    source: the run's `gsgen.split_data.SplitData` (its test records are drawn).
    workdir: the run's folder.
    config: the run's config (the seed chooses the images; names go into the titles).

  Returns:
    ``{"reconstructions": file name, "traversals": file name}``.
  """
  model.eval()
  images = test_images(source, RANGE_IMAGES, config.seed).astype(np.float32) / 255.0
  posterior = _jitted(model, lambda m, x: jnp.concatenate(m.posterior(x), -1))(images)
  z = model.encoding_size
  mean, logvar = posterior[:, :z], posterior[:, z:]
  recon = _jitted(model, lambda m, c: jax.nn.sigmoid(m.decode(c)))(mean[:SHOWN])
  name = (f"{source.spec.name}/{config.split}/{config.learner}/seed{config.seed}, "
          f"{config.train.steps:,} steps")
  if config.train.steps < FEW_STEPS:  # the smoke preset's 4: say why the pictures are noise
    name += " (too few to learn: noise)"
  files = {"reconstructions": "reconstructions.png", "traversals": "traversals.png"}
  shown = len(recon)
  _save(_mosaic(np.stack([images[:shown], recon])), ["test", "recon."],
        f"{name}: test images and reconstructions", os.path.join(workdir,
                                                                files["reconstructions"]))
  kl = np.asarray(vae.gaussian_kl(mean[:, :, None], logvar[:, :, None])).mean(0)
  grid = traversals(model, mean[0], mean.min(0), mean.max(0))
  _save(_mosaic(grid), [f"z{i} KL {kl[i]:.2f}" for i in range(z)],
        f"{name}: each latent swept over its test range", os.path.join(
            workdir, files["traversals"]))
  return files
