"""PyTorch's default initialisation of ``nn.Linear``, ``nn.Conv2d`` and ``nn.ConvTranspose2d`` for
Flax NNX layers, and slow_disentanglement's Kaiming-normal re-initialisation.

Kernel and bias are uniform in +-1/sqrt(fan_in), with PyTorch's fan-in: ``in_features``,
``in_channels * kh * kw``, or ``out_channels * kh * kw`` for a transposed convolution
(docs/models.md, "Initialisation"; docs/learners.md, "Initialisation").

Synopsis::

  from flax import nnx
  from gsgen.models import torch_init
  dense = torch_init.torch_linear(4096, 512, rngs=nnx.Rngs(0))     # |w|, |b| < 1/64
  conv = torch_init.torch_conv(3, 32, 4, strides=2, padding=1, rngs=nnx.Rngs(0))  # < 1/sqrt(48)
  deconv = torch_init.torch_conv_transpose(64, 32, 4, strides=2, padding=1, rngs=nnx.Rngs(0))
  torch_init.bound(48)                                           # 0.1443...
  torch_init.kaiming_normal(model, nnx.Rngs(1))   # Linear and Conv weights, zero biases
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


def bound(fan_in: int) -> float:
  """The half-width 1/sqrt(fan_in) of PyTorch's default uniform initialisation.

  Args:
    fan_in: inputs that each output sums over.

  Returns:
    1 / sqrt(fan_in).

  Raises:
    ValueError: ``fan_in`` is not positive.
  """
  if fan_in < 1:
    raise ValueError(f"fan_in must be a positive integer, not {fan_in}.")
  return 1.0 / math.sqrt(fan_in)


def torch_uniform(fan_in: int) -> nnx.Initializer:
  """An initialiser drawing U(-1/sqrt(fan_in), +1/sqrt(fan_in)), for kernels and biases alike.

  Args:
    fan_in: the layer's fan-in (not inferred from the shape: a bias has none of its own).

  Returns:
    ``init(key, shape, dtype=float32) -> array``, as Flax's ``kernel_init`` / ``bias_init``.
  """
  b = bound(fan_in)

  def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, -b, b)

  return init


def torch_linear(in_features: int, out_features: int, *, rngs: nnx.Rngs,
                 **kwargs) -> nnx.Linear:
  """``nnx.Linear`` initialised as PyTorch's ``nn.Linear``.

  Args:
    in_features: inputs (the fan-in).
    out_features: outputs.
    rngs: parameter initialisation.
    **kwargs: further ``nnx.Linear`` options (not ``kernel_init`` / ``bias_init``).

  Returns:
    The layer, kernel and bias U(+-1/sqrt(in_features)).
  """
  init = torch_uniform(in_features)
  return nnx.Linear(in_features, out_features, kernel_init=init, bias_init=init, rngs=rngs,
                    **kwargs)


def torch_conv(in_features: int, out_features: int, kernel_size: int, *, rngs: nnx.Rngs,
               strides: int = 1, padding: int | str = 0, **kwargs) -> nnx.Conv:
  """A square ``nnx.Conv`` initialised and padded as PyTorch's ``nn.Conv2d``.

  Args:
    in_features: input channels.
    out_features: output channels.
    kernel_size: height and width of the kernel.
    rngs: parameter initialisation.
    strides: spatial stride.
    padding: zeros added on every side (PyTorch's integer ``padding``), or "VALID" / "SAME".
    **kwargs: further ``nnx.Conv`` options (not ``kernel_init`` / ``bias_init``).

  Returns:
    The layer, kernel and bias U(+-1/sqrt(in_features * kernel_size**2)).
  """
  if isinstance(padding, int):
    padding = ((padding, padding), (padding, padding))
  init = torch_uniform(in_features * kernel_size * kernel_size)
  return nnx.Conv(in_features, out_features, (kernel_size, kernel_size), strides=strides,
                  padding=padding, kernel_init=init, bias_init=init, rngs=rngs, **kwargs)


def torch_conv_transpose(in_features: int, out_features: int, kernel_size: int, *,
                         rngs: nnx.Rngs, strides: int = 1, padding: int = 0,
                         **kwargs) -> nnx.ConvTranspose:
  """A square ``nnx.ConvTranspose`` that computes and is initialised as PyTorch's
  ``nn.ConvTranspose2d(in_features, out_features, kernel_size, strides, padding)``.

  The output side is ``(side - 1) * strides - 2 * padding + kernel_size``; PyTorch's weight
  ``w[i, o, y, x]`` is this layer's ``kernel[y, x, o, i]`` (docs/learners.md, "Models").

  Args:
    in_features: input channels.
    out_features: output channels.
    kernel_size: height and width of the kernel.
    rngs: parameter initialisation.
    strides: spatial stride.
    padding: PyTorch's integer ``padding`` (at most ``kernel_size - 1``).
    **kwargs: further ``nnx.ConvTranspose`` options (not ``kernel_init`` / ``bias_init``).

  Returns:
    The layer, kernel and bias U(+-1/sqrt(out_features * kernel_size**2)).

  Raises:
    ValueError: ``padding`` is out of range.
  """
  if not 0 <= padding <= kernel_size - 1:
    raise ValueError(f"padding must be in [0, kernel_size - 1] = [0, {kernel_size - 1}]; got "
                     f"{padding}.")
  pad = kernel_size - 1 - padding
  init = torch_uniform(out_features * kernel_size * kernel_size)
  return nnx.ConvTranspose(in_features, out_features, (kernel_size, kernel_size),
                           strides=strides, padding=((pad, pad), (pad, pad)),
                           transpose_kernel=True, kernel_init=init, bias_init=init, rngs=rngs,
                           **kwargs)


def kaiming_normal(module: nnx.Module, rngs: nnx.Rngs) -> nnx.Module:
  """Re-initialises ``module`` in place as slow_disentanglement's ``kaiming_init``.

  Every ``nnx.Linear`` and ``nnx.Conv`` weight is drawn N(0, 2 / fan_in) with PyTorch's fan-in
  and its bias set to zero; transposed convolutions and all other parameters are left as they
  are (docs/learners.md, "Initialisation").

  Args:
    module: the module to re-initialise.
    rngs: the draws.

  Returns:
    ``module``.
  """
  for _, layer in nnx.iter_graph(module):
    if not isinstance(layer, (nnx.Linear, nnx.Conv)):
      continue
    kernel = layer.kernel[...]
    fan_in = math.prod(kernel.shape[:-1])
    layer.kernel[...] = (jax.random.normal(rngs.params(), kernel.shape, kernel.dtype)
                         * math.sqrt(2.0 / fan_in))
    if layer.bias is not None:
      layer.bias[...] = jnp.zeros_like(layer.bias[...])
  return module
