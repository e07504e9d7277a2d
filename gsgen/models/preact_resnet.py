"""Pre-activation ResNet-18/50/101 (v2), with BatchNorm or with BiT's GroupNorm + WS convolutions.

``norm="group_ws"`` is BiT's ResNet-v2 (width 1): BiT-S/BiT-M R50x1 and R101x1 checkpoints load
through `bit_param_map` (BiT's ``.npz``) or `timm_bit_param_map` (timm's). ``norm="batch"`` is
the same layout with BatchNorm, trained from scratch. Images are resized, repeated to RGB and
mapped to [-1, 1] inside the model; ``encode()`` is the global average of the final norm +
ReLU map (docs/models.md, "Pre-activation ResNet (v2) and BiT").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen.models import preact_resnet
  model = nnx.eval_shape(lambda: preact_resnet.PreActResNet(
      5, in_channels=1, depth=50, norm="group_ws", rngs=nnx.Rngs(0)))
  model.encoding_size                        # 2048
  model = preact_resnet.PreActResNet(5, in_channels=1, depth=18, rngs=nnx.Rngs(0))
  model.eval()                               # BatchNorm uses its running statistics
  x = jnp.zeros((8, 64, 64, 1))
  model(x).shape                             # (8, 5)
  model.feature_map(x).shape                 # (8, 2, 2, 512), before the average
  preact_resnet.bit_param_map(101)["resnet/block1/unit01/a/proj/standardized_conv2d/kernel"]
  # -> ("stages", 0, 0, "proj", "kernel")
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gsgen.models import preprocess

# depth -> (unit kind, units per stage).
LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
NORMS = ("batch", "group_ws")
WIDTH = 64  # channels of the root and of the first stage's 3x3 convolutions


class Conv(nnx.Module):
  """Bias-free square convolution, optionally weight-standardised, padded as BiT pads
  (TensorFlow's ``fixed_padding``: (k - 1) // 2 before, the rest after)."""

  def __init__(self, in_features: int, out_features: int, kernel_size: int, *,
               strides: int = 1, standardize: bool = False, rngs: nnx.Rngs):
    """Args:
      in_features: input channels.
      out_features: output channels.
      kernel_size: height and width of the kernel.
      strides: spatial stride.
      standardize: standardise each output filter before use (weight standardisation).
      rngs: parameter initialisation.
    """
    # He initialisation (fan_out) as torchvision's ResNets; irrelevant under standardisation.
    init = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")
    shape = (kernel_size, kernel_size, in_features, out_features)
    self.kernel = nnx.Param(init(rngs.params(), shape, jnp.float32))
    before = (kernel_size - 1) // 2
    self.padding = ((before, kernel_size - 1 - before),) * 2
    self.strides = strides
    self.standardize = standardize

  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.kernel[...]
    if self.standardize:
      w = w - jnp.mean(w, axis=(0, 1, 2), keepdims=True)
      w = w * jax.lax.rsqrt(jnp.mean(jnp.square(w), axis=(0, 1, 2), keepdims=True) + 1e-10)
    return jax.lax.conv_general_dilated(
        x, w, (self.strides, self.strides), self.padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _norm(norm: str, features: int, rngs: nnx.Rngs) -> nnx.Module:
  if norm == "batch":
    # momentum 0.9 is PyTorch's 0.1: Flax's default 0.99 lags for short fine-tuning runs.
    return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)
  # The two-pass variance, as PyTorch and BiT compute it (docs/models.md).
  return nnx.GroupNorm(features, num_groups=32, epsilon=1e-5, use_fast_variance=False,
                       rngs=rngs)


class BasicUnit(nnx.Module):
  """Pre-activation basic unit: [norm, ReLU, 3x3 conv] x2 plus a shortcut."""

  def __init__(self, in_features: int, features: int, strides: int, *, norm: str,
               rngs: nnx.Rngs):
    """Args:
      in_features: input channels.
      features: output channels.
      strides: stride of the first convolution and of the projection.
      norm: "batch" or "group_ws".
      rngs: parameter initialisation.
    """
    ws = norm == "group_ws"
    self.norm_a = _norm(norm, in_features, rngs)
    self.conv_a = Conv(in_features, features, 3, strides=strides, standardize=ws, rngs=rngs)
    self.norm_b = _norm(norm, features, rngs)
    self.conv_b = Conv(features, features, 3, standardize=ws, rngs=rngs)
    self.proj = (Conv(in_features, features, 1, strides=strides, standardize=ws, rngs=rngs)
                 if strides != 1 or in_features != features else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu(self.norm_a(x))
    shortcut = x if self.proj is None else self.proj(y)
    y = self.conv_a(y)
    y = self.conv_b(jax.nn.relu(self.norm_b(y)))
    return y + shortcut


class BottleneckUnit(nnx.Module):
  """Pre-activation bottleneck: norm-ReLU-1x1, norm-ReLU-3x3 (strided), norm-ReLU-1x1 (x4)."""

  def __init__(self, in_features: int, features: int, strides: int, *, norm: str,
               rngs: nnx.Rngs):
    """Args:
      in_features: input channels.
      features: bottleneck channels; the unit outputs ``4 * features``.
      strides: stride of the 3x3 convolution and of the projection.
      norm: "batch" or "group_ws".
      rngs: parameter initialisation.
    """
    ws = norm == "group_ws"
    out = 4 * features
    self.norm_a = _norm(norm, in_features, rngs)
    self.conv_a = Conv(in_features, features, 1, standardize=ws, rngs=rngs)
    self.norm_b = _norm(norm, features, rngs)
    self.conv_b = Conv(features, features, 3, strides=strides, standardize=ws, rngs=rngs)
    self.norm_c = _norm(norm, features, rngs)
    self.conv_c = Conv(features, out, 1, standardize=ws, rngs=rngs)
    self.proj = (Conv(in_features, out, 1, strides=strides, standardize=ws, rngs=rngs)
                 if strides != 1 or in_features != out else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu(self.norm_a(x))
    shortcut = x if self.proj is None else self.proj(y)
    y = self.conv_a(y)
    y = self.conv_b(jax.nn.relu(self.norm_b(y)))
    y = self.conv_c(jax.nn.relu(self.norm_c(y)))
    return y + shortcut


class PreActResNet(nnx.Module):
  """Pre-activation ResNet: root conv + pool, four stages, norm + ReLU, mean pool, linear."""

  def __init__(self, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs, depth: int = 50,
               norm: str = "batch", stem_pool: bool = True, resolution: int = 0):
    """Args:
      num_outputs: factors to regress.
      in_channels: image channels, 1 (repeated to RGB) or 3.
      rngs: parameter initialisation.
      depth: 18, 50 or 101.
      norm: "batch" (BatchNorm) or "group_ws" (BiT: GroupNorm + weight standardisation).
      stem_pool: keep the root's 3x3 stride-2 max-pool (2x2 final map on 64x64 input).
      resolution: side images are resized to before the root (0: as they come).
    """
    if depth not in LAYOUTS:
      raise ValueError(f"depth {depth} not in {sorted(LAYOUTS)}.")
    if norm not in NORMS:
      raise ValueError(f"norm {norm!r} not in {NORMS}.")
    if in_channels not in (1, 3):
      raise ValueError(f"in_channels must be 1 or 3 (an RGB root), not {in_channels}.")
    preprocess.check_resolution(resolution)
    kind, stage_units = LAYOUTS[depth]
    unit, expansion = (BasicUnit, 1) if kind == "basic" else (BottleneckUnit, 4)
    self.stem_pool = stem_pool
    self.resolution = resolution
    self.root = Conv(3, WIDTH, 7, strides=2,
                     standardize=norm == "group_ws", rngs=rngs)
    stages, in_features = [], WIDTH
    for i, units in enumerate(stage_units):
      features = WIDTH * 2**i
      stage = []
      for j in range(units):
        stage.append(unit(in_features, features, 2 if i > 0 and j == 0 else 1,
                          norm=norm, rngs=rngs))
        in_features = features * expansion
      stages.append(nnx.List(stage))
    self.stages = nnx.List(stages)
    self.norm = _norm(norm, in_features, rngs)
    self.head = nnx.Linear(in_features, num_outputs, rngs=rngs)
    self.encoding_size = in_features

  def feature_map(self, x: jax.Array) -> jax.Array:
    """The final feature map, after the last norm and ReLU (before pooling).

    Args:
      x: images ``[batch, height, width, in_channels]`` in [0, 1].

    Returns:
      ``[batch, s/32, s/32, encoding_size]`` for side ``s`` after the resize (``s/16``
      without the stem pool).
    """
    x = self.root(preprocess.prepare(x, resolution=self.resolution, normalization="bit"))
    if self.stem_pool:
      x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
      x = nnx.max_pool(x, (3, 3), strides=(2, 2))
    for stage in self.stages:
      for unit in stage:
        x = unit(x)
    return jax.nn.relu(self.norm(x))

  def encode(self, x: jax.Array) -> jax.Array:
    """The globally averaged final feature map, which the head reads.

    Args:
      x: images ``[batch, height, width, in_channels]`` in [0, 1].

    Returns:
      ``[batch, encoding_size]``.
    """
    return jnp.mean(self.feature_map(x), axis=(1, 2))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.encode(x))


def bit_param_map(depth: int) -> dict[str, tuple[str | int, ...]]:
  """Names in a BiT R{depth}x1 ``.npz`` -> paths in ``nnx.state(PreActResNet(..., "group_ws"))``.

  Args:
    depth: 50 or 101 (BiT publishes no ResNet-18).

  Returns:
    One entry per backbone tensor; the head (``resnet/head/conv2d/*``) is left out. Values
    are flat state paths such as ``("stages", 2, 22, "norm_c", "scale")``; tensors copy
    without any transposition (both sides are HWIO / per-channel vectors).
  """
  if LAYOUTS.get(depth, ("basic",))[0] != "bottleneck":
    raise ValueError(f"BiT has no ResNet-{depth}; use 50 or 101.")
  names = {"resnet/root_block/standardized_conv2d/kernel": ("root", "kernel"),
           "resnet/group_norm/gamma": ("norm", "scale"),
           "resnet/group_norm/beta": ("norm", "bias")}
  for i, units in enumerate(LAYOUTS[depth][1]):
    for j in range(units):
      prefix, path = f"resnet/block{i + 1}/unit{j + 1:02d}", ("stages", i, j)
      for part in "abc":
        names[f"{prefix}/{part}/standardized_conv2d/kernel"] = path + (f"conv_{part}", "kernel")
        names[f"{prefix}/{part}/group_norm/gamma"] = path + (f"norm_{part}", "scale")
        names[f"{prefix}/{part}/group_norm/beta"] = path + (f"norm_{part}", "bias")
      if j == 0:  # the first unit of every stage changes width or stride
        names[f"{prefix}/a/proj/standardized_conv2d/kernel"] = path + ("proj", "kernel")
  return names


def timm_bit_param_map(depth: int) -> dict[str, tuple[str | int, ...]]:
  """Names in timm's ``resnetv2_{depth}x1_bit`` state dict -> paths in our state.

  Args:
    depth: 50 or 101.

  Returns:
    One entry per backbone tensor (the classifier ``head.fc.*`` is left out). Convolution
    weights are OIHW in the file and HWIO here; the GroupNorm vectors copy as they are.
  """
  timm = {"resnet/root_block/standardized_conv2d/kernel": "stem.conv.weight",
          "resnet/group_norm/gamma": "norm.weight", "resnet/group_norm/beta": "norm.bias"}
  for bit_name in bit_param_map(depth):
    parts = bit_name.split("/")
    if len(parts) < 4 or not parts[1].startswith("block"):
      continue
    stage, unit = int(parts[1][5:]) - 1, int(parts[2][4:]) - 1
    prefix = f"stages.{stage}.blocks.{unit}"
    k = "abc".index(parts[3]) + 1
    if parts[4] == "proj":
      timm[bit_name] = f"{prefix}.downsample.conv.weight"
    elif parts[4] == "group_norm":
      timm[bit_name] = f"{prefix}.norm{k}.{'weight' if parts[5] == 'gamma' else 'bias'}"
    else:
      timm[bit_name] = f"{prefix}.conv{k}.weight"
  return {timm[name]: path for name, path in bit_param_map(depth).items()}
