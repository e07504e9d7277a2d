"""Tests of gsgen.models.coordconv: coordinate channels, position awareness, shape, size, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_checks import (abstract_call, abstract_model, assert_call_is_head_of_encode,
                          assert_jit_matches_eager, assert_torch_default_init, uniform)

from gsgen.models import coordconv
from gsgen.models import num_params




# One concrete model (RGB) serves the numerical tests: each new shape costs a compilation.


@pytest.fixture(scope="module")
def model():
  return coordconv.CoordConv(6, in_channels=3, rngs=nnx.Rngs(0))


def test_coordinate_channels_corners_and_centre():
  coords = coordconv.coordinate_channels(5, 7)
  assert coords.shape == (5, 7, 2) and coords.dtype == jnp.float32
  c = np.asarray(coords)
  x, y = c[..., 0], c[..., 1]
  # Corners: x is -1 at the left column, +1 at the right; y is -1 at the top row, +1 at the bottom.
  np.testing.assert_array_equal(c[0, 0], [-1, -1])
  np.testing.assert_array_equal(c[0, -1], [1, -1])
  np.testing.assert_array_equal(c[-1, 0], [-1, 1])
  np.testing.assert_array_equal(c[-1, -1], [1, 1])
  # The centre pixel of an odd grid is the origin; x is constant down a column, y along a row.
  np.testing.assert_allclose(c[2, 3], [0, 0], atol=1e-7)
  np.testing.assert_allclose(x[:, 1], np.full(5, -2 / 3), rtol=1e-6)
  np.testing.assert_allclose(y[3, :], np.full(7, 0.5), rtol=1e-6)
  # Evenly spaced, pixel-centre to pixel-centre.
  np.testing.assert_allclose(np.diff(x, axis=1), 1 / 3, rtol=1e-5)
  np.testing.assert_allclose(np.diff(y, axis=0), 0.5, rtol=1e-5)


def test_coordinates_on_an_even_grid_are_symmetric():
  c = np.asarray(coordconv.coordinate_channels(64, 64))
  np.testing.assert_array_equal(c[0, 0], [-1, -1])
  np.testing.assert_array_equal(c[63, 63], [1, 1])
  np.testing.assert_allclose(c[..., 0], -c[:, ::-1, 0], atol=1e-6)
  np.testing.assert_allclose(c[..., 0], c[..., 1].T, atol=0)


def test_add_coordinates_appends_x_then_y():
  x = jnp.full((2, 4, 4, 3), 0.25)
  out = coordconv.add_coordinates(x)
  assert out.shape == (2, 4, 4, 5)
  np.testing.assert_array_equal(out[..., :3], x)
  for b in range(2):
    np.testing.assert_array_equal(out[b, ..., 3:], coordconv.coordinate_channels(4, 4))


def test_coordconv_tells_position_where_a_plain_conv_with_the_same_weights_cannot(model):
  layer = model.convs[0]
  # The plain convolution: the same image weights, without the coordinate channels.
  plain = nnx.eval_shape(lambda: nnx.Conv(3, 32, (4, 4), strides=2, padding=((1, 1), (1, 1)),
                                          rngs=nnx.Rngs(1)))
  nnx.update(plain, nnx.State({"kernel": layer.kernel[:, :, :3, :], "bias": layer.bias[...]}))
  # One white pixel in the interior, then moved right by 8 pixels (a multiple of the stride).
  a = jnp.zeros((1, 64, 64, 3)).at[0, 20, 20].set(1.0)
  b = jnp.zeros((1, 64, 64, 3)).at[0, 20, 28].set(1.0)
  # A global sum pool is a position-free summary: a plain convolution is translation-equivariant,
  # so shifting the dot only permutes its interior responses. The coordinates make the response
  # position-dependent (the ReLU sees a different offset at each pixel).
  pool = lambda h: jnp.sum(jax.nn.relu(h), axis=(1, 2))
  np.testing.assert_allclose(pool(plain(a)), pool(plain(b)), rtol=1e-6)
  coord_pool = lambda x: pool(layer(coordconv.add_coordinates(x)))
  assert np.max(np.abs(coord_pool(a) - coord_pool(b))) > 1e-3


@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_shape(in_channels):
  # Abstract evaluation traces the real code; the concrete RGB output is checked below.
  out = abstract_call(abstract_model(coordconv.CoordConv, 6, in_channels=in_channels),
                      (2, 64, 64, in_channels))
  assert out.shape == (2, 6) and out.dtype == jnp.float32


@pytest.mark.parametrize("in_channels,num_outputs,expected", [
    (1, 5, 393_413), (1, 6, 393_670), (3, 5, 394_437), (3, 6, 394_694)])
def test_parameter_count(in_channels, num_outputs, expected):
  # Each 4x4 conv: 16 * (inputs + 2 coordinate channels) * outputs weights + outputs biases.
  #   conv1: 16 * (C + 2) * 32 + 32 = 512 C + 1_056     (C=1: 1_568; C=3: 2_592)
  #   conv2: 16 * 34 * 32 + 32 = 17_440
  #   conv3: 16 * 34 * 64 + 64 = 34_880
  #   conv4: 16 * 66 * 64 + 64 = 67_648
  #   last:  16 * 66 * 256 + 256 = 270_592
  #   head:  256 * n + n = 257 n                       (n=5: 1_285; n=6: 1_542)
  # Sum: 512 C + 391_616 + 257 n -> C=1: 392_128 + 257 n; C=3: 393_152 + 257 n.
  # The coordinates cost 2 * 16 * (32 + 32 + 64 + 64 + 256) = 14_336 over the plain CNN.
  assert 512 * in_channels + 391_616 + 257 * num_outputs == expected
  model = abstract_model(coordconv.CoordConv, num_outputs, in_channels=in_channels)
  assert num_params(model) == expected


def test_jit_matches_eager(model):
  x = uniform((2, 64, 64, 3), 1)
  assert assert_jit_matches_eager(model, x).shape == (2, 6)


def test_call_is_head_of_encode(model):
  encoding = assert_call_is_head_of_encode(model, uniform((2, 64, 64, 3), 5))
  assert encoding.shape == (2, 256)


def test_pytorch_default_init_counts_the_coordinate_channels(model):
  # Five convolutions and the head; a convolution's fan-in is 16 * (inputs + 2), e.g. the
  # first one's is 16 * 5 = 80, as a PyTorch Conv2d over the concatenated channels.
  assert assert_torch_default_init(model) == 6
  assert np.max(np.abs(model.convs[0].kernel[...])) > 0.9 / np.sqrt(80)
