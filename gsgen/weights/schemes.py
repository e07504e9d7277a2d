"""Published weight files as they are: which format, which network, whether it fits a gsgen
model, and its tensors in gsgen's layout, with no conversion step for the user.

Users bring the files the networks were published in: BiT's ``.npz`` (``BiT-M-R50x1.npz``),
timm's ``.safetensors`` and torchvision's ``.pth`` state dicts. The format is recognised from
the file's bytes, the network from its tensor names (a naming `Scheme` and the units per
stage), and a file that does not fit (another architecture or depth, missing or extra
tensors, other shapes) is refused with a message naming the file, what was expected and what
was found, before any training. ``.npz`` and ``.safetensors`` are read with numpy alone;
``.pth`` needs PyTorch.

Synopsis::

  python -m gsgen.weights inspect data/weights/BiT-M-R50x1.npz

  from gsgen.weights import schemes
  found = schemes.identify("data/weights/BiT-M-R50x1.npz")
  found.model, found.architecture            # ('bit_resnet50', 'BiT ResNet-50x1')
  schemes.check("data/weights/BiT-M-R50x1.npz", "bit_resnet50")   # raises if it does not fit
  arrays = schemes.load("data/weights/BiT-M-R50x1.npz", "bit_resnet50")
  arrays["stages/0/0/conv_a/kernel"].shape   # (1, 1, 64, 64), gsgen's variable path -> array
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import re
from typing import Callable

import numpy as np

from gsgen.models import densenet
from gsgen.models import preact_resnet
from gsgen.models import resnet
from gsgen.weights import files

FORMATS = files.FORMATS


def _oihw_to_hwio(value: np.ndarray) -> np.ndarray:
  return np.transpose(value, (2, 3, 1, 0)) if value.ndim == 4 else value


@dataclasses.dataclass(frozen=True)
class Scheme:
  """How one family of published files names its tensors.

  Attributes:
    name: short name.
    description: what writes such files, for messages.
    anchor: a tensor name every file of the scheme holds and no other scheme's does.
    units: regex whose two groups are the (stage, unit) of a tensor name.
    first: the numbers of the first stage and of the first unit in names (1 or 0).
    architectures: units per stage -> (the architecture's name, the gsgen model it loads into,
      or None where gsgen has no such model).
    maps: gsgen model -> a function giving file name -> variable path.
    convert: a file tensor -> gsgen's layout (HWIO convolutions).
    ignored: regex of tensor names that are never loaded (classifier, counters).
  """
  name: str
  description: str
  anchor: str
  units: str
  first: tuple[int, int]
  architectures: dict[tuple[int, ...], tuple[str, str | None]]
  maps: dict[str, Callable[[], dict]]
  convert: Callable[[np.ndarray], np.ndarray]
  ignored: str


SCHEMES = (
    Scheme("bit", "BiT's .npz (google-research/big_transfer)",
           "resnet/root_block/standardized_conv2d/kernel", r"^resnet/block(\d+)/unit(\d+)/", (1, 1),
           {(3, 4, 6, 3): ("BiT ResNet-50", "bit_resnet50"),
            (3, 4, 23, 3): ("BiT ResNet-101", "bit_resnet101"),
            (3, 8, 36, 3): ("BiT ResNet-152", None)},
           {"bit_resnet50": lambda: preact_resnet.bit_param_map(50),
            "bit_resnet101": lambda: preact_resnet.bit_param_map(101)},
           np.asarray, r"^resnet/head/"),
    Scheme("timm_bit", "timm's resnetv2_*_bit", "stem.conv.weight",
           r"^stages\.(\d+)\.blocks\.(\d+)\.", (0, 0),
           {(3, 4, 6, 3): ("BiT ResNet-50", "bit_resnet50"),
            (3, 4, 23, 3): ("BiT ResNet-101", "bit_resnet101"),
            (3, 8, 36, 3): ("BiT ResNet-152", None)},
           {"bit_resnet50": lambda: preact_resnet.timm_bit_param_map(50),
            "bit_resnet101": lambda: preact_resnet.timm_bit_param_map(101)},
           _oihw_to_hwio, r"^head\.fc\."),
    Scheme("torchvision_resnet", "torchvision's (or timm's) ResNet", "layer1.0.conv1.weight",
           r"^layer(\d+)\.(\d+)\.", (1, 0),
           {(2, 2, 2, 2): ("ResNet-18", "resnet18"), (3, 4, 6, 3): ("ResNet-50", "resnet50"),
            (3, 4, 23, 3): ("ResNet-101", "resnet101"), (3, 8, 36, 3): ("ResNet-152", None),
            (2, 2, 2, 2): ("ResNet-18", "resnet18")},
           {f"resnet{d}": functools.partial(resnet.torchvision_param_map, d)
            for d in (18, 50, 101)},
           _oihw_to_hwio, r"^fc\.|\.num_batches_tracked$"),
    Scheme("torchvision_densenet", "torchvision's (or timm's) DenseNet", "features.conv0.weight",
           r"^features\.denseblock(\d+)\.denselayer(\d+)\.", (1, 1),
           {(6, 12, 24, 16): ("DenseNet-121", "densenet121"),
            (6, 12, 36, 24): ("DenseNet-161", None), (6, 12, 32, 32): ("DenseNet-169", None),
            (6, 12, 48, 32): ("DenseNet-201", None)},
           {"densenet121": densenet.torchvision_param_map},
           _oihw_to_hwio, r"^classifier\.|\.num_batches_tracked$"),
)
# The models a weight file can initialise.
MODELS = tuple(sorted({m for s in SCHEMES for m in s.maps}))
# torchvision's released DenseNet files spell "denselayer1.norm.1"; torchvision's loader
# renames them to "norm1" with this pattern, and so does gsgen.
_OLD_DENSENET = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                           r"((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def normalise_names(names) -> dict[str, str]:
  """File name -> scheme name: strips DataParallel's ``module.`` and renames old DenseNets."""
  names = list(names)
  strip = bool(names) and all(n.startswith("module.") for n in names)
  out = {}
  for n in names:
    m = n[len("module."):] if strip else n
    out[n] = _OLD_DENSENET.sub(r"\1\2", m)
  return out


@dataclasses.dataclass(frozen=True)
class Found:
  """What `identify` found in a file.

  Attributes:
    path: the file.
    format: one of `FORMATS`.
    scheme: the naming `Scheme`.
    units: units (dense layers) per stage read off the names.
    architecture: the network's name, e.g. "BiT ResNet-50".
    model: the gsgen model it loads into, or None.
    shapes: scheme name -> shape of every tensor in the file.
    renamed: scheme name -> the name in the file.
  """
  path: str
  format: str
  scheme: Scheme
  units: tuple[int, ...]
  architecture: str
  model: str | None
  shapes: dict[str, tuple[int, ...]]
  renamed: dict[str, str]


def _units(scheme: Scheme, names) -> tuple[int, ...]:
  pattern, count = re.compile(scheme.units), {}
  for n in names:
    m = pattern.match(n)
    if m:
      stage, unit = int(m.group(1)) - scheme.first[0], int(m.group(2)) - scheme.first[1]
      count[stage] = max(count.get(stage, 0), unit + 1)
  return tuple(count.get(i, 0) for i in range(max(count) + 1)) if count else ()


def identify(path: str) -> Found:
  """Reads a weight file's tensor names and shapes (not its data) and names its network.

  Args:
    path: a ``.npz``, ``.safetensors`` or ``.pth`` file.

  Returns:
    The `Found` description.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a file of no format or naming scheme gsgen knows, naming what it found.
  """
  fmt = files.detect_format(path)
  raw = files.read_shapes(path, fmt)
  names = normalise_names(raw)
  shapes = {names[n]: s for n, s in raw.items()}
  renamed = {v: k for k, v in names.items()}
  for scheme in SCHEMES:
    if scheme.anchor in shapes:
      break
  else:
    sample = ", ".join(sorted(shapes)[:4])
    raise ValueError(
        f"{path}: a {fmt} file whose tensor names fit no network gsgen loads: expected the names "
        f"of " + "; ".join(f"{s.description} ({s.anchor}, ...)" for s in SCHEMES)
        + f"; found {len(shapes)} tensors such as {sample or 'none'}.")
  units = _units(scheme, shapes)
  architecture, model = scheme.architectures.get(
      units, (f"a network of {'/'.join(map(str, units))} units per stage", None))
  if scheme.name == "torchvision_resnet" and model and "layer1.0.conv3.weight" not in shapes:
    architecture, model = ("ResNet-34", None) if units == (3, 4, 6, 3) else (
        f"a ResNet of basic units, {'/'.join(map(str, units))} per stage", None)
    if units == (2, 2, 2, 2):
      architecture, model = "ResNet-18", "resnet18"
  if scheme.name == "timm_bit" and any(n.endswith("running_mean") for n in shapes):
    architecture, model = f"timm ResNet-v2 with BatchNorm (not BiT), {architecture}", None
  return Found(path, fmt, scheme, units, architecture, model, shapes, renamed)


@functools.cache
def model_shapes(model: str) -> dict[str, tuple[int, ...]]:
  """Variable path -> shape of gsgen model ``model`` (built as shapes only, RGB input)."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from gsgen import models  # pylint: disable=g-import-not-at-top
  abstract = nnx.eval_shape(lambda: models.create(model, 1, in_channels=3, rngs=nnx.Rngs(0)))
  return {"/".join(map(str, p)): tuple(v.get_value().shape)
          for p, v in nnx.to_flat_state(nnx.state(abstract))}


def _listing(items, limit=5) -> str:
  items = sorted(items)
  return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def check(path: str, model: str, found: Found | None = None) -> Found:
  """Refuses a weight file that does not fit ``model``, with what was expected and found.

  Args:
    path: the weight file.
    model: the gsgen model name it should initialise.
    found: `identify`'s result, if already at hand.

  Returns:
    `identify`'s result.

  Raises:
    ValueError: ``model`` takes no weight file; the file holds another architecture or
      depth; tensors are missing or extra; or their shapes differ from the model's.
  """
  if model not in MODELS:
    raise ValueError(f"no weight file loads into model {model!r}; models that take "
                     f"pretrained weights: {', '.join(MODELS)}.")
  found = found or identify(path)
  where = f"{path} ({found.format}, names of {found.scheme.description})"
  if found.model != model:
    fits = f"which is model {found.model!r}" if found.model else "which no gsgen model is"
    takes = [s.description for s in SCHEMES if model in s.maps]
    raise ValueError(f"{where} holds {found.architecture} ({fits}), not {model!r}; {model} "
                     f"takes {' or '.join(takes)} files of its own architecture.")
  names = found.scheme.maps[model]()
  ignored = re.compile(found.scheme.ignored)
  missing = [n for n in names if n not in found.shapes]
  extra = [found.renamed[n] for n in found.shapes if n not in names and not ignored.search(n)]
  ours = model_shapes(model)
  wrong = []
  for name, path_ in names.items():
    if name in found.shapes:
      shape = found.shapes[name]
      converted = found.scheme.convert(np.empty(shape, np.uint8)).shape
      expected = ours["/".join(map(str, path_))]
      if tuple(converted) != expected:
        in_file = expected if found.scheme.convert is np.asarray else _expected_in_file(expected)
        wrong.append(f"{found.renamed[name]} {tuple(shape)} (expected {in_file})")
  problems = [f"{len(missing)} expected tensors missing ({_listing(missing)})" if missing else "",
              f"{len(extra)} tensors {model} has no place for ({_listing(extra)})" if extra else "",
              f"{len(wrong)} of another shape ({_listing(wrong, 3)})" if wrong else ""]
  problems = [p for p in problems if p]
  if problems:
    raise ValueError(f"{where} does not fit {model} ({found.architecture}): "
                     + "; ".join(problems) + ".")
  return found


def _expected_in_file(hwio: tuple[int, ...]) -> tuple[int, ...]:
  """A shape of ours in a PyTorch file's layout (HWIO -> OIHW)."""
  return (hwio[3], hwio[2], hwio[0], hwio[1]) if len(hwio) == 4 else hwio


def load(path: str, model: str, found: Found | None = None) -> dict[str, np.ndarray]:
  """The tensors of a weight file that fits ``model`` (`check`), in gsgen's layout.

  Args:
    path: the weight file.
    model: a gsgen model name of `MODELS`.
    found: `identify`'s result, if already at hand.

  Returns:
    Slash-joined variable path (``stages/0/0/conv_a/kernel``) -> float32 array.
  """
  found = check(path, model, found)
  names = found.scheme.maps[model]()
  wanted = {found.renamed[n]: n for n in names}
  tensors = files.read_tensors(path, found.format, list(wanted))
  return {"/".join(map(str, names[wanted[f]])):
          np.asarray(found.scheme.convert(t), np.float32) for f, t in tensors.items()}


def sha256(path: str) -> str:
  """The file's SHA-256, hex."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      digest.update(block)
  return digest.hexdigest()


def describe(path: str) -> str:
  """What ``python -m gsgen.weights inspect`` prints: format, network, fit, parameter count,
  and the config line that fine-tunes from the file."""
  found = identify(path)
  lines = [f"{path}", f"  format:       {found.format}, tensor names of {found.scheme.description}",
           f"  architecture: {found.architecture} "
           f"({', '.join(map(str, found.units))} units per stage)"]
  total = sum(int(np.prod(s)) for s in found.shapes.values())
  if found.model is None:
    lines += [f"  parameters:   {total:,} in the file",
              f"  fits:         no gsgen model (those that take weights: {', '.join(MODELS)})"]
    return "\n".join(lines)
  try:
    check(path, found.model, found)
  except ValueError as e:
    lines += [f"  parameters:   {total:,} in the file", f"  fits:         nothing: {e}"]
    return "\n".join(lines)
  names = found.scheme.maps[found.model]()
  stats = sum(int(np.prod(found.shapes[n])) for n, p in names.items() if p[-1] in ("mean", "var"))
  backbone = sum(int(np.prod(found.shapes[n])) for n in names) - stats
  left = sorted(found.renamed[n] for n in found.shapes if n not in names)
  lines += [f"  parameters:   {backbone:,} loaded into the backbone"
            + (f" (+ {stats:,} batch statistics)" if stats else "")
            + f"; {total - backbone - stats:,} left out ({_listing(left, 3)})",
            f"  fits:         model={found.model} (every backbone tensor present, shapes match; "
            f"the regression head starts at zero)",
            "  config:       python -m gsgen.main --config=benchmark:dataset=mpi3d,"
            f"split=extrapolation,model={found.model},preset=transfer "
            f"--config.init_from.weights={path} "
            f"--workdir=workdirs/mpi3d_extrapolation_{found.model}_transfer"]
  return "\n".join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m gsgen.weights", description=__doc__.split(
      "\n\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  inspect = sub.add_parser("inspect", help="the network a weight file holds and how to use it")
  inspect.add_argument("file")
  args = parser.parse_args(argv)
  try:
    print(describe(args.file))
  except (OSError, ValueError, ImportError) as e:
    parser.exit(1, f"error: {e}\n")
