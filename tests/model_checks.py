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


def assert_call_is_head_of_encode(model: nnx.Module, x, rtol=1e-5, atol=1e-6):
  """``model(x) == model.head(model.encode(x))`` and ``encode`` is ``[batch, encoding_size]``;
  returns the encoding."""
  encoding = model.encode(x)
  assert encoding.shape == (x.shape[0], model.encoding_size), encoding.shape
  np.testing.assert_allclose(model.head(encoding), model(x), rtol=rtol, atol=atol)
  return encoding


def assert_torch_default_init(model: nnx.Module, skip=()) -> int:
  """Every ``nnx.Linear``, ``nnx.Conv`` and ``nnx.ConvTranspose`` of ``model`` (but those at
  the paths in ``skip``) has kernel and bias drawn from U(+-1/sqrt(fan_in)), PyTorch's
  default, with fan_in the product of the kernel's leading dimensions (for a transposed
  convolution with a transposed kernel, ``[kh, kw, out, in]``, that is PyTorch's
  ``out * kh * kw``). Returns how many layers were checked.

  Each tensor, divided by its bound, must lie in [-1, 1]; reach above 0.9 when it has 200
  entries or more (all of 200 draws below 0.9 has probability 0.9**200 < 1e-9); and have a
  mean square within 4 standard errors of 1/3 when it has 16 or more (the mean square of n
  draws of U(-1, 1) has relative standard deviation sqrt(0.8 / n)). All entries together
  must have mean square 1/3 within 2 %.
  """
  pooled, layers = [], 0
  for path, layer in nnx.iter_modules(model):
    if not isinstance(layer, (nnx.Linear, nnx.Conv, nnx.ConvTranspose)) or path in skip:
      continue
    bound = 1.0 / np.sqrt(np.prod(layer.kernel.shape[:-1]))
    for name in ("kernel", "bias"):
      u = np.asarray(getattr(layer, name)[...]).ravel() / bound
      where = f"{'/'.join(map(str, path))}/{name}"
      assert np.max(np.abs(u)) <= 1.0, f"{where}: beyond 1/sqrt(fan_in)"
      if u.size >= 200:
        assert np.max(np.abs(u)) > 0.9, f"{where}: narrower than U(+-1/sqrt(fan_in))"
      if u.size >= 16:
        assert abs(3 * np.mean(u**2) - 1) < 4 * np.sqrt(0.8 / u.size), (
            f"{where}: variance {np.mean(u**2) * bound**2} is not bound^2/3")
      pooled.append(u)
    layers += 1
  assert layers, "no Linear or Conv layer found"
  np.testing.assert_allclose(3 * np.mean(np.square(np.concatenate(pooled))), 1.0, rtol=0.02)
  return layers
