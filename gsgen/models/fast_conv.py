"""``lax.conv_general_dilated`` in the forms that XLA's CPU backend runs fastest.

`conv_general_dilated` is a drop-in replacement (for ``nnx.Conv``) that computes the same
convolution with the same parameters and shapes, values differing only in the order of
floating-point sums; `form` says which form a layer gets (docs/models.md, "The CNN on a CPU").

Synopsis::

  from flax import nnx
  from gsgen.models import fast_conv
  conv = nnx.Conv(32, 64, (4, 4), strides=2, padding=((1, 1), (1, 1)), rngs=nnx.Rngs(0),
                  conv_general_dilated=fast_conv.conv_general_dilated)
  fast_conv.form(conv.kernel.shape, (8, 16, 16, 32), (2, 2), ((1, 1), (1, 1)))  # 'strided'
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

# nnx.Conv's dimension numbers for 2-D inputs: NHWC images, HWIO kernels.
_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1),
                                 out_spec=(0, 3, 1, 2))


def form(kernel_shape, input_shape, strides, padding) -> str:
  """Which form `conv_general_dilated` computes a plain 2-D NHWC convolution in.

  Args:
    kernel_shape: ``(kh, kw, in, out)``.
    input_shape: ``(batch, height, width, in)``.
    strides: ``(sh, sw)``.
    padding: ``((top, bottom), (left, right))`` or "VALID".

  Returns:
    "dot" (the window covers the whole padded input: one output position), "strided"
    (stride > 1 with kernel sides divisible by the stride and no partial last window:
    gradients in space-to-depth form) or "lax" (left to ``lax.conv_general_dilated``).
  """
  if padding == "VALID":
    padding = ((0, 0), (0, 0))
  if isinstance(padding, str) or len(kernel_shape) != 4 or len(input_shape) != 4:
    return "lax"
  padding = tuple(tuple(p) for p in padding)
  sides = [input_shape[1 + i] + sum(padding[i]) for i in range(2)]
  if padding == ((0, 0), (0, 0)) and tuple(sides) == tuple(kernel_shape[:2]):
    return "dot"
  if (all(s > 1 for s in strides) and all(k % s == 0 for k, s in zip(kernel_shape, strides))
      and all((n - k) % s == 0 and n >= k for n, k, s in zip(sides, kernel_shape, strides))
      and all(p >= 0 for pair in padding for p in pair)):
    return "strided"
  return "lax"


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None,
                         **kwargs):
  """``lax.conv_general_dilated`` with the fast forms of `form` where they apply.

  Takes the arguments of ``lax.conv_general_dilated`` (so it can be the
  ``conv_general_dilated`` of an ``nnx.Conv``); anything but an undilated, ungrouped NHWC
  convolution goes to ``lax`` unchanged.

  Returns:
    The convolution ``[batch, out_height, out_width, out]``.
  """
  plain = (all(d == 1 for d in (lhs_dilation or (1, 1)))
           and all(d == 1 for d in (rhs_dilation or (1, 1)))
           and feature_group_count == 1 and batch_group_count == 1
           and preferred_element_type is None and not any(kwargs.values())
           and _is_nhwc(dimension_numbers, lhs.ndim))
  kind = form(rhs.shape, lhs.shape, tuple(window_strides), padding) if plain else "lax"
  if kind == "dot":
    y = jnp.dot(lhs.reshape(lhs.shape[0], -1), rhs.reshape(-1, rhs.shape[-1]),
                precision=precision)
    return y.reshape(lhs.shape[0], 1, 1, -1)
  if kind == "strided":
    pads = ((0, 0), (0, 0)) if padding == "VALID" else tuple(tuple(p) for p in padding)
    return strided_conv(lhs, rhs, tuple(window_strides), pads, precision)
  return lax.conv_general_dilated(
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type, **kwargs)


def _is_nhwc(dimension_numbers, ndim: int) -> bool:
  if ndim != 4:
    return False
  if dimension_numbers is None:
    return False  # lax's default is NCHW
  if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
    return dimension_numbers == _NHWC
  return tuple(dimension_numbers) == ("NHWC", "HWIO", "NHWC")


# Inputs with at most this many channels (images) are convolved in space-to-depth form,
# which runs faster than the strided convolution there and slower on wider inputs.
S2D_FORWARD_MAX_CHANNELS = 4
# On a CPU, inputs with at most this many channels (dSprites' images) are convolved tap by tap
# instead: one elementwise pass that XLA fuses with the bias and activation that follow (1.6x
# the space-to-depth form's speed for one channel at batch 64, 0.6x for three).
TAPS_FORWARD_MAX_CHANNELS = 1


def _lax_conv(x, kernel, strides, padding, precision):
  return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_NHWC,
                                  precision=precision)


def _s2d_kernel(kernel, strides):
  """``kernel[a*sh + i, b*sw + j, c, o]`` as ``[a, b, (i, j, c), o]``."""
  (kh, kw, cin, cout), (sh, sw) = kernel.shape, strides
  blocks = kernel.reshape(kh // sh, sh, kw // sw, sw, cin, cout).transpose(0, 2, 1, 3, 4, 5)
  return blocks.reshape(kh // sh, kw // sw, sh * sw * cin, cout)


def _taps(x, kernel, strides, padding):
  """The convolution as a sum over the kernel's taps of strided input slices times its rows.

  ``y[n, p, q, o] = sum_{i, j, c} xpad[n, sh p + i, sw q + j, c] kernel[i, j, c, o]``, each
  term an elementwise product: the whole layer is one loop, without the convolution
  kernels' packing, for inputs too narrow to fill their matrix products.
  """
  (kh, kw, cin, _), (sh, sw) = kernel.shape, strides
  x = jnp.pad(x, ((0, 0),) + tuple(padding) + ((0, 0),))
  batch, height, width, _ = x.shape
  out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
  y = None
  for i in range(kh):
    for j in range(kw):
      window = lax.slice(x, (0, i, j, 0), (batch, i + sh * (out_h - 1) + 1,
                                           j + sw * (out_w - 1) + 1, cin), (1, sh, sw, 1))
      for c in range(cin):
        term = window[..., c, None] * kernel[i, j, c]
        y = term if y is None else y + term
  return y


def _forward(x, kernel, strides, padding, precision):
  """The strided convolution; for narrow inputs tap by tap or as a stride-1 convolution in
  space-to-depth form."""
  if x.shape[-1] <= TAPS_FORWARD_MAX_CHANNELS and jax.default_backend() == "cpu":
    return _taps(x, kernel, strides, padding)
  if x.shape[-1] > S2D_FORWARD_MAX_CHANNELS:
    return _lax_conv(x, kernel, strides, padding, precision)
  (sh, sw), cin = strides, x.shape[-1]
  x = jnp.pad(x, ((0, 0),) + tuple(padding) + ((0, 0),))
  batch, height, width, _ = x.shape
  x = x.reshape(batch, height // sh, sh, width // sw, sw, cin).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(batch, height // sh, width // sw, sh * sw * cin)
  return lax.conv_general_dilated(x, _s2d_kernel(kernel, strides), (1, 1), "VALID",
                                  dimension_numbers=_NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def strided_conv(x, kernel, strides, padding, precision=None):
  """A strided NHWC convolution whose input gradient is computed in space-to-depth form.

  The kernel gradient is ``lax``'s. On a CPU, inputs of at most `TAPS_FORWARD_MAX_CHANNELS`
  channels are convolved tap by tap, and others of at most `S2D_FORWARD_MAX_CHANNELS` in
  space-to-depth form. `form` says where this applies.

  Args:
    x: ``[batch, height, width, in]``.
    kernel: ``[kh, kw, in, out]``, each side a multiple of its stride.
    strides: ``(sh, sw)``.
    padding: ``((top, bottom), (left, right))``.
    precision: ``lax`` precision of the convolutions.

  Returns:
    ``[batch, out_height, out_width, out]``.
  """
  return _forward(x, kernel, strides, padding, precision)


def _strided_fwd(x, kernel, strides, padding, precision):
  return _forward(x, kernel, strides, padding, precision), (x, kernel)


def _strided_bwd(strides, padding, precision, residuals, g):
  x, kernel = residuals
  dkernel = jax.linear_transpose(
      lambda k: _lax_conv(x, k, strides, padding, precision), kernel)(g)[0]
  return input_gradient(g, kernel, x.shape, strides, padding, precision), dkernel


strided_conv.defvjp(_strided_fwd, _strided_bwd)


def input_gradient(g, kernel, input_shape, strides, padding, precision=None):
  """The input gradient of a strided convolution, as a stride-1 convolution in space-to-depth
  form (docs/models.md, "The CNN on a CPU").

  Args:
    g: output gradient ``[batch, out_height, out_width, out]``.
    kernel: ``[kh, kw, in, out]``.
    input_shape: the input's shape ``(batch, height, width, in)``.
    strides: ``(sh, sw)``.
    padding: ``((top, bottom), (left, right))``.
    precision: ``lax`` precision.

  Returns:
    ``[batch, height, width, in]``.
  """
  (kh, kw, cin, _), (sh, sw) = kernel.shape, strides
  bh, bw = kh // sh, kw // sw
  flipped = jnp.flip(_s2d_kernel(kernel, strides), (0, 1)).transpose(0, 1, 3, 2)
  dxs = lax.conv_general_dilated(g, flipped, (1, 1), ((bh - 1, bh - 1), (bw - 1, bw - 1)),
                                 dimension_numbers=_NHWC, precision=precision)
  batch, hs, ws, _ = dxs.shape
  dx = dxs.reshape(batch, hs, ws, sh, sw, cin).transpose(0, 1, 3, 2, 4, 5)
  dx = dx.reshape(batch, hs * sh, ws * sw, cin)
  (top, _), (left, _) = padding
  return dx[:, top:top + input_shape[1], left:left + input_shape[2], :]
