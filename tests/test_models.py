"""The model table and the two baseline regressors (MLP, CNN)."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from model_checks import abstract_model, assert_jit_matches_eager

from gsgen import models
from gsgen.models import cnn
from gsgen.models import mlp
from gsgen.models import num_params


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
  model = models.create(name, outputs, in_channels=channels, rngs=nnx.Rngs(0))
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
  for name, constructor in models.MODELS.items():
    model = abstract_model(constructor, 6, in_channels=3)
    out = nnx.eval_shape(lambda m: m(jnp.zeros((2, 64, 64, 3))), model)
    assert out.shape == (2, 6), name


def test_unknown_model_lists_the_valid_ones():
  with pytest.raises(ValueError, match="choose one of mlp, cnn"):
    models.create("vit", 5, in_channels=1, rngs=nnx.Rngs(0))
