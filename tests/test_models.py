"""The model table, its encode/head contract, PyTorch's default initialisation, and the two
baseline regressors (MLP, CNN)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_checks import (abstract_call, abstract_model, assert_call_is_head_of_encode,
                          assert_jit_matches_eager, assert_torch_default_init)

from gsgen import models
from gsgen.models import cnn
from gsgen.models import torch_init as init
from gsgen.models import mlp
from gsgen.models import num_params

# encoding_size of every model of the table, for 3 input channels (see docs/models.md).
ENCODING_SIZES = {
    "mlp": 512, "cnn": 256, "coordconv": 256, "set_encoder": 2 * 64,
    "equivariant_cnn": 4 * 128, "spatial_transformer": 256, "resnet18": 512,
    "resnet50": 2048, "resnet101": 2048, "densenet121": 1024, "preact_resnet18": 512,
    "preact_resnet50": 2048, "preact_resnet101": 2048, "bit_resnet50": 2048,
    "bit_resnet101": 2048,
}


@functools.cache
def abstract(name: str) -> nnx.Module:
  """The table's model ``name`` for 6 outputs on RGB, as shapes only; in eval mode."""
  model = abstract_model(models.MODELS[name], 6, in_channels=3)
  model.eval()
  return model


@functools.cache
def concrete(name: str, channels: int, outputs: int) -> nnx.Module:
  return models.create(name, outputs, in_channels=channels, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("channels,outputs,expected", [
    # conv 4x4 stride 2: 16 * c_in * c_out + c_out each.
    #   16*C*32 + 32  +  16*32*32 + 32 (16,416)  +  16*32*64 + 64 (32,832)
    #   + 16*64*64 + 64 (65,600)  +  valid 16*64*256 + 256 (262,400)  +  head 256*n + n
    #   = 512 C + 377,280 + 257 n
    (1, 5, 512 + 377_280 + 257 * 5),   # 379,077 (dSprites)
    (3, 6, 1536 + 377_280 + 257 * 6),  # 380,358 (Shapes3D)
    (3, 7, 1536 + 377_280 + 257 * 7),  # 380,615 (MPI3D)
])
def test_cnn_parameter_count(channels, outputs, expected):
  assert num_params(abstract_model(cnn.CNN, outputs, in_channels=channels)) == expected


@pytest.mark.parametrize("channels,outputs,expected", [
    # 64*64*C inputs -> 512 -> 512 -> 512 -> n, each layer (a + 1) * b weights:
    #   (4096 C + 1) * 512 + 2 * 513 * 512 + 513 n = 2,097,152 C + 525,824 + 513 n
    (1, 5, 2_097_152 + 525_824 + 513 * 5),      # 2,625,541
    (3, 6, 3 * 2_097_152 + 525_824 + 513 * 6),  # 6,820,358
])
def test_mlp_parameter_count(channels, outputs, expected):
  assert num_params(abstract_model(mlp.MLP, outputs, in_channels=channels)) == expected


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("channels,outputs", [(1, 5), (3, 7)])
def test_output_shape_and_jit_equals_eager(name, channels, outputs):
  model = concrete(name, channels, outputs)
  x = jax.random.uniform(jax.random.key(1), (2, 64, 64, channels))
  eager = assert_jit_matches_eager(model, x)
  assert eager.shape == (2, outputs) and eager.dtype == jnp.float32


def test_cnn_feature_map_sizes():
  """64 -> 32 -> 16 -> 8 -> 4 with stride 2 and padding 1, then 4 -> 1 (valid)."""
  model = cnn.CNN(5, in_channels=1, rngs=nnx.Rngs(0))
  x = jnp.zeros((1, 64, 64, 1))
  sizes = []
  for conv in model.convs:
    x = conv(x)
    sizes.append(x.shape[1])
  assert sizes == [32, 16, 8, 4]
  assert model.last(x).shape == (1, 1, 1, 256)


def test_every_model_has_the_common_signature():
  for name in models.MODELS:
    model = abstract(name)
    out = nnx.eval_shape(lambda m: m(jnp.zeros((2, 64, 64, 3))), model)
    assert out.shape == (2, 6), name


def test_every_model_has_an_encoding_size():
  assert set(ENCODING_SIZES) == set(models.MODELS)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_encode_is_what_the_head_reads(name):
  """Shapes only, for every model; the numbers are compared in each family's tests."""
  model = abstract(name)
  assert model.encoding_size == ENCODING_SIZES[name]
  assert abstract_call(model, (2, 64, 64, 3), "encode").shape == (2, model.encoding_size)
  graphdef, state = nnx.split(model)
  via_encode = jax.eval_shape(
      lambda s, x: (lambda m: m.head(m.encode(x)))(nnx.merge(graphdef, s)), state,
      jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32))
  assert via_encode.shape == (2, 6) and via_encode.dtype == jnp.float32
  # A readout sized from encoding_size alone fits the encoding.
  readout = nnx.eval_shape(lambda: mlp.MLPHead(model.encoding_size, (256,) * 5, 6,
                                               rngs=nnx.Rngs(0)))
  out = nnx.eval_shape(lambda r, h: r(h), readout,
                       jax.ShapeDtypeStruct((2, model.encoding_size), jnp.float32))
  assert out.shape == (2, 6)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_call_is_head_of_encode(name):
  model = concrete(name, 1, 5)
  x = jax.random.uniform(jax.random.key(1), (2, 64, 64, 1))
  encoding = assert_call_is_head_of_encode(model, x)
  assert encoding.shape == (2, {"mlp": 512, "cnn": 256}[name])
  # Both are ReLU outputs, and not all zero.
  assert np.min(encoding) >= 0 and np.max(encoding) > 0


def test_wrong_image_size_names_the_expected_size():
  with pytest.raises(ValueError, match="64x64"):
    abstract_call(abstract("cnn"), (2, 32, 32, 3))
  with pytest.raises(ValueError, match="64x64"):
    abstract_call(abstract("coordconv"), (2, 48, 48, 3), "encode")
  with pytest.raises(ValueError, match="64x64"):
    abstract_call(abstract("equivariant_cnn"), (2, 32, 32, 3))
  with pytest.raises(ValueError, match=r"\(64, 64, 3\).*image_size"):
    abstract_call(abstract("mlp"), (2, 32, 32, 3))


def test_mlp_head_parameter_count():
  # The readout on z = 10: Linear(10 -> 256), 4 x Linear(256 -> 256), Linear(256 -> 5).
  head = nnx.eval_shape(lambda: mlp.MLPHead(10, (256,) * 5, 5, rngs=nnx.Rngs(0)))
  assert num_params(head) == (10 * 256 + 256) + 4 * (256 * 256 + 256) + (256 * 5 + 5)


def test_torch_bound_is_one_over_root_fan_in():
  assert init.bound(4) == 0.5
  assert init.bound(48) == pytest.approx(1 / np.sqrt(3 * 4 * 4))
  with pytest.raises(ValueError, match="fan_in"):
    init.bound(0)


def _assert_uniform(values, bound, max_rtol, var_rtol):
  """Empirical bounds and variance of ``values`` match U(-bound, bound)."""
  values = np.asarray(values)
  assert np.max(np.abs(values)) <= bound
  assert np.max(np.abs(values)) >= (1 - max_rtol) * bound
  np.testing.assert_allclose(np.var(values), bound**2 / 3, rtol=var_rtol)
  # Within 4 standard errors of zero (the standard deviation of U(+-b) is b / sqrt(3)).
  np.testing.assert_allclose(np.mean(values), 0, atol=4 * bound / np.sqrt(3 * values.size))


def test_torch_linear_matches_pytorch_default():
  layer = init.torch_linear(1000, 500, rngs=nnx.Rngs(0))
  bound = 1 / np.sqrt(1000)
  # 500,000 kernel draws: the max is within 1e-4 of the bound and the variance within 1 %;
  # 500 bias draws: within 2 % and 20 % (about 4 standard errors).
  _assert_uniform(layer.kernel[...], bound, 1e-4, 0.01)
  _assert_uniform(layer.bias[...], bound, 0.02, 0.2)


def test_torch_conv_matches_pytorch_default():
  # fan_in counts the kernel's positions: 16 channels x 3 x 3 = 144, for the bias too.
  layer = init.torch_conv(16, 512, 3, strides=2, padding=1, rngs=nnx.Rngs(0))
  assert layer.kernel.shape == (3, 3, 16, 512)
  assert layer.padding == ((1, 1), (1, 1)) and layer.strides == 2
  bound = 1 / np.sqrt(144)
  _assert_uniform(layer.kernel[...], bound, 1e-3, 0.02)
  _assert_uniform(layer.bias[...], bound, 0.02, 0.2)


def test_torch_init_check_rejects_flax_defaults():
  """The model-level check fails on Flax's own initialisation (LeCun normal, zero bias)."""
  layer = nnx.Linear(300, 300, rngs=nnx.Rngs(0))
  with pytest.raises(AssertionError):
    assert_torch_default_init(layer)
  assert assert_torch_default_init(init.torch_linear(300, 300, rngs=nnx.Rngs(0))) == 1


@pytest.mark.parametrize("name,layers", [("mlp", 4), ("cnn", 6)])
def test_mlp_and_cnn_use_pytorch_default_init(name, layers):
  assert assert_torch_default_init(concrete(name, 1, 5)) == layers


def test_unknown_model_lists_the_valid_ones():
  with pytest.raises(ValueError, match="choose one of mlp, cnn"):
    models.create("vit", 5, in_channels=1, rngs=nnx.Rngs(0))
