"""Tests for gsgen.models.equivariant: shapes, parameter counts, exact C4 equivariance.

Run: python -m pytest tests/test_equivariant.py -q

Most tests fill parameters from numpy instead of running the initialisers: on this CPU each
new parameter shape costs a PRNG compilation, which would dominate the file's run time.
Random non-zero biases also pin that biases are shared across the rotation axis (the zero
initial biases would hide a rotation-dependent bias).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from model_checks import abstract_model

from gsgen.models import equivariant
from gsgen.models import num_params

ATOL = 1e-5  # float32 rounding only: activations are O(1), observed errors are ~1e-6.


def _act(f, k=1):
  """The C4 action on group features, written independently of the module: spatial
  np.rot90 by k and the rotation axis rolled by k, so channel r comes from channel r - k."""
  return np.roll(np.rot90(np.asarray(f), k, axes=(1, 2)), k, axis=3)


def _rot(x, k=1):
  return np.rot90(np.asarray(x), k, axes=(1, 2))


def _images(in_channels=1, batch=1, size=64, seed=1):
  return np.random.default_rng(seed).uniform(
      size=(batch, size, size, in_channels)).astype(np.float32)


def _random(make, seed=0):
  """Builds ``make()`` abstractly and fills its parameters with scaled normal noise."""
  graphdef, state = nnx.split(nnx.eval_shape(make))
  rng = np.random.default_rng(seed)

  def fill(a):
    if len(a.shape) == 1:
      return jnp.asarray(0.1 * rng.standard_normal(a.shape), jnp.float32)
    fan_in = np.prod(a.shape[:-1])
    return jnp.asarray(rng.standard_normal(a.shape) / np.sqrt(fan_in), jnp.float32)

  return nnx.merge(graphdef, jax.tree.map(fill, state))


def _model(in_channels=1, num_outputs=5):
  return _random(lambda: equivariant.EquivariantCNN(
      num_outputs, in_channels=in_channels, rngs=nnx.Rngs(0)))


@nnx.jit
def _features(model, x):
  return model.layer_outputs(x)


# Shared so that every call with the same model structure and input shape reuses one
# compilation.
_forward = nnx.jit(lambda model, x: model(x))


@pytest.fixture(scope="module")
def model1():
  return _model(1, 5)


@pytest.fixture(scope="module")
def rotated_features1(model1):
  """Features of one image rotated by k = 0, 1, -1, 2 quarter turns, in one batch."""
  x = _images(1)
  batch = np.concatenate([_rot(x, k) for k in (0, 1, -1, 2)])
  feats = [np.asarray(f) for f in _features(model1, batch)]
  return {k: [f[i:i + 1] for f in feats] for i, k in enumerate((0, 1, -1, 2))}


@pytest.fixture(scope="module")
def initialised():
  """The only model built by the real initialisers. Narrow and with equal widths, so that
  it has three distinct kernel shapes (each costs seconds of PRNG compilation here)."""
  return equivariant.EquivariantCNN(5, in_channels=1, rngs=nnx.Rngs(0),
                                    channels=(8, 8, 8, 8), features=8)


def test_output_shape_with_real_init(initialised):
  out = _forward(initialised, _images(1, batch=2))
  assert out.shape == (2, 5)
  assert out.dtype == jnp.float32
  assert np.all(np.isfinite(out))
  assert initialised.head.in_features == 4 * 8


@pytest.mark.parametrize("in_channels,num_outputs", [(1, 5), (3, 6)])
def test_output_shape(in_channels, num_outputs):
  out = _forward(_model(in_channels, num_outputs), _images(in_channels, batch=2))
  assert out.shape == (2, num_outputs)


@pytest.mark.parametrize("in_channels,num_outputs,expected", [
    (1, 5, 379_877), (3, 6, 380_902), (3, 5, 380_389), (1, 6, 380_390)])
def test_parameter_count(in_channels, num_outputs, expected):
  # Kernels are [4, 4, (4 rotations,) in, out] plus one bias per output channel (shared by
  # the 4 rotations); C = in_channels, N = num_outputs.
  #   lifting  C -> 16:  4*4*C*16        + 16  =     256*C + 16
  #   group   16 -> 16:  4*4*4*16*16     + 16  =  16_384 + 16  =  16_400
  #   group   16 -> 32:  4*4*4*16*32     + 32  =  32_768 + 32  =  32_800
  #   group   32 -> 32:  4*4*4*32*32     + 32  =  65_536 + 32  =  65_568
  #   last    32 -> 128: 4*4*4*32*128    + 128 = 262_144 + 128 = 262_272
  #   head   4*128 -> N: 512*N           + N   =     513*N
  # Sum of the middle four: 377_040.
  #   C=1, N=5: 272 + 377_040 + 2_565 = 379_877    C=3, N=6: 784 + 377_040 + 3_078 = 380_902
  #   C=3, N=5: 784 + 377_040 + 2_565 = 380_389    C=1, N=6: 272 + 377_040 + 3_078 = 380_390
  # (cnn.CNN with C=1, N=5 has 379_077: the layouts are peers by design.)
  assert expected == 256 * in_channels + 16 + 377_040 + 513 * num_outputs
  model = abstract_model(equivariant.EquivariantCNN, num_outputs, in_channels=in_channels)
  assert num_params(model) == expected


def test_rotate_is_a_c4_action():
  f = np.random.default_rng(0).standard_normal((1, 5, 5, 4, 2)).astype(np.float32)
  for k in (-1, 1, 2, 3):
    np.testing.assert_array_equal(equivariant.rotate(f, k), _act(f, k))
  np.testing.assert_array_equal(equivariant.rotate(f, 4), f)
  # Known answer for the direction: channel 1 of the result is channel 0 rotated.
  np.testing.assert_array_equal(_act(f)[:, :, :, 1], _rot(f)[:, :, :, 0])


def test_every_layer_is_equivariant(rotated_features1):
  feats, rotated = rotated_features1[0], rotated_features1[1]
  # Lifting, three strided group convs (the downsampling) and the last valid group conv,
  # each before and after its ReLU.
  assert [f.shape[1] for f in feats] == [32, 32, 16, 16, 8, 8, 4, 4, 1, 1]
  for i, (f, g) in enumerate(zip(feats, rotated)):
    assert f.shape[3] == 4
    assert np.max(np.abs(f)) > 0.1, "degenerate features would pass trivially"
    np.testing.assert_allclose(g, _act(f), atol=ATOL, err_msg=f"layer {i}")


def test_every_layer_is_equivariant_three_channels():
  model = _model(3, 6)
  x = _images(3)
  feats = [np.asarray(f) for f in _features(model, np.concatenate([x, _rot(x)]))]
  for i, f in enumerate(feats):
    np.testing.assert_allclose(f[1:], _act(f[:1]), atol=ATOL, err_msg=f"layer {i}")


def test_equivariance_direction_convention(rotated_features1):
  """rot90 by +1 pairs with a roll of +1 (not -1 or 0); clockwise with -1; a half turn with
  2. The wrong shifts must fail clearly, or the property test would be vacuous."""
  f = rotated_features1[0][4]  # after the second group conv and its ReLU
  g = rotated_features1[1][4]
  assert np.max(np.abs(g - np.roll(_rot(f), -1, axis=3))) > 0.1
  assert np.max(np.abs(g - _rot(f))) > 0.1
  for k in (-1, 2):
    for i, f in enumerate(rotated_features1[0]):
      np.testing.assert_allclose(rotated_features1[k][i], _act(f, k), atol=ATOL,
                                 err_msg=f"k={k} layer {i}")


def _layer_errors(size, kernel, strides, padding, in_features=2):
  """Max |layer(rotated input) - rotated layer(input)| for a lifting and a group layer."""
  lift = _random(lambda: equivariant.GroupConv(
      in_features, 3, kernel, lifting=True, strides=strides, padding=padding,
      rngs=nnx.Rngs(0)))
  group = _random(lambda: equivariant.GroupConv(
      3, 2, kernel, lifting=False, strides=strides, padding=padding, rngs=nnx.Rngs(0)), 1)
  x = _images(in_features, size=size)
  # Both inputs in one batch: one compilation per layer.
  lifted = np.asarray(nnx.jit(lambda m, v: m(v))(lift, np.concatenate([x, _rot(x)])))
  lift_err = np.max(np.abs(lifted[1:] - _act(lifted[:1])))
  f = np.random.default_rng(2).standard_normal((1, size, size, 4, 3)).astype(np.float32)
  grouped = np.asarray(nnx.jit(lambda m, v: m(v))(group, np.concatenate([f, _act(f)])))
  group_err = np.max(np.abs(grouped[1:] - _act(grouped[:1])))
  return lift_err, group_err


@pytest.mark.parametrize("size,kernel,padding", [
    (7, 3, "SAME"), (8, 3, ((1, 1), (1, 1))), (9, 5, ((2, 2), (2, 2)))])
def test_group_conv_equivariant_at_stride_one(size, kernel, padding):
  # Odd kernels with symmetric padding keep the grid centred on any size, even or odd.
  lift_err, group_err = _layer_errors(size, kernel, 1, padding)
  assert lift_err < ATOL and group_err < ATOL


@pytest.mark.parametrize("size,kernel,strides,padding", [
    (8, 3, 2, ((1, 1), (1, 1))),   # windows centred at 0, 2, 4, 6: not symmetric about 3.5
    (8, 4, 1, "SAME"),             # XLA pads (1, 2): the grid shifts by half a pixel
    (9, 4, 2, ((1, 1), (1, 1))),   # centres at 0.5 .. 6.5 on a grid centred at 4
])
def test_broken_sampling_grid_is_detected(size, kernel, strides, padding):
  """Controls: sampling grids that do not map onto themselves under rot90 must fail the
  same check the model passes, which shows the check can fail."""
  lift_err, group_err = _layer_errors(size, kernel, strides, padding)
  assert lift_err > 0.05 and group_err > 0.05


def test_head_output_is_not_rotation_invariant(model1, rotated_features1):
  x = _images(1)
  out = np.asarray(_forward(model1, np.concatenate([x, _rot(x)])))
  assert np.max(np.abs(out[0] - out[1])) > 1e-3
  # The head reads the same numbers permuted: only the rotation axis moved.
  last, last_rot = rotated_features1[0][-1], rotated_features1[1][-1]
  np.testing.assert_allclose(last_rot, np.roll(last, 1, axis=3), atol=ATOL)
  assert np.max(np.abs(last_rot - last)) > 1e-3


def test_jit_matches_eager(model1):
  x = _images(1, batch=2)
  eager = model1(x)
  np.testing.assert_allclose(_forward(model1, x), eager, atol=1e-5)
  graphdef, state = nnx.split(model1)
  pure = jax.jit(lambda s, v: nnx.merge(graphdef, s)(v))
  np.testing.assert_allclose(pure(state, x), eager, atol=1e-5)


def test_jitted_adam_steps_reduce_loss(initialised):
  graphdef, params = nnx.split(initialised, nnx.Param)
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)
  x, y = _images(1, batch=2), jnp.full((2, 5), 0.5)

  @jax.jit
  def step(params, opt_state):
    def loss_fn(p):
      return jnp.mean((nnx.merge(graphdef, p)(x) - y) ** 2)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  losses = []
  for _ in range(5):
    params, opt_state, loss = step(params, opt_state)
    losses.append(float(loss))
  assert np.all(np.isfinite(losses))
  assert losses[-1] < losses[0]


def test_encode_is_the_flattened_last_layer_and_the_head_reads_it(model1, rotated_features1):
  x = _images(1)
  batch = np.concatenate([x, _rot(x)])
  encoding, via_head, out = nnx.jit(lambda m, v: (m.encode(v), m.head(m.encode(v)), m(v)))(
      model1, batch)
  assert encoding.shape == (2, model1.encoding_size) == (2, 4 * 128)
  np.testing.assert_allclose(via_head, out, atol=1e-6)
  # (rotation, channel) order: the last layer's [1, 1, 4, 128] output, flattened ...
  np.testing.assert_allclose(encoding[:1], rotated_features1[0][-1].reshape(1, -1), atol=ATOL)
  # ... so a quarter turn of the image rolls the four rotation blocks by one.
  blocks = np.asarray(encoding).reshape(2, 4, 128)
  np.testing.assert_allclose(blocks[1], np.roll(blocks[0], 1, axis=0), atol=ATOL)
  assert np.max(np.abs(blocks[1] - blocks[0])) > 1e-3
