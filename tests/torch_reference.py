"""Reference networks in PyTorch (torchvision, timm) with random weights, written in every
published weight format, for the parity tests.

torchvision's wheels on PyPI are built against CUDA PyTorch, so with a CPU PyTorch their
compiled operators (detection's nms) do not load and ``import torchvision`` stops while
registering their shapes. The networks are plain Python and need none of them: `torchvision`
declares the two operator schemas that the import registers and imports it again.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

_LIBRARY = None


def torchvision():
  """The torchvision module, importable with a CPU PyTorch (see the module docstring)."""
  global _LIBRARY
  try:
    import torchvision as tv  # pylint: disable=g-import-not-at-top
    return tv
  except RuntimeError as e:
    if "torchvision::nms" not in str(e):
      raise
  for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
    del sys.modules[name]
  _LIBRARY = torch.library.Library("torchvision", "DEF")  # kept alive: it owns the schemas
  for op in ("nms", "qnms"):
    _LIBRARY.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
  import torchvision as tv  # pylint: disable=g-import-not-at-top
  return tv


def timm():
  torchvision()  # timm imports torchvision's feature extraction
  import timm as t  # pylint: disable=g-import-not-at-top
  return t


def build(kind: str, seed: int) -> nn.Module:
  """A reference network with random weights and random normalisation statistics, in eval
  mode, classifier removed (its forward gives the pooled features).

  Args:
    kind: "resnetv2_50x1_bit" / "resnetv2_101x1_bit" (timm's BiT), "resnet50" /
      "resnet101" / "densenet121" (torchvision's).
    seed: torch's seed.
  """
  torch.manual_seed(seed)
  if kind.startswith("resnetv2"):
    model = timm().create_model(kind, pretrained=False)
    model.reset_classifier(0)
  else:
    model = getattr(torchvision().models, kind)()
    if kind.startswith("resnet"):
      model.fc = nn.Identity()
    else:
      model.classifier = nn.Identity()
  generator = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        # Away from the identity, so that a swapped or misplaced vector shows.
        module.weight.uniform_(0.5, 1.5, generator=generator)
        module.bias.uniform_(-0.2, 0.2, generator=generator)
      if isinstance(module, nn.BatchNorm2d):
        module.running_mean.uniform_(-0.2, 0.2, generator=generator)
        module.running_var.uniform_(0.5, 1.5, generator=generator)
  return model.eval()


def state_dict(model: nn.Module, classifier: dict[str, tuple[int, ...]]) -> dict:
  """The model's state dict with a random classifier of the given shapes added back, as
  a published file has one."""
  state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
  for name, shape in classifier.items():
    state[name] = torch.randn(shape)
  return state


def bit_npz_arrays(state: dict) -> dict[str, np.ndarray]:
  """timm's BiT state dict under BiT's .npz names and layout (HWIO convolutions): the inverse
  of timm's ``resnetv2._load_weights``, which `check_bit_npz` runs on the result."""
  def hwio(t):
    a = t.numpy()
    return a.transpose(2, 3, 1, 0) if a.ndim == 4 else a

  out = {"resnet/root_block/standardized_conv2d/kernel": hwio(state["stem.conv.weight"]),
         "resnet/group_norm/gamma": hwio(state["norm.weight"]),
         "resnet/group_norm/beta": hwio(state["norm.bias"]),
         "resnet/head/conv2d/kernel": np.random.default_rng(0).normal(
             size=(1, 1, 2048, 21843)).astype(np.float32) * 0.01,
         "resnet/head/conv2d/bias": np.zeros(21843, np.float32)}
  for name, value in state.items():
    if not name.startswith("stages."):
      continue
    _, i, _, j, layer, param = name.split(".", 5)
    prefix = f"resnet/block{int(i) + 1}/unit{int(j) + 1:02d}"
    if layer == "downsample":
      out[f"{prefix}/a/proj/standardized_conv2d/kernel"] = hwio(value)
    elif layer.startswith("conv"):
      out[f"{prefix}/{'abc'[int(layer[-1]) - 1]}/standardized_conv2d/kernel"] = hwio(value)
    else:
      gamma = "gamma" if param == "weight" else "beta"
      out[f"{prefix}/{'abc'[int(layer[-1]) - 1]}/group_norm/{gamma}"] = hwio(value)
  return out


def check_bit_npz(path: str, kind: str, reference: nn.Module) -> None:
  """Loads the .npz with timm's own BiT loader into a fresh network and asserts that it
  equals ``reference``: the file is a BiT checkpoint as the reference reads one."""
  fresh = timm().create_model(kind, pretrained=False)
  fresh.reset_classifier(0)
  fresh.load_pretrained(path)
  theirs, ours = fresh.state_dict(), reference.state_dict()
  assert set(theirs) == set(ours)
  for k in ours:
    torch.testing.assert_close(theirs[k], ours[k], rtol=0, atol=0)


def old_densenet_names(state: dict) -> dict:
  """torchvision's DenseNet state dict under the names of its released .pth files
  (``denselayer1.norm.1`` for ``denselayer1.norm1``)."""
  out = {}
  for name, value in state.items():
    parts = name.split(".")
    if len(parts) > 3 and parts[2].startswith("denselayer") and parts[3][-1] in "12":
      parts[3:4] = [parts[3][:-1], parts[3][-1]]
    out[".".join(parts)] = value
  return out


def reference_input(images: np.ndarray, resolution: int, normalization: str) -> torch.Tensor:
  """What the reference sees: [0, 1] NHWC images resized with PyTorch, repeated to RGB and
  normalised, NCHW float64."""
  x = torch.from_numpy(np.asarray(images, np.float64)).permute(0, 3, 1, 2)
  if resolution and resolution != x.shape[-1]:
    x = nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear",
                                  align_corners=False)
  if x.shape[1] == 1:
    x = x.repeat(1, 3, 1, 1)
  if normalization == "bit":
    return (x - 0.5) / 0.5
  mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
  std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
  return (x - mean) / std
