"""Parity with the reference implementations: a torchvision or timm network with random
weights, saved in each published format, loaded into gsgen, gives the same outputs.

Each case builds the reference (random convolutions, random normalisation scales, offsets and
running statistics), writes it as BiT's ``.npz``, timm's ``.safetensors`` or torchvision's
``.pth``, loads the file with `gsgen.weights.start.from_weights` into a gsgen model built as
shapes only, and compares, in inference mode, ``encode(x)`` with the reference's pooled features and
``model(x)`` with the same regression head applied to them, on two 64x64 images in [0, 1]
resized to 128 inside the model (the reference resizes with PyTorch and runs in float64). The
BiT ``.npz`` is first read back by timm's own BiT loader, so it is a BiT file as the reference
reads one.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import torch_reference as ref
from gsgen.weights import start
from gsgen import models

RESOLUTION = 128
# model -> (reference network, input channels, normalisation, formats written).
CASES = {
    "bit_resnet50": ("resnetv2_50x1_bit", 1, "bit", ("npz", "safetensors")),
    "bit_resnet101": ("resnetv2_101x1_bit", 3, "bit", ("npz", "safetensors")),
    "densenet121": ("densenet121", 1, "imagenet", ("pth", "pth_released_names",
                                                   "safetensors")),
    "resnet50": ("resnet50", 3, "imagenet", ("pth", "safetensors")),
    "resnet101": ("resnet101", 1, "imagenet", ("pth",)),
}
CLASSIFIERS = {
    "resnetv2_50x1_bit": {"head.fc.weight": (1000, 2048, 1, 1), "head.fc.bias": (1000,)},
    "resnetv2_101x1_bit": {"head.fc.weight": (1000, 2048, 1, 1), "head.fc.bias": (1000,)},
    "densenet121": {"classifier.weight": (1000, 1024), "classifier.bias": (1000,)},
    "resnet50": {"fc.weight": (1000, 2048), "fc.bias": (1000,)},
    "resnet101": {"fc.weight": (1000, 2048), "fc.bias": (1000,)},
}
RTOL = 1e-4


def write_reference(name: str, folder):
  """The reference's float64 features of `images`, and the files it was written to."""
  kind, channels, normalization, formats = CASES[name]
  net = ref.build(kind, seed=sorted(CASES).index(name))
  if kind.startswith("resnetv2"):
    # BiT standardises with epsilon 1e-10 (big_transfer's StdConv2d); timm uses 1e-8.
    for module in net.modules():
      if hasattr(module, "eps") and type(module).__name__ == "StdConv2d":
        module.eps = 1e-10
  state = ref.state_dict(net, CLASSIFIERS[kind])
  files = {}
  for fmt in formats:
    path = str(folder / f"{kind}.{fmt.split('_')[0]}")
    if fmt == "npz":
      np.savez(path, **ref.bit_npz_arrays(state))
      ref.check_bit_npz(path, kind, net)
    elif fmt == "safetensors":
      import safetensors.torch  # pylint: disable=g-import-not-at-top
      safetensors.torch.save_file(state, path)
    elif fmt == "pth":
      torch.save(state, path)
    else:
      path = str(folder / f"{kind}-released.pth")
      torch.save(ref.old_densenet_names(state), path)
    files[fmt] = path
  x = images(name)
  with torch.no_grad():
    features = net.double()(ref.reference_input(x, RESOLUTION, normalization)).numpy()
  return features, files


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """name -> (features, files), each reference built and written once per module."""
  return functools.cache(lambda name: write_reference(name, tmp_path_factory.mktemp(name)))


def images(name: str) -> np.ndarray:
  channels = CASES[name][1]
  return np.random.default_rng(7).uniform(size=(2, 64, 64, channels)).astype(np.float32)


@functools.cache
def forward(name: str):
  """The jitted ``(state, x) -> (encode(x), model(x))`` of a gsgen model built as shapes."""
  model = abstract(name)
  model.eval()  # part of the graph: BatchNorm reads its running statistics
  graphdef, _ = nnx.split(model)
  return jax.jit(lambda state, x: (lambda m: (m.encode(x), m(x)))(nnx.merge(graphdef, state)))


def abstract(name: str) -> nnx.Module:
  return nnx.eval_shape(lambda: models.create(name, 5, in_channels=CASES[name][1],
                                              rngs=nnx.Rngs(0), resolution=RESOLUTION))


def relative_error(ours, theirs) -> float:
  return float(np.max(np.abs(np.asarray(ours, np.float64) - theirs)) / np.max(np.abs(theirs)))


@pytest.mark.parametrize("name,fmt", [(n, f) for n, case in CASES.items() for f in case[3]])
def test_outputs_match_the_reference(reference, name, fmt):
  features, files = reference(name)
  model = abstract(name)
  loaded = start.from_weights(model, files[fmt], name)
  # Every variable but the head's kernel and bias (batch statistics included).
  assert set(start.flat_variables(model)) - set(loaded) == {"head/kernel", "head/bias"}
  np.testing.assert_array_equal(model.head.kernel[...], 0.0)  # the head starts at zero
  kernel = jax.random.normal(jax.random.key(1), model.head.kernel.shape) / 30.0
  model.head.kernel.set_value(kernel)
  model.head.bias.set_value(jnp.arange(5.0) / 5)
  model.eval()
  encoding, output = forward(name)(nnx.state(model), images(name))
  expected = features @ np.asarray(kernel, np.float64) + np.arange(5.0) / 5
  assert relative_error(encoding, features) < RTOL, relative_error(encoding, features)
  assert relative_error(output, expected) < RTOL, relative_error(output, expected)
  print(f"{name} from {fmt}: relative error {relative_error(encoding, features):.2e} "
        f"(features), {relative_error(output, expected):.2e} (outputs)")
