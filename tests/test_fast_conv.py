"""The fast convolution forms: the same layers as lax's, and the CNN the same model as before."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax
from model_checks import uniform

from gsgen import models
from gsgen.models import cnn
from gsgen.models import fast_conv

NHWC = ("NHWC", "HWIO", "NHWC")


def _lax(x, w, strides, padding):
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)


def _fast(x, w, strides, padding):
  return fast_conv.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)


@pytest.mark.parametrize("kernel,image,strides,padding,expected", [
    ((4, 4, 32, 64), (8, 32, 32, 32), (2, 2), ((1, 1), (1, 1)), "strided"),   # the CNN's
    ((4, 4, 64, 256), (8, 4, 4, 64), (1, 1), "VALID", "dot"),                # its last layer
    ((4, 4, 64, 256), (8, 2, 2, 64), (1, 1), ((1, 1), (1, 1)), "lax"),       # padded to 4x4
    ((6, 6, 3, 5), (2, 12, 12, 3), (3, 3), ((0, 0), (3, 3)), "strided"),
    ((3, 3, 8, 8), (2, 16, 16, 8), (2, 2), ((1, 1), (1, 1)), "lax"),         # 3 % 2 != 0
    ((4, 4, 8, 8), (2, 15, 15, 8), (2, 2), ((1, 1), (1, 1)), "lax"),         # partial window
    ((4, 4, 8, 8), (2, 16, 16, 8), (1, 1), ((1, 1), (1, 1)), "lax"),         # stride 1
    ((4, 4, 8, 8), (2, 16, 16, 8), (2, 2), "SAME", "lax"),
])
def test_form_known_answers(kernel, image, strides, padding, expected):
  assert fast_conv.form(kernel, image, strides, padding) == expected


@pytest.mark.parametrize("side,cin,cout,k,s,padding", [
    (64, 1, 32, 4, 2, ((1, 1), (1, 1))),    # the CNN's first layer: tap by tap
    (12, 1, 5, 6, 3, ((0, 0), (3, 3))),     # tap by tap, stride 3, one axis padded
    (9, 1, 4, 4, 2, ((2, 1), (0, 1))),      # tap by tap, asymmetric padding, odd side
    (16, 32, 64, 4, 2, ((1, 1), (1, 1))),
    (12, 3, 5, 6, 3, ((0, 0), (3, 3))),     # stride 3, padding on one axis only
    (12, 6, 5, 6, 3, ((0, 0), (3, 3))),
    (9, 2, 4, 4, 2, ((2, 1), (0, 1))),      # asymmetric padding, odd side
    (8, 4, 4, 4, 4, ((0, 0), (0, 0))),      # kernel == stride: 1x1 blocks
])
def test_strided_conv_is_lax_with_the_same_gradients(side, cin, cout, k, s, padding):
  x = uniform((3, side, side, cin), 0, -1, 1)
  w = uniform((k, k, cin, cout), 1, -1, 1)
  assert fast_conv.form(w.shape, x.shape, (s, s), padding) == "strided"
  want, want_vjp = jax.vjp(lambda x, w: _lax(x, w, (s, s), padding), x, w)
  got, got_vjp = jax.vjp(lambda x, w: _fast(x, w, (s, s), padding), x, w)
  if cin > fast_conv.S2D_FORWARD_MAX_CHANNELS:
    np.testing.assert_array_equal(got, want)      # the forward pass is lax's own
  else:                                           # tap by tap or in space-to-depth form
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  g = uniform(want.shape, 2, -1, 1)
  (want_dx, want_dw), (got_dx, got_dw) = want_vjp(g), got_vjp(g)
  np.testing.assert_allclose(got_dx, want_dx, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(got_dw, want_dw)  # the kernel gradient too


@pytest.mark.parametrize("cin,convolutions", [(1, 0), (2, 1), (3, 1), (8, 1)])
def test_single_channel_inputs_are_convolved_tap_by_tap_on_a_cpu(cin, convolutions):
  """One channel: a loop of elementwise products (fused with what follows), no convolution."""
  if jax.default_backend() != "cpu":
    pytest.skip("the tap-by-tap form is the CPU's; accelerators keep the convolution")
  x, w = jnp.ones((2, 16, 16, cin)), jnp.ones((4, 4, cin, 8))
  program = jax.jit(lambda x, w: jax.nn.relu(_fast(x, w, (2, 2), ((1, 1), (1, 1))))).lower(
      x, w).compile().as_text()
  assert program.count(" convolution(") == convolutions


def test_input_gradient_has_no_dilated_convolution():
  """The point of the form: lax's input gradient convolves a zero-dilated input."""
  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((4, 4, 3, 4))

  def program(conv):
    grad = jax.grad(lambda x, w: conv(x, w, (2, 2), ((1, 1), (1, 1))).sum(), argnums=(0, 1))
    return jax.jit(grad).lower(x, w).as_text()

  assert "lhs_dilate = [2, 2]" in program(_lax)
  assert "lhs_dilate = [2, 2]" not in program(_fast)


def test_whole_window_convolution_is_a_dot_with_the_same_values_and_gradients():
  x, w = uniform((5, 4, 4, 64), 0, -1, 1), uniform((4, 4, 64, 256), 1, -0.1, 0.1)
  want, want_vjp = jax.vjp(lambda x, w: _lax(x, w, (1, 1), "VALID"), x, w)
  got, got_vjp = jax.vjp(lambda x, w: _fast(x, w, (1, 1), "VALID"), x, w)
  assert got.shape == want.shape == (5, 1, 1, 256)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  g = uniform(want.shape, 2, -1, 1)
  for a, b in zip(got_vjp(g), want_vjp(g)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  assert "dot_general" in jax.jit(lambda x, w: _fast(x, w, (1, 1), "VALID")).lower(x, w).as_text()


@pytest.mark.parametrize("kwargs", [
    {"rhs_dilation": (2, 2)}, {"lhs_dilation": (2, 2)}, {"feature_group_count": 2},
    {"dimension_numbers": ("NCHW", "OIHW", "NCHW")},
])
def test_anything_else_is_lax_unchanged(kwargs):
  x, w = uniform((2, 8, 8, 4), 0), uniform((4, 4, 4, 4), 1)
  if kwargs.get("feature_group_count"):
    w = w[:, :, :2]
  if "dimension_numbers" in kwargs:
    x, w = x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1)
  args = (x, w, (2, 2), ((1, 1), (1, 1)))
  full = {"dimension_numbers": NHWC, **kwargs}
  np.testing.assert_array_equal(fast_conv.conv_general_dilated(*args, **full),
                                lax.conv_general_dilated(*args, **full))


def _plain_cnn(params: dict, x, coordinates=None):
  """The CNN written with lax convolutions only, from its parameters (the reference)."""
  def prepare(x):
    return x if coordinates is None else coordinates(x)
  for i in range(4):
    conv = params["convs"][i]
    x = jax.nn.relu(_lax(prepare(x), conv["kernel"], (2, 2), ((1, 1), (1, 1))) + conv["bias"])
  last = params["last"]
  x = jax.nn.relu(_lax(prepare(x), last["kernel"], (1, 1), "VALID") + last["bias"])
  x = x.reshape(x.shape[0], -1)
  return x @ params["head"]["kernel"] + params["head"]["bias"]


@pytest.mark.parametrize("name", ["cnn", "coordconv"])
def test_cnn_is_the_same_model_as_plain_lax_convolutions(name):
  model = models.create(name, 5, in_channels=1, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  x = uniform((4, 64, 64, 1), 3)
  y = uniform((4, 5), 4)
  coordinates = model.prepare if name == "coordconv" else None

  def loss_fast(p):
    return jnp.mean((nnx.merge(graphdef, p)(x) - y) ** 2)

  def loss_plain(p):
    return jnp.mean((_plain_cnn(nnx.to_pure_dict(p), x, coordinates) - y) ** 2)

  np.testing.assert_allclose(model(x), _plain_cnn(nnx.to_pure_dict(params), x, coordinates),
                             rtol=1e-5, atol=1e-6)
  (lf, gf), (lp, gp) = jax.value_and_grad(loss_fast)(params), jax.value_and_grad(loss_plain)(params)
  np.testing.assert_allclose(lf, lp, rtol=1e-6)
  for (path, a), (_, b) in zip(nnx.to_flat_state(gf), nnx.to_flat_state(gp)):
    np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=1e-4, atol=1e-6,
                               err_msg=str(path))


def test_cnn_parameters_keep_their_names_and_shapes():
  """Checkpoints and weight maps address these paths."""
  model = models.create("cnn", 5, in_channels=1, rngs=nnx.Rngs(0))
  shapes = {"/".join(map(str, path)): tuple(v.get_value().shape)
            for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  assert shapes == {
      "convs/0/kernel": (4, 4, 1, 32), "convs/0/bias": (32,),
      "convs/1/kernel": (4, 4, 32, 32), "convs/1/bias": (32,),
      "convs/2/kernel": (4, 4, 32, 64), "convs/2/bias": (64,),
      "convs/3/kernel": (4, 4, 64, 64), "convs/3/bias": (64,),
      "last/kernel": (4, 4, 64, 256), "last/bias": (256,),
      "head/kernel": (256, 5), "head/bias": (5,)}


def test_cnn_encodes_large_cpu_batches_in_chunks_with_the_same_values():
  model = models.create("cnn", 5, in_channels=1, rngs=nnx.Rngs(0))
  x = uniform((3 * cnn.CPU_CHUNK, 64, 64, 1), 5)
  lowered = lambda m, x: jax.jit(lambda s, x: nnx.merge(nnx.graphdef(m), s)(x)).lower(
      nnx.state(m), x).as_text()
  # Training takes the batch whole: the gradient of a loop over chunks is far slower.
  assert "stablehlo.while" not in lowered(model, x)
  model.eval()
  graphdef, state = nnx.split(model)
  program = lowered(model, x)
  assert "stablehlo.while" in program     # one compiled loop over the chunks
  whole = jax.jit(lambda s, x: nnx.merge(graphdef, s)._encode(x))(state, x)
  np.testing.assert_allclose(model.encode(x), whole, rtol=1e-5, atol=1e-6)
  # A batch that is not a multiple of the chunk goes in one piece.
  odd = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)).lower(state, x[:70]).as_text()
  assert "stablehlo.while" not in odd


def _values_and_gradients(model, x):
  graphdef, state = nnx.split(model)
  loss = lambda s: jnp.sum(jnp.sin(nnx.merge(graphdef, s)(x)))
  value, grads = jax.jit(jax.value_and_grad(loss))(state)
  return value, jax.tree.leaves(grads)


def test_cnn_trains_cpu_batches_in_chunks_with_the_same_values_and_gradients(monkeypatch):
  """The training form: chunks unrolled in one program, the model's function unchanged."""
  model = models.create("cnn", 5, in_channels=1, rngs=nnx.Rngs(0))
  x = uniform((64, 64, 64, 1), 6)
  monkeypatch.setattr(cnn, "CPU_TRAIN_CHUNK", 0)
  whole = _values_and_gradients(model, x)
  monkeypatch.setattr(cnn, "CPU_TRAIN_CHUNK", 16)
  program = jax.jit(lambda s, x: nnx.merge(nnx.graphdef(model), s)(x)).lower(
      nnx.state(model), x).as_text()
  assert program.count("stablehlo.convolution") == 4 * whole_convolutions(model, x)
  chunked = _values_and_gradients(model, x)
  np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-5)
  for a, b in zip(chunked[1], whole[1]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))


def whole_convolutions(model, x):
  """Convolutions in the program of ``model`` on ``x`` taken whole."""
  saved, cnn.CPU_TRAIN_CHUNK = cnn.CPU_TRAIN_CHUNK, 0
  try:
    return jax.jit(lambda s, x: nnx.merge(nnx.graphdef(model), s)(x)).lower(
        nnx.state(model), x).as_text().count("stablehlo.convolution")
  finally:
    cnn.CPU_TRAIN_CHUNK = saved
