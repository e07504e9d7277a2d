"""ResNet-18/50/101 in torchvision's layout (v1.5), so torchvision's and timm's ImageNet-1k weights
load unchanged.

Post-activation units, a BatchNorm + ReLU stem, the bottleneck's stride on its 3x3 convolution;
images are resized, repeated to RGB and ImageNet-normalised inside the model. ``encode()`` is
the global average of the last unit's output; `torchvision_param_map` names the state dict
(docs/models.md, "ResNet (torchvision's v1.5 layout)").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen.models import resnet
  model = resnet.ResNet(5, in_channels=1, depth=18, rngs=nnx.Rngs(0))
  model.eval()                               # BatchNorm uses its running statistics
  x = jnp.zeros((8, 64, 64, 1))
  model(x).shape                             # (8, 5)
  model.feature_map(x).shape                 # (8, 2, 2, 512), before the average
  resnet.torchvision_param_map(50)["layer3.0.downsample.0.weight"]
  # -> ("stages", 2, 0, "proj_conv", "kernel")
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gsgen.models import preprocess
from gsgen.models import torch_init

# depth -> (unit kind, units per stage).
LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
WIDTH = 64  # channels of the stem and of the first stage's 3x3 convolutions
# torchvision's init: kaiming_normal_(mode="fan_out", nonlinearity="relu") (JAX's "normal"
# is untruncated, as PyTorch's).
_CONV_INIT = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _conv(in_features: int, out_features: int, size: int, rngs: nnx.Rngs, strides: int = 1,
          ) -> nnx.Conv:
  # torchvision pads k // 2 on every side (3 for the 7x7 stem, 1 for 3x3, 0 for 1x1).
  return nnx.Conv(in_features, out_features, (size, size), strides=strides,
                  padding=((size // 2, size // 2),) * 2, use_bias=False,
                  kernel_init=_CONV_INIT, rngs=rngs)


def _norm(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  # momentum 0.9 and epsilon 1e-5 are PyTorch's (momentum 0.1 there), so running
  # statistics loaded from torchvision keep their meaning.
  return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


class BasicBlock(nnx.Module):
  """3x3 conv-BN-ReLU, 3x3 conv-BN, plus the shortcut, then ReLU."""

  expansion = 1

  def __init__(self, in_features: int, features: int, strides: int, *, rngs: nnx.Rngs):
    """Args:
      in_features: input channels.
      features: output channels.
      strides: stride of the first convolution and of the projection.
      rngs: parameter initialisation.
    """
    self.conv1 = _conv(in_features, features, 3, rngs, strides)
    self.bn1 = _norm(features, rngs)
    self.conv2 = _conv(features, features, 3, rngs)
    self.bn2 = _norm(features, rngs)
    project = strides != 1 or in_features != features
    self.proj_conv = _conv(in_features, features, 1, rngs, strides) if project else None
    self.proj_bn = _norm(features, rngs) if project else None

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    shortcut = x if self.proj_conv is None else self.proj_bn(self.proj_conv(x))
    return jax.nn.relu(y + shortcut)


class Bottleneck(nnx.Module):
  """1x1 conv-BN-ReLU, 3x3 conv (strided)-BN-ReLU, 1x1 conv (x4)-BN, + shortcut, ReLU."""

  expansion = 4

  def __init__(self, in_features: int, features: int, strides: int, *, rngs: nnx.Rngs):
    """Args:
      in_features: input channels.
      features: bottleneck channels; the unit outputs ``4 * features``.
      strides: stride of the 3x3 convolution and of the projection.
      rngs: parameter initialisation.
    """
    out = 4 * features
    self.conv1 = _conv(in_features, features, 1, rngs)
    self.bn1 = _norm(features, rngs)
    self.conv2 = _conv(features, features, 3, rngs, strides)
    self.bn2 = _norm(features, rngs)
    self.conv3 = _conv(features, out, 1, rngs)
    self.bn3 = _norm(out, rngs)
    project = strides != 1 or in_features != out
    self.proj_conv = _conv(in_features, out, 1, rngs, strides) if project else None
    self.proj_bn = _norm(out, rngs) if project else None

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = jax.nn.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    shortcut = x if self.proj_conv is None else self.proj_bn(self.proj_conv(x))
    return jax.nn.relu(y + shortcut)


class ResNet(nnx.Module):
  """torchvision's ResNet: conv-BN-ReLU stem, max-pool, four stages, mean pool, linear."""

  def __init__(self, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs, depth: int = 50,
               stem_pool: bool = True, resolution: int = 0):
    """Args:
      num_outputs: factors to regress.
      in_channels: image channels, 1 (repeated to RGB) or 3.
      rngs: parameter initialisation.
      depth: 18, 50 or 101.
      stem_pool: keep the stem's 3x3 stride-2 max-pool (2x2 final map on 64x64 input).
      resolution: side images are resized to before the stem (0: as they come).
    """
    if depth not in LAYOUTS:
      raise ValueError(f"depth {depth} not in {sorted(LAYOUTS)}.")
    if in_channels not in (1, 3):
      raise ValueError(f"in_channels must be 1 or 3 (an RGB stem), not {in_channels}.")
    preprocess.check_resolution(resolution)
    kind, stage_units = LAYOUTS[depth]
    unit = BasicBlock if kind == "basic" else Bottleneck
    self.stem_pool = stem_pool
    self.resolution = resolution
    self.conv1 = _conv(3, WIDTH, 7, rngs, strides=2)
    self.bn1 = _norm(WIDTH, rngs)
    stages, in_features = [], WIDTH
    for i, units in enumerate(stage_units):
      features = WIDTH * 2**i
      stage = []
      for j in range(units):
        stage.append(unit(in_features, features, 2 if i > 0 and j == 0 else 1, rngs=rngs))
        in_features = features * unit.expansion
      stages.append(nnx.List(stage))
    self.stages = nnx.List(stages)
    self.head = torch_init.torch_linear(in_features, num_outputs, rngs=rngs)
    self.encoding_size = in_features

  def feature_map(self, x: jax.Array) -> jax.Array:
    """The output of the last unit (before pooling).

    Args:
      x: images ``[batch, height, width, in_channels]`` in [0, 1].

    Returns:
      ``[batch, s/32, s/32, encoding_size]`` for side ``s`` after the resize (``s/16``
      without the stem pool).
    """
    x = preprocess.prepare(x, resolution=self.resolution, normalization="imagenet")
    x = jax.nn.relu(self.bn1(self.conv1(x)))
    if self.stem_pool:
      # PyTorch's max-pool pads with -inf, as Flax's does.
      x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage in self.stages:
      for unit in stage:
        x = unit(x)
    return x

  def encode(self, x: jax.Array) -> jax.Array:
    """The globally averaged final feature map, which the head reads: ``[batch, encoding_size]``."""
    return jnp.mean(self.feature_map(x), axis=(1, 2))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.encode(x))


_BATCH_NORM = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def torchvision_param_map(depth: int) -> dict[str, tuple[str | int, ...]]:
  """torchvision ResNet state-dict names -> paths in ``nnx.state(ResNet(..., depth=depth))``.

  timm's ``resnet18/50/101`` checkpoints use the same names.

  Args:
    depth: 18, 50 or 101.

  Returns:
    One entry per backbone convolution weight and BatchNorm weight, bias, running_mean and
    running_var; ``num_batches_tracked`` and the classifier ``fc.*`` are left out.
    Convolution weights are OIHW in the file and HWIO here.
  """
  if depth not in LAYOUTS:
    raise ValueError(f"depth {depth} not in {sorted(LAYOUTS)}.")
  names = {"conv1.weight": ("conv1", "kernel")}

  def add_norm(name, path):
    for torch_name, ours in _BATCH_NORM.items():
      names[f"{name}.{torch_name}"] = path + (ours,)

  add_norm("bn1", ("bn1",))
  kind, stage_units = LAYOUTS[depth]
  convs = "12" if kind == "basic" else "123"
  for i, units in enumerate(stage_units):
    for j in range(units):
      prefix, path = f"layer{i + 1}.{j}", ("stages", i, j)
      for k in convs:
        names[f"{prefix}.conv{k}.weight"] = path + (f"conv{k}", "kernel")
        add_norm(f"{prefix}.bn{k}", path + (f"bn{k}",))
      if j == 0 and (i > 0 or kind == "bottleneck"):  # width or stride changes
        names[f"{prefix}.downsample.0.weight"] = path + ("proj_conv", "kernel")
        add_norm(f"{prefix}.downsample.1", path + ("proj_bn",))
  return names
