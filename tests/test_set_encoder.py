"""Tests of gsgen.models.set_encoder: pixel set, permutation invariance, shape, size, jit."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_checks import (abstract_call, abstract_model, assert_call_is_head_of_encode,
                          assert_jit_matches_eager, assert_torch_default_init, uniform)

from gsgen.models import coordconv
from gsgen.models import num_params
from gsgen.models import set_encoder




# One concrete model (RGB) serves the numerical tests: each new shape costs a compilation.


@pytest.fixture(scope="module")
def model():
  return set_encoder.SetEncoder(6, in_channels=3, rngs=nnx.Rngs(0))


def test_pixels_to_set_known_elements():
  x = uniform((2, 4, 5, 3), 0)
  elements = np.asarray(set_encoder.pixels_to_set(x))
  assert elements.shape == (2, 20, 5)
  coords = np.asarray(coordconv.coordinate_channels(4, 5))
  for b, i, j in [(0, 0, 0), (1, 0, 4), (1, 3, 0), (0, 2, 3)]:
    row = elements[b, i * 5 + j]  # raster order
    np.testing.assert_array_equal(row[:2], coords[i, j])
    np.testing.assert_array_equal(row[2:], x[b, i, j])
  # Top-left pixel is (-1, -1), bottom-right (+1, +1).
  np.testing.assert_array_equal(elements[0, 0, :2], [-1, -1])
  np.testing.assert_array_equal(elements[0, -1, :2], [1, 1])


def test_permuting_the_elements_leaves_the_output_unchanged(model):
  c = 3
  elements = uniform((2, 50, 2 + c), 1, -1.0, 1.0)
  rng = np.random.default_rng(2)
  perm = np.stack([rng.permutation(50), rng.permutation(50)])
  shuffled = jnp.take_along_axis(elements, perm[..., None], axis=1)
  assert not np.allclose(shuffled, elements)  # a real reordering, different per example
  out = model.from_set(elements)
  np.testing.assert_allclose(model.from_set(shuffled), out, rtol=1e-5, atol=1e-6)
  # ... while changing one element's content does change it: the invariance is not constancy.
  changed = elements.at[:, 7].set(jnp.array([0.9, -0.9] + [1.0] * c))
  assert np.min(np.max(np.abs(model.from_set(changed) - out), axis=-1)) > 1e-4


def test_model_is_the_set_function_of_its_pixels_in_any_order(model):
  x = uniform((2, 64, 64, 3), 3)
  elements = set_encoder.pixels_to_set(x)
  reversed_set = elements[:, ::-1]
  np.testing.assert_allclose(model.from_set(reversed_set), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_shape(in_channels):
  # Abstract evaluation traces the real code; the concrete RGB output is checked below.
  out = abstract_call(abstract_model(set_encoder.SetEncoder, 6, in_channels=in_channels),
                      (2, 64, 64, in_channels))
  assert out.shape == (2, 6) and out.dtype == jnp.float32


@pytest.mark.parametrize("in_channels,num_outputs,expected", [
    (1, 5, 36_549), (1, 6, 36_806), (3, 5, 36_613), (3, 6, 36_870)])
def test_parameter_count(in_channels, num_outputs, expected):
  # Elements have 2 + C features (x, y, channels). Linear a -> b: a * b weights + b biases.
  #   element 1: (2 + C) * 32 + 32 = 32 C + 96         (C=1: 128; C=3: 192)
  #   element 2: 32 * 64 + 64 = 2_112
  #   pooled: mean (64) ++ max (64) = 128 features, no parameters
  #   head 1: 128 * 256 + 256 = 33_024
  #   head:   256 * n + n = 257 n                       (n=5: 1_285; n=6: 1_542)
  # Sum: 32 C + 35_232 + 257 n.
  assert 32 * in_channels + 35_232 + 257 * num_outputs == expected
  model = abstract_model(set_encoder.SetEncoder, num_outputs, in_channels=in_channels)
  assert num_params(model) == expected


def test_jit_matches_eager(model):
  x = uniform((2, 64, 64, 3), 4)
  assert assert_jit_matches_eager(model, x).shape == (2, 6)


def test_encode_is_the_pooled_set_and_the_head_reads_it(model):
  x = uniform((2, 64, 64, 3), 5)
  encoding = assert_call_is_head_of_encode(model, x)
  assert model.encoding_size == 128
  np.testing.assert_array_equal(encoding, model.pool(set_encoder.pixels_to_set(x)))
  # Mean then max of non-negative embeddings: each max is at least its mean.
  mean, top = np.asarray(encoding[:, :64]), np.asarray(encoding[:, 64:])
  assert np.min(mean) >= 0 and np.all(top >= mean - 1e-6) and np.max(top) > 0


def test_pytorch_default_init(model):
  # Two element layers, one hidden head layer and the output layer.
  assert assert_torch_default_init(model) == 4
