"""Checks shared by the model tests."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def abstract_model(constructor, num_outputs: int, *, in_channels: int) -> nnx.Module:
  """The model's structure without running its initialisers (fast): shapes only."""
  return nnx.eval_shape(
      lambda: constructor(num_outputs, in_channels=in_channels, rngs=nnx.Rngs(0)))


def abstract_call(model: nnx.Module, x_shape, method: str = "__call__"):
  """The output shape and dtype of ``model.method`` on float32 input of ``x_shape``."""
  graphdef, state = nnx.split(model)
  return jax.eval_shape(lambda s, x: getattr(nnx.merge(graphdef, s), method)(x), state,
                        jax.ShapeDtypeStruct(x_shape, jnp.float32))


# Eager JAX compiles every op anew for each shape (random initialisers included), which is
# what makes model tests slow on a CPU; numpy makes the inputs.
def uniform(shape, seed, low=0.0, high=1.0):
  """float32 uniform noise from numpy's generator, as a jax array."""
  return jnp.asarray(np.random.default_rng(seed).uniform(low, high, size=shape), jnp.float32)


def assert_jit_matches_eager(model: nnx.Module, x, rtol=1e-5, atol=1e-6):
  """``nnx.jit`` and split/merge under ``jax.jit`` both give the eager output; returns it."""
  eager = model(x)
  np.testing.assert_allclose(nnx.jit(lambda m, x: m(x))(model, x), eager, rtol=rtol, atol=atol)
  graphdef, state = nnx.split(model)
  pure = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
  np.testing.assert_allclose(pure(state, x), eager, rtol=rtol, atol=atol)
  return eager
