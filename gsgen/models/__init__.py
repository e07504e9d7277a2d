"""Factor regressors by name: `MODELS`, `create`, `options`, `num_params`.

Every constructor is ``(num_outputs, *, in_channels, rngs, **options) -> nnx.Module``; every
model maps images ``[batch, 64, 64, in_channels]`` in [0, 1] to ``[batch, num_outputs]``, with
``model(x) == model.head(model.encode(x))`` and an ``encoding_size`` known before it runs
(docs/models.md, "The common contract").

Synopsis::

  import jax.numpy as jnp
  from flax import nnx
  from gsgen import models
  model = models.create("cnn", num_outputs=5, in_channels=1, rngs=nnx.Rngs(0))
  images = jnp.zeros((8, 64, 64, 1))
  model(images).shape                        # (8, 5)
  model.encode(images).shape                 # (8, 256) == (8, model.encoding_size)
  models.num_params(model)                   # 379077
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import jax
from flax import nnx

from gsgen.models import cnn
from gsgen.models import coordconv
from gsgen.models import densenet
from gsgen.models import equivariant
from gsgen.models import mlp
from gsgen.models import preact_resnet
from gsgen.models import resnet
from gsgen.models import set_encoder
from gsgen.models import spatial_transformer

MODELS: dict[str, Callable[..., nnx.Module]] = {
    "mlp": mlp.MLP,
    "cnn": cnn.CNN,
    "coordconv": coordconv.CoordConv,
    "set_encoder": set_encoder.SetEncoder,
    "equivariant_cnn": equivariant.EquivariantCNN,
    "spatial_transformer": spatial_transformer.SpatialTransformer,
    # torchvision's layout (v1.5: post-activation, BN + ReLU stem), as a PyTorch study's
    # ResNets; ImageNet-1k weights from torchvision or timm load into it.
    "resnet18": functools.partial(resnet.ResNet, depth=18),
    "resnet50": functools.partial(resnet.ResNet, depth=50),
    "resnet101": functools.partial(resnet.ResNet, depth=101),
    "densenet121": densenet.DenseNet,
    # Pre-activation (v2) with BatchNorm, from scratch.
    "preact_resnet18": functools.partial(preact_resnet.PreActResNet, depth=18, norm="batch"),
    "preact_resnet50": functools.partial(preact_resnet.PreActResNet, depth=50, norm="batch"),
    "preact_resnet101": functools.partial(preact_resnet.PreActResNet, depth=101, norm="batch"),
    # The BiT layout (v2, GroupNorm, weight standardisation) that ImageNet-21k weights load into.
    "bit_resnet50": functools.partial(preact_resnet.PreActResNet, depth=50, norm="group_ws"),
    "bit_resnet101": functools.partial(preact_resnet.PreActResNet, depth=101, norm="group_ws"),
}


def create(name: str, num_outputs: int, *, in_channels: int, rngs: nnx.Rngs,
           **kwargs) -> nnx.Module:
  """Builds the model called ``name``.

  Args:
    name: a key of `MODELS`.
    num_outputs: factors to regress.
    in_channels: image channels.
    rngs: parameter initialisation.
    **kwargs: the constructor's own options (``config.model_kwargs``).

  Returns:
    The model, initialised from ``rngs``.

  Raises:
    ValueError: unknown name or option; the message lists the valid ones.
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}.")
  try:
    return MODELS[name](num_outputs, in_channels=in_channels, rngs=rngs, **kwargs)
  except TypeError as e:
    if kwargs and "unexpected keyword" in str(e):
      raise ValueError(f"model {name!r} does not take option(s) {sorted(kwargs)} "
                       f"(config.model_kwargs): {e}") from e
    raise


def options(name: str) -> dict:
  """The keyword options of model ``name`` with their defaults (what ``model_kwargs`` holds).

  Read off the constructor's signature, less what the table entry fixes (a
  ``functools.partial``) and the arguments every model takes.
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}.")
  ctor, fixed = MODELS[name], set()
  while isinstance(ctor, functools.partial):
    fixed |= set(ctor.keywords)
    ctor = ctor.func
  target = ctor.__init__ if isinstance(ctor, type) else ctor
  kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
  return {k: p.default for k, p in inspect.signature(target).parameters.items()
          if p.kind in kinds and p.default is not inspect.Parameter.empty
          and k not in fixed | {"num_outputs", "in_channels", "rngs"}}


def num_params(model: nnx.Module, kind=nnx.Param) -> int:
  """Counts the trainable parameters of a model.

  Args:
    model: a module; an abstract one from ``nnx.eval_shape`` works too.
    kind: the variable type to count instead, such as ``nnx.BatchStat``.

  Returns:
    The total number of entries of the model's ``kind`` variables.
  """
  return sum(p.size for p in jax.tree.leaves(nnx.state(model, kind)))
