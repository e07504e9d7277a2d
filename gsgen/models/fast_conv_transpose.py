"""``nnx.ConvTranspose`` as matrix products, for the VAE decoder on a CPU.

`apply(layer, x)` equals ``layer(x)`` (same parameters and shapes, values differing only in the
order of sums), with the forward pass and both gradients computed as matrix products where
`supported` (docs/learners.md, "The VAE decoder on a CPU").

Synopsis::

  from flax import nnx
  from gsgen.models import fast_conv_transpose
  from gsgen.models import torch_init
  layer = torch_init.torch_conv_transpose(64, 32, 4, strides=2, padding=1, rngs=nnx.Rngs(0))
  y = fast_conv_transpose.apply(layer, x)    # == layer(x): [batch, 2h, 2w, 32]
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax


def supported(layer: nnx.ConvTranspose) -> bool:
  """Whether `apply` computes ``layer`` as matrix products (otherwise it calls the layer).

  Args:
    layer: a 2-D ``nnx.ConvTranspose``.

  Returns:
    True for a square-strided, unmasked, undilated layer with ``transpose_kernel=True``
    (PyTorch's ``ConvTranspose2d``, as `torch_init.torch_conv_transpose` builds it), kernel
    sides divisible by the stride and explicit padding of at most ``kernel - 1`` per side.
  """
  kh, kw = layer.kernel_size
  strides = _pair(layer.strides)
  padding = layer.padding
  if (isinstance(padding, str) or len(layer.kernel_size) != 2 or not layer.transpose_kernel
      or layer.mask is not None or _pair(layer.kernel_dilation) != (1, 1)
      or layer.dtype not in (None, jnp.float32)):
    return False
  padding = tuple(tuple(p) for p in padding)
  return (len(padding) == 2 and all(k % s == 0 for k, s in zip((kh, kw), strides))
          and all(0 <= p <= k - 1 for (lo, hi), k in zip(padding, (kh, kw)) for p in (lo, hi)))


def apply(layer: nnx.ConvTranspose, x: jax.Array) -> jax.Array:
  """``layer(x)``, computed by `conv_transpose` where `supported`.

  Args:
    layer: an ``nnx.ConvTranspose``.
    x: ``[batch, height, width, in]``.

  Returns:
    ``layer(x)``: ``[batch, out_height, out_width, out]``.
  """
  if not supported(layer) or x.ndim != 4:
    return layer(x)
  # nnx pads the dilated input by k - 1 - p; PyTorch's padding p crops the full output.
  crop = tuple((k - 1 - lo, k - 1 - hi)
               for (lo, hi), k in zip(layer.padding, layer.kernel_size))
  y = conv_transpose(x, layer.kernel[...], _pair(layer.strides), crop)
  if layer.bias is not None:
    y = y + layer.bias[...]
  return y


def _pair(v) -> tuple[int, int]:
  if v is None:
    return (1, 1)
  return (v, v) if isinstance(v, int) else tuple(v)


def _kernel_blocks(kernel, strides):
  """``kernel[a*sh + r, b*sw + t, o, i]`` (nnx's transposed layout) as
  ``[a, b, (r, t, o), i]``: the weight of the input pixel ``(a, b)`` blocks above and left
  of output block ``(r, t)``'s block."""
  (kh, kw, cout, cin), (sh, sw) = kernel.shape, strides
  k = kernel.reshape(kh // sh, sh, kw // sw, sw, cout, cin).transpose(0, 2, 1, 3, 4, 5)
  return k.reshape(kh // sh, kw // sw, sh * sw * cout, cin)


def _kernel(blocks, kernel_shape, strides):
  """The inverse of `_kernel_blocks`."""
  (kh, kw, cout, cin), (sh, sw) = kernel_shape, strides
  k = blocks.reshape(kh // sh, kw // sw, sh, sw, cout, cin).transpose(0, 2, 1, 3, 4, 5)
  return k.reshape(kernel_shape)


def _to_blocks(y, strides, crop):
  """``[batch, H, W, c]`` padded by ``crop``, in ``stride x stride`` blocks:
  ``[batch, H' / sh, W' / sw, sh * sw * c]``."""
  (sh, sw), cout = strides, y.shape[-1]
  y = jnp.pad(y, ((0, 0),) + tuple(crop) + ((0, 0),))
  batch, height, width, _ = y.shape
  y = y.reshape(batch, height // sh, sh, width // sw, sw, cout).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(batch, height // sh, width // sw, sh * sw * cout)


def _from_blocks(blocks, strides, crop):
  """The inverse of `_to_blocks`: pixels, with ``crop`` cropped off."""
  (sh, sw), (batch, rows, cols, c) = strides, blocks.shape
  cout = c // (sh * sw)
  y = blocks.reshape(batch, rows, cols, sh, sw, cout).transpose(0, 1, 3, 2, 4, 5)
  y = y.reshape(batch, rows * sh, cols * sw, cout)
  (top, bottom), (left, right) = crop
  return y[:, top:rows * sh - bottom, left:cols * sw - right, :]


def _windows(t, window, pad):
  """Every ``window`` of ``t`` padded by ``pad`` on each side, one row per position:
  ``[batch * positions, bh * bw * c]``, window offsets major."""
  (bh, bw), (batch, height, width, c) = window, t.shape
  # Materialised, then copied window by window: XLA's fused alternatives run many times slower.
  t = lax.optimization_barrier(jnp.pad(t, ((0, 0), (pad, pad), (pad, pad), (0, 0))))
  rows, cols = height + 2 * pad - bh + 1, width + 2 * pad - bw + 1
  parts = [lax.optimization_barrier(t[:, a:a + rows, b:b + cols, :])
           for a in range(bh) for b in range(bw)]
  return jnp.concatenate(parts, axis=-1).reshape(batch * rows * cols, bh * bw * c)


def _cross(a, b):
  """``a.T @ b`` for matrices of the same rows; XLA's CPU products run far faster with the
  narrower operand transposed."""
  if a.shape[1] <= b.shape[1]:
    return jnp.dot(a.T, b)
  return jnp.dot(b.T, a).T


def _reads_inputs(x_shape, kernel_shape, strides) -> bool:
  """Whether the windows of the input are smaller than each pixel's contribution to its
  window of output blocks (then the forward pass and kernel gradient read input windows)."""
  (_, height, width, cin), (kh, kw, cout, _), (sh, sw) = x_shape, kernel_shape, strides
  bh, bw = kh // sh, kw // sw
  return (height + bh - 1) * (width + bw - 1) * cin <= height * width * sh * sw * cout


def _forward(x, kernel, strides, crop):
  """The transposed convolution and what its gradients reuse."""
  (kh, kw, _, cin), (sh, sw) = kernel.shape, strides
  bh, bw = kh // sh, kw // sw
  batch, height, width, _ = x.shape
  k = _kernel_blocks(kernel, strides)
  if _reads_inputs(x.shape, kernel.shape, strides):
    # Each output block is a product of the input window that ends at it.
    rows = _windows(x, (bh, bw), bh - 1)
    k = k[::-1, ::-1].transpose(0, 1, 3, 2).reshape(bh * bw * cin, -1)
    blocks = jnp.dot(rows, k).reshape(batch, height + bh - 1, width + bw - 1, -1)
    return _from_blocks(blocks, strides, crop), rows
  # Each input pixel's contribution to its window of output blocks, then their sums.
  parts = jnp.dot(x.reshape(-1, cin), k.reshape(-1, cin).T)
  parts = parts.reshape(batch, height, width, bh, bw, -1)
  blocks = sum(jnp.pad(parts[:, :, :, a, b, :],
                       ((0, 0), (a, bh - 1 - a), (b, bw - 1 - b), (0, 0)))
               for a in range(bh) for b in range(bw))
  return _from_blocks(blocks, strides, crop), x


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x, kernel, strides, crop):
  """``lax.conv_transpose(x, kernel, strides, padding, transpose_kernel=True)`` without bias,
  with forward and both gradients as matrix products.

  Args:
    x: ``[batch, height, width, in]``.
    kernel: ``[kh, kw, out, in]`` (``nnx.ConvTranspose`` with ``transpose_kernel=True``),
      each side a multiple of its stride.
    strides: ``(sh, sw)``.
    crop: ``((top, bottom), (left, right))``: PyTorch's ``padding``, cropped off the full
      output of side ``(height - 1) * sh + kh``.

  Returns:
    ``[batch, (height - 1) * sh + kh - top - bottom, (width - 1) * sw + kw - left - right,
    out]``.
  """
  return _forward(x, kernel, strides, crop)[0]


def _conv_transpose_fwd(x, kernel, strides, crop):
  y, saved = _forward(x, kernel, strides, crop)
  return y, (saved, x.shape, kernel)


def _conv_transpose_bwd(strides, crop, residuals, g):
  saved, x_shape, kernel = residuals
  (kh, kw, _, cin), (sh, sw) = kernel.shape, strides
  bh, bw = kh // sh, kw // sw
  blocks = _to_blocks(g, strides, crop)
  if _reads_inputs(x_shape, kernel.shape, strides):
    # ``saved`` holds the input windows; the input gradient is the strided convolution of
    # ``g``, which XLA runs well.
    dk = _cross(saved, blocks.reshape(saved.shape[0], -1))
    dk = dk.reshape(bh, bw, cin, -1).transpose(0, 1, 3, 2)[::-1, ::-1]
    dx = lax.conv_general_dilated(g, kernel, strides, crop,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return dx, _kernel(dk, kernel.shape, strides)
  # ``saved`` is the input: each input pixel reads its window of output-gradient blocks.
  windows = _windows(blocks, (bh, bw), 0)
  k = _kernel_blocks(kernel, strides).reshape(-1, cin)
  dx = jnp.dot(windows, k).reshape(x_shape)
  dk = _cross(windows, saved.reshape(-1, cin))
  return dx, _kernel(dk, kernel.shape, strides)


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)

