"""Plain PyTorch references of the representation learners' training steps, for vs_pytorch.py.

No gsgen code: each model is written as the public reference implementations write it. The
beta-VAE (whose model Ada-GVAE and SlowVAE share) is the VanillaCNN encoder with a ``2 z``
head, the mirrored ``ConvTranspose2d`` decoder, a Bernoulli likelihood (BCE with logits summed
over pixels, mean over images) and the Gaussian KL. PCL follows Hyvarinen and Morioka's code:
features are the encoder's first ``z`` outputs through ``BatchNorm1d``, the logit is
``-sum_i |w1_i h_i(x_t) + w2_i h_i(x_{t-1}) + c_i| + a sum_i h_i(x_t)^2 + m`` with ``w, c`` a
grouped ``Conv1d`` initialised to ``[1, -1]``, ``a >= 0`` and ``m``; a positive pair
``(x_t, x_{t-1})`` and a negative ``(x_t, random image)`` per example in one forward pass.

Synopsis::

  step, images_per_example = torch_learners.make_step("beta_vae", images)  # [64, C, 64, 64]
  step()                                    # one Adam step on the fixed batch
"""

import torch
from torch import nn

Z = 10


def vanilla_cnn(num_outputs: int, channels: int) -> nn.Module:
  """The authors' VanillaCNN: four 4x4 stride-2 convolutions, a 4x4 valid one to 256, ReLUs,
  a linear head."""
  widths = (channels, 32, 32, 64, 64)
  layers = []
  for a, b in zip(widths, widths[1:]):
    layers += [nn.Conv2d(a, b, 4, 2, 1), nn.ReLU(True)]
  layers += [nn.Conv2d(64, 256, 4, 1), nn.ReLU(True), nn.Flatten(), nn.Linear(256, num_outputs)]
  return nn.Sequential(*layers)


def decoder(z: int, channels: int) -> nn.Module:
  """Linear(z -> 256), a 1x1 map, then transposed convolutions up to 64x64 logits."""
  return nn.Sequential(
      nn.Linear(z, 256), nn.Unflatten(1, (256, 1, 1)), nn.ReLU(True),
      nn.ConvTranspose2d(256, 64, 4), nn.ReLU(True),
      nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(True),
      nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(True),
      nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(True),
      nn.ConvTranspose2d(32, channels, 4, 2, 1))


class PCL(nn.Module):
  """Features ``h`` and the logistic regression of a pair of frames ``[n, 2, C, H, W]``."""

  def __init__(self, z: int, channels: int):
    super().__init__()
    self.encoder = vanilla_cnn(2 * z, channels)
    self.norm = nn.BatchNorm1d(z)
    # w1 h(x_t) + w2 h(x_{t-1}) + c, per feature: a grouped convolution over the two frames.
    self.mix = nn.Conv1d(z, z, 2, groups=z)
    with torch.no_grad():
      self.mix.weight.copy_(torch.tensor([1.0, -1.0]).expand(z, 1, 2))
    self.a = nn.Parameter(torch.ones(()))
    self.m = nn.Parameter(torch.zeros(()))
    self.z = z

  def forward(self, pairs: torch.Tensor) -> torch.Tensor:
    n = pairs.shape[0]
    h = self.norm(self.encoder(pairs.flatten(0, 1))[:, :self.z]).view(n, 2, self.z)
    mixed = self.mix(h.transpose(1, 2)).squeeze(-1)
    return -mixed.abs().sum(1) + self.a * (h[:, 0] ** 2).sum(1) + self.m


def make_step(learner: str, images: torch.Tensor, seed: int = 0):
  """One training step of ``learner`` on a fixed batch, and the images it encodes per example.

  Args:
    learner: "beta_vae" or "pcl".
    images: ``[batch, C, 64, 64]`` float images in [0, 1]; PCL pairs each with the next image
      of the batch (as ``x_{t-1}``) and with the one after (the negative).
    seed: parameter initialisation and sampling.

  Returns:
    ``(step, images_per_example)``: ``step()`` runs one Adam (1e-4) step.
  """
  torch.manual_seed(seed)
  batch, channels = images.shape[:2]
  if learner == "beta_vae":
    encoder, dec = vanilla_cnn(2 * Z, channels), decoder(Z, channels)
    params = list(encoder.parameters()) + list(dec.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-4)

    def loss():
      mean, logvar = encoder(images).chunk(2, 1)
      z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
      recon = nn.functional.binary_cross_entropy_with_logits(dec(z), images, reduction="sum")
      kl = 0.5 * (mean ** 2 + logvar.exp() - logvar - 1).sum()
      return (recon + kl) / batch
    clamp = None
    per_example = 1
  elif learner == "pcl":
    model = PCL(Z, channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    previous, negative = images.roll(1, 0), images.roll(2, 0)
    pairs = torch.cat([torch.stack([images, previous], 1), torch.stack([images, negative], 1)])
    labels = torch.cat([torch.ones(batch), torch.zeros(batch)])

    def loss():
      return nn.functional.binary_cross_entropy_with_logits(model(pairs), labels)

    def clamp():
      with torch.no_grad():
        model.a.clamp_(min=0)
    per_example = 4
  else:
    raise ValueError(f"no PyTorch reference for {learner!r}; use beta_vae or pcl.")

  def step():
    value = loss()
    optimizer.zero_grad()
    value.backward()
    optimizer.step()
    if clamp is not None:
      clamp()

  return step, per_example
