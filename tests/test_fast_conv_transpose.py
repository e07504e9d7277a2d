"""The transposed convolution as matrix products: the layer's values and gradients, and the
VAE decoder the same function as with its plain layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_checks import uniform

from gsgen.models import fast_conv_transpose
from gsgen.models import latent
from gsgen.models import torch_init


def assert_close(got, want, rel=1e-5):
  """Equal up to ``rel`` of the largest magnitude (sums taken in another order)."""
  got, want = np.asarray(got), np.asarray(want)
  assert got.shape == want.shape
  assert np.abs(got - want).max() <= rel * np.abs(want).max(), np.abs(got - want).max()


def values_and_gradients(layer, x, fn):
  """``fn(layer, x)`` and the gradients of a random projection of it for input, kernel and
  bias."""
  graphdef, state = nnx.split(layer)
  g = uniform(jax.eval_shape(layer, x).shape, 7, -1, 1)

  @jax.jit  # one program: eager JAX would compile every operation on its own
  def run(state, x):
    y, vjp = jax.vjp(lambda s, x: fn(nnx.merge(graphdef, s), x), state, x)
    dstate, dx = vjp(g)
    return y, dx, dstate["kernel"][...], dstate["bias"][...]

  return run(state, x)


def assert_same_as_layer(layer, x):
  """`apply` gives the layer's output and gradients."""
  assert fast_conv_transpose.supported(layer)
  want = values_and_gradients(layer, x, lambda m, x: m(x))
  got = values_and_gradients(layer, x, fast_conv_transpose.apply)
  for g, w in zip(got, want):
    assert_close(g, w)


@pytest.mark.parametrize("cin,cout,stride,padding,side", [
    (16, 8, 1, 0, 1),     # the decoder's first layer: 1x1 -> 4x4
    (8, 8, 2, 1, 4),      # its upsampling layers (input windows)
    (8, 4, 2, 1, 6),
    (8, 1, 2, 1, 8),      # its last layer (output windows: one channel)
    (3, 5, 2, 0, 3),      # no padding
    (2, 3, 2, 3, 5),      # padding kernel - 1
])
def test_the_decoders_layers(cin, cout, stride, padding, side):
  layer = torch_init.torch_conv_transpose(cin, cout, 4, strides=stride, padding=padding,
                                          rngs=nnx.Rngs(0))
  assert_same_as_layer(layer, uniform((3, side, side, cin), 1, -1, 1))


@pytest.mark.parametrize("kernel,strides,padding,shape", [
    ((6, 6), (3, 3), ((2, 2), (2, 2)), (2, 4, 4, 3)),       # stride 3
    ((4, 6), (2, 3), ((1, 2), (3, 4)), (2, 3, 5, 4)),       # rectangular, asymmetric padding
    ((2, 2), (2, 2), ((1, 1), (1, 1)), (2, 5, 3, 6)),       # kernel == stride
])
def test_other_shapes_strides_and_paddings(kernel, strides, padding, shape):
  layer = nnx.ConvTranspose(shape[-1], 3, kernel, strides=strides, padding=padding,
                            transpose_kernel=True, rngs=nnx.Rngs(0),
                            bias_init=nnx.initializers.normal(1.0))
  assert_same_as_layer(layer, uniform(shape, 2, -1, 1))


def test_both_forms_are_used_by_the_decoder():
  """The forward pass reads input windows where they are smaller than each pixel's
  contribution, which is what decides the decoder's layers' forms."""
  reads = fast_conv_transpose._reads_inputs  # pylint: disable=protected-access
  assert not reads((64, 1, 1, 256), (4, 4, 64, 256), (1, 1))
  assert reads((64, 16, 16, 32), (4, 4, 32, 32), (2, 2))
  assert not reads((64, 32, 32, 32), (4, 4, 1, 32), (2, 2))


@pytest.mark.parametrize("layer,expected", [
    (lambda r: torch_init.torch_conv_transpose(4, 4, 4, strides=2, padding=1, rngs=r), True),
    (lambda r: torch_init.torch_conv_transpose(4, 4, 3, strides=2, padding=1, rngs=r), False),
    (lambda r: nnx.ConvTranspose(4, 4, (4, 4), strides=2, padding="SAME", rngs=r), False),
    (lambda r: nnx.ConvTranspose(4, 4, (4, 4), strides=2, padding=((1, 1), (1, 1)),
                                 rngs=r), False),                # transpose_kernel=False
    (lambda r: nnx.ConvTranspose(4, 4, (4, 4), strides=2, padding=((1, 1), (1, 1)),
                                 transpose_kernel=True, kernel_dilation=2, rngs=r), False),
])
def test_supported_known_answers(layer, expected):
  layer = layer(nnx.Rngs(0))
  assert fast_conv_transpose.supported(layer) is expected
  x = uniform((1, 3, 3, 4), 3)
  graphdef, state = nnx.split(layer)
  fast = jax.jit(lambda s, x: fast_conv_transpose.apply(nnx.merge(graphdef, s), x))
  assert_close(fast(state, x), layer(x), rel=1e-6)


def test_decoder_is_the_plain_layers_function(monkeypatch):
  decoder = latent.Decoder(10, 3, rngs=nnx.Rngs(0))
  torch_init.kaiming_normal(decoder, nnx.Rngs(1))   # as the VAEs start
  graphdef, state = nnx.split(decoder)
  z, g = uniform((2, 10), 4, -2, 2), uniform((2, 64, 64, 3), 5, -1, 1)

  @jax.jit
  def run(state, z):
    y, vjp = jax.vjp(lambda s, z: nnx.merge(graphdef, s)(z), state, z)
    return [y] + jax.tree.leaves(vjp(g))

  got = run(state, z)
  monkeypatch.setattr(fast_conv_transpose, "apply", lambda layer, x: layer(x))
  want = jax.jit(run.__wrapped__)(state, z)
  assert len(got) == len(want) == 1 + 2 + 2 * len(latent.DECONVS) + 2 + 1
  for a, b in zip(got, want):
    assert_close(a, b)
  assert jnp.all(jnp.isfinite(got[0]))


def test_decoder_gradient_has_no_dilated_convolution():
  """The point of the form: XLA's gradient of a transposed convolution convolves a
  zero-dilated input or dilates its window by the stride."""
  decoder = latent.Decoder(4, 1, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(decoder)
  z = jnp.zeros((2, 4))

  def program(apply):
    grad = jax.grad(lambda s: jnp.sum(nnx.merge(graphdef, s)(z)))
    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(fast_conv_transpose, "apply", apply)
      return jax.jit(grad).lower(state).as_text()

  assert "dilate = [2, 2]" in program(lambda layer, x: layer(x))
  assert "dilate = [2, 2]" not in program(fast_conv_transpose.apply)
