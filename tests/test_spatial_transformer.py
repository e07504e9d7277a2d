"""Tests of gsgen.models.spatial_transformer: the sampler's known answers, identity at
initialisation, shape, size, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_checks import (abstract_call, abstract_model, assert_call_is_head_of_encode,
                          assert_jit_matches_eager, assert_torch_default_init, uniform)

from gsgen.models import cnn
from gsgen.models import num_params
from gsgen.models import spatial_transformer as st




def thetas(rows, batch=2):
  return jnp.broadcast_to(jnp.asarray(rows, jnp.float32), (batch, 2, 3))


IDENTITY = [[1, 0, 0], [0, 1, 0]]


# One concrete model (RGB) serves the numerical tests and the sampler runs jitted: each new
# shape costs a compilation.
warp = jax.jit(st.warp)




@pytest.fixture(scope="module")
def model():
  return st.SpatialTransformer(6, in_channels=3, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def texture():
  return uniform((2, 6, 6, 3), 0)


def test_affine_grid_identity_is_the_pixel_centres():
  grid = np.asarray(st.affine_grid(thetas(IDENTITY, 1), 2, 4))
  np.testing.assert_array_equal(grid[0, ..., 0], [[-0.75, -0.25, 0.25, 0.75]] * 2)
  np.testing.assert_array_equal(grid[0, ..., 1], [[-0.5] * 4, [0.5] * 4])


@pytest.mark.parametrize("shape", [(2, 64, 64, 1), (1, 5, 7, 3)])
def test_identity_warp_returns_the_input(shape):
  x = uniform(shape, 1)
  np.testing.assert_allclose(warp(x, thetas(IDENTITY, shape[0])), x, atol=1e-6)


def test_one_pixel_translation_shifts_by_one_pixel(texture):
  x = np.asarray(texture)
  # +2/w in x: output pixel j shows input pixel j + 1 (content moves left); zeros come in.
  right = np.asarray(warp(texture, thetas([[1, 0, 2 / 6], [0, 1, 0]])))
  np.testing.assert_allclose(right[:, :, :-1], x[:, :, 1:], atol=1e-6)
  np.testing.assert_allclose(right[:, :, -1], 0, atol=1e-6)
  # -2/h in y: output row i shows input row i - 1 (content moves down).
  up = np.asarray(warp(texture, thetas([[1, 0, 0], [0, 1, -2 / 6]])))
  np.testing.assert_allclose(up[:, 1:], x[:, :-1], atol=1e-6)
  np.testing.assert_allclose(up[:, 0], 0, atol=1e-6)


def test_half_pixel_translation_interpolates_linearly(texture):
  x = np.asarray(texture)
  half = np.asarray(warp(texture, thetas([[1, 0, 1 / 6], [0, 1, 0]])))
  np.testing.assert_allclose(half[:, :, :-1], (x[:, :, :-1] + x[:, :, 1:]) / 2, atol=1e-6)
  # The last column is halfway to the zero padding outside.
  np.testing.assert_allclose(half[:, :, -1], x[:, :, -1] / 2, atol=1e-6)


@pytest.mark.parametrize("degrees,k", [(90, 1), (180, 2), (-90, -1)])
def test_rotation_matches_rot90(texture, degrees, k):
  # theta = [[cos a, -sin a], [sin a, cos a]] in (x right, y down) coordinates maps output to
  # source points, which turns the displayed content counter-clockwise by a, as np.rot90 does.
  a = np.deg2rad(degrees)
  theta = thetas([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0]])
  expected = np.rot90(np.asarray(texture), k, axes=(1, 2))
  np.testing.assert_allclose(warp(texture, theta), expected, atol=1e-5)


def test_rotation_is_not_its_inverse(texture):
  # Guards the direction: the test above would also pass for a symmetric texture.
  theta = thetas([[0, -1, 0], [1, 0, 0]])
  wrong = np.rot90(np.asarray(texture), -1, axes=(1, 2))
  assert np.max(np.abs(warp(texture, theta) - wrong)) > 0.1


def test_sampler_is_differentiable_in_theta(texture):
  weights = jnp.asarray(np.random.default_rng(2).normal(size=texture.shape), jnp.float32)
  loss = lambda theta: jnp.sum(warp(texture, theta) * weights)
  # At the identity every point sits on a pixel centre; elsewhere between them.
  for theta in [thetas(IDENTITY), thetas([[0.9, 0.1, 0.05], [-0.2, 1.1, -0.13]])]:
    grad = np.asarray(jax.grad(loss)(theta))
    assert np.all(np.isfinite(grad)) and np.max(np.abs(grad)) > 1e-2
  # Between pixel centres the loss is smooth: the gradient matches central differences.
  eps = 1e-3
  for i, j in [(0, 0), (0, 2), (1, 1), (1, 2)]:
    step = jnp.zeros((2, 2, 3)).at[:, i, j].set(eps)
    numeric = (loss(theta + step) - loss(theta - step)) / (2 * eps)
    np.testing.assert_allclose(grad[:, i, j].sum(), numeric, rtol=2e-2, atol=1e-2)


def test_at_initialisation_the_model_is_the_cnn_on_the_unwarped_image(model):
  c = 3
  x = uniform((2, 64, 64, c), 3)
  np.testing.assert_array_equal(model.transform(x), thetas(IDENTITY))
  # A separate CNN given the model's CNN weights gives the same predictions. (Built abstractly:
  # update then fills in every parameter, which also proves the layouts match.)
  plain = nnx.eval_shape(lambda: cnn.CNN(6, in_channels=c, rngs=nnx.Rngs(42)))
  nnx.update(plain, nnx.state(model.cnn))
  np.testing.assert_allclose(model(x), plain(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_shape(in_channels):
  # Abstract evaluation traces the real code; the concrete RGB output is checked below.
  out = abstract_call(abstract_model(st.SpatialTransformer, 6, in_channels=in_channels),
                      (2, 64, 64, in_channels))
  assert out.shape == (2, 6) and out.dtype == jnp.float32


@pytest.mark.parametrize("in_channels,num_outputs,expected", [
    (1, 5, 441_323), (1, 6, 441_580), (3, 5, 442_859), (3, 6, 443_116)])
def test_parameter_count(in_channels, num_outputs, expected):
  # 4x4 conv a -> b: 16 a b weights + b biases; linear a -> b: a b + b.
  # Localisation network (64 -> 32 -> 16 -> 8 -> 4 pixels):
  #   conv 16 * C * 16 + 16 = 256 C + 16;  conv 16 * 16 * 16 + 16 = 4_112
  #   conv 16 * 16 * 32 + 32 = 8_224;      conv 16 * 32 * 32 + 32 = 16_416
  #   dense (4 * 4 * 32 = 512) * 64 + 64 = 32_832;  theta 64 * 6 + 6 = 390
  #   sum 256 C + 61_990
  # CNN: conv 16 * C * 32 + 32 = 512 C + 32; 16 * 32 * 32 + 32 = 16_416;
  #   16 * 32 * 64 + 64 = 32_832; 16 * 64 * 64 + 64 = 65_600; last 16 * 64 * 256 + 256 = 262_400;
  #   head 256 n + n = 257 n.  Sum 512 C + 377_280 + 257 n.
  # Total: 768 C + 439_270 + 257 n.
  assert 768 * in_channels + 439_270 + 257 * num_outputs == expected
  model = abstract_model(st.SpatialTransformer, num_outputs, in_channels=in_channels)
  assert num_params(model) == expected


def test_jit_matches_eager(model):
  x = uniform((2, 64, 64, 3), 4)
  assert assert_jit_matches_eager(model, x).shape == (2, 6)


def test_encode_is_the_cnn_encoding_of_the_warped_image(model):
  x = uniform((2, 64, 64, 3), 5)
  encoding = assert_call_is_head_of_encode(model, x)
  assert model.head is model.cnn.head and model.encoding_size == 256
  theta = model.transform(x)
  np.testing.assert_allclose(encoding, model.cnn.encode(st.warp(x, theta)), rtol=1e-6)


def test_pytorch_default_init_but_the_identity_theta_layer(model):
  # Four localisation convolutions and its hidden layer, five CNN convolutions and the head;
  # the theta layer starts at zero weights and the identity.
  assert assert_torch_default_init(model, skip={("loc_theta",)}) == 11
  np.testing.assert_array_equal(model.loc_theta.kernel[...], 0)
  np.testing.assert_array_equal(model.loc_theta.bias[...], [1, 0, 0, 0, 1, 0])
