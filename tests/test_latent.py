"""The representation learners' models: PyTorch's transposed convolution, the VAE decoder
(shape, value range, size, initialisation), the posterior split, PCL's coefficients and the
readout on any encoder."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_checks import assert_call_is_head_of_encode, assert_torch_default_init, uniform

from gsgen import models
from gsgen.models import latent
from gsgen.models import num_params
from gsgen.models import readout
from gsgen.models import torch_init


def torch_conv_transpose_reference(x, w, b, stride, padding):
  """PyTorch's ConvTranspose2d by its definition: every input pixel scatters ``x * w`` into
  a ``k x k`` window at ``stride`` spacing; ``padding`` is cropped from every side.

  x: [Cin, H, W]; w: [Cin, Cout, k, k] (PyTorch's layout); b: [Cout].
  """
  cin, h, wd = x.shape
  k = w.shape[2]
  full = np.zeros((w.shape[1], (h - 1) * stride + k, (wd - 1) * stride + k))
  for i in range(cin):
    for y in range(h):
      for xx in range(wd):
        full[:, y * stride:y * stride + k, xx * stride:xx * stride + k] += x[i, y, xx] * w[i]
  side = (h - 1) * stride - 2 * padding + k
  return full[:, padding:padding + side, padding:padding + side] + b[:, None, None]


@pytest.mark.parametrize("cin,cout,stride,padding,side", [
    (3, 2, 2, 1, 5),    # the decoder's upsampling layers: side doubles
    (4, 3, 1, 0, 1),    # the decoder's first layer: 1x1 -> 4x4
    (2, 2, 2, 0, 3),
])
def test_transposed_convolution_computes_pytorchs(cin, cout, stride, padding, side):
  layer = torch_init.torch_conv_transpose(cin, cout, 4, strides=stride, padding=padding,
                                          rngs=nnx.Rngs(0))
  x = np.random.default_rng(0).normal(size=(cin, side, side))
  w = np.asarray(layer.kernel[...]).transpose(3, 2, 0, 1)  # kernel[y, x, o, i] = w[i, o, y, x]
  out = np.asarray(layer(jnp.asarray(x.transpose(1, 2, 0)[None], jnp.float32)))[0]
  expected = torch_conv_transpose_reference(x, w, np.asarray(layer.bias[...]), stride, padding)
  assert out.shape == expected.transpose(1, 2, 0).shape
  np.testing.assert_allclose(out.transpose(2, 0, 1), expected, atol=1e-5)


def test_transposed_convolution_refuses_a_padding_it_cannot_crop():
  with pytest.raises(ValueError, match="padding must be in"):
    torch_init.torch_conv_transpose(2, 2, 4, padding=4, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("channels", [1, 3])
def test_decoder_gives_logits_of_64x64_images(channels):
  decoder = latent.Decoder(10, channels, rngs=nnx.Rngs(0))
  z = uniform((4, 10), 0, -3.0, 3.0)
  logits = decoder(z)
  assert logits.shape == (4, 64, 64, channels)
  # Logits, not probabilities: a Bernoulli reconstruction needs the unsquashed values.
  assert float(jnp.min(logits)) < 0.0
  encoder = models.create("cnn", 20, in_channels=channels, rngs=nnx.Rngs(1))
  vae = latent.VAE(encoder, decoder)
  probs = vae.reconstruct(uniform((4, 64, 64, channels), 2))
  assert probs.shape == (4, 64, 64, channels)
  assert float(jnp.min(probs)) >= 0.0 and float(jnp.max(probs)) <= 1.0
  np.testing.assert_allclose(probs, jax.nn.sigmoid(vae.decode(vae.encode(
      uniform((4, 64, 64, channels), 2)))), rtol=1e-6)


@pytest.mark.parametrize("channels,expected", [
    # Linear 10 -> 256: 2,816; ConvT 4x4 16*a*b + b: 256->64 262,208, 64->64 65,600,
    # 64->32 32,800, 32->32 16,416, 32->C 513 C: 379,840 + 513 C.
    (1, 379_840 + 513),
    (3, 379_840 + 3 * 513),
])
def test_decoder_parameter_count(channels, expected):
  decoder = nnx.eval_shape(lambda: latent.Decoder(10, channels, rngs=nnx.Rngs(0)))
  assert num_params(decoder) == expected


def test_decoder_is_initialised_as_pytorch():
  assert assert_torch_default_init(latent.Decoder(10, 3, rngs=nnx.Rngs(0))) == 6


def test_posterior_splits_the_encoder_output_into_mean_and_log_variance():
  encoder = models.create("cnn", 8, in_channels=1, rngs=nnx.Rngs(0))
  vae = latent.VAE(encoder, latent.Decoder(4, 1, rngs=nnx.Rngs(1)))
  x = uniform((2, 64, 64, 1), 3)
  mean, logvar = vae.posterior(x)
  out = encoder(x)
  np.testing.assert_array_equal(mean, out[:, :4])
  np.testing.assert_array_equal(logvar, out[:, 4:])
  np.testing.assert_array_equal(vae.encode(x), mean)
  assert vae.encoding_size == 4
  wrong = latent.VAE(models.create("cnn", 5, in_channels=1, rngs=nnx.Rngs(0)),
                     latent.Decoder(4, 1, rngs=nnx.Rngs(1)))
  with pytest.raises(ValueError, match="2 \\* z = 8 outputs"):
    wrong.posterior(x)


def test_pcl_starts_from_the_official_codes_coefficients_and_normalises_the_first_half():
  encoder = models.create("cnn", 6, in_channels=1, rngs=nnx.Rngs(0))
  model = latent.PCL(encoder, 3, rngs=nnx.Rngs(1))
  # The reference's grouped Conv1d: taps [1, -1], bias at PyTorch's default U(+-1/sqrt 2).
  np.testing.assert_array_equal(model.a[...], [1, 1, 1])
  np.testing.assert_array_equal(model.b[...], [-1, -1, -1])
  c = np.asarray(model.c[...])
  assert (np.abs(c) <= 1 / np.sqrt(2)).all() and len(np.unique(c)) == 3
  many = latent.PCL(encoder, 2000, rngs=nnx.Rngs(2)).c[...]
  assert float(jnp.max(jnp.abs(many))) == pytest.approx(1 / np.sqrt(2), rel=0.01)
  assert float(model.q[...]) == 1.0 and float(model.m[...]) == 0.0
  x = uniform((8, 64, 64, 1), 4)
  np.testing.assert_array_equal(model.raw(x), encoder(x)[:, :3])
  h = np.asarray(model.encode(x))  # training mode: the batch's own statistics
  np.testing.assert_allclose(h.mean(0), 0.0, atol=1e-5)
  raw_var = np.asarray(encoder(x)[:, :3]).var(0)  # small: eps 1e-5 counts
  np.testing.assert_allclose(h.var(0), raw_var / (raw_var + 1e-5), rtol=1e-3)
  model.eval()
  np.testing.assert_allclose(model.encode(x), (encoder(x)[:, :3] - model.norm.mean[...])
                             / np.sqrt(model.norm.var[...] + 1e-5), rtol=1e-5, atol=1e-6)
  model.q[...] = -0.25
  model.constrain()
  assert float(model.q[...]) == 0.0


def test_batch_norm_is_pytorchs_batchnorm1d():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(0)
  ours, theirs = latent.BatchNorm(5), torch.nn.BatchNorm1d(5)
  for _ in range(3):
    x = rng.normal(2.0, 3.0, (12, 5)).astype(np.float32)
    np.testing.assert_allclose(ours(jnp.asarray(x)), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(ours.mean[...], theirs.running_mean.numpy(), rtol=1e-5)
  np.testing.assert_allclose(ours.var[...], theirs.running_var.numpy(), rtol=1e-5)
  ours.eval()
  theirs.eval()
  x = rng.normal(size=(4, 5)).astype(np.float32)
  np.testing.assert_allclose(ours(jnp.asarray(x)), theirs(torch.tensor(x)).detach().numpy(),
                             rtol=1e-5, atol=1e-6)


def test_pcl_logit_on_hand_computed_values():
  model = latent.PCL(models.create("cnn", 4, in_channels=1, rngs=nnx.Rngs(0)), 2,
                     rngs=nnx.Rngs(1))
  model.a[...] = jnp.array([2.0, 1.0])
  model.b[...] = jnp.array([-1.0, 0.5])
  model.c[...] = jnp.array([0.5, -1.0])
  model.m[...] = jnp.array(0.25)
  model.q[...] = jnp.array(0.5)
  h_t = jnp.array([[1.0, -2.0]])
  h_prev = jnp.array([[3.0, 4.0]])
  # -(|2*1 - 3 + 0.5| + |-2 + 2 - 1|) + 0.5 (1 + 4) + 0.25 = -(0.5 + 1) + 2.75 = 1.25
  np.testing.assert_allclose(model.logits(h_t, h_prev), [1.25])


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_readout_is_a_six_layer_mlp_on_any_encode(name):
  encoder = models.create(name, 5, in_channels=1, rngs=nnx.Rngs(0))
  probe = readout.Readout(encoder, 5, rngs=nnx.Rngs(1))
  layers = [m for _, m in nnx.iter_modules(probe.head) if isinstance(m, nnx.Linear)]
  assert [(l.in_features, l.out_features) for l in layers] == (
      [(encoder.encoding_size, 256)] + [(256, 256)] * 4 + [(256, 5)])
  x = uniform((2, 64, 64, 1), 5)
  np.testing.assert_array_equal(assert_call_is_head_of_encode(probe, x), encoder.encode(x))
  assert probe.encoding_size == encoder.encoding_size


def test_kaiming_normal_draws_pytorchs_fan_in_std_and_zero_biases():
  rngs = nnx.Rngs(0)
  net = nnx.Sequential(torch_init.torch_linear(1000, 400, rngs=rngs),
                       torch_init.torch_conv(16, 64, 4, rngs=rngs),
                       torch_init.torch_conv_transpose(128, 2, 4, rngs=rngs))
  deconv_kernel = np.asarray(net.layers[2].kernel[...])
  deconv_bias = np.asarray(net.layers[2].bias[...])
  torch_init.kaiming_normal(net, nnx.Rngs(1))
  linear, conv, deconv = net.layers
  # fan-in: in_features; kh * kw * in.
  for layer, fan_in in ((linear, 1000), (conv, 256)):
    kernel = np.asarray(layer.kernel[...])
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.05)
    assert abs(kernel.mean()) < 0.1 * kernel.std()
    np.testing.assert_array_equal(layer.bias[...], 0.0)
  # slow_disentanglement's kaiming_init tests isinstance(m, (nn.Linear, nn.Conv2d)): a
  # ConvTranspose2d is neither and keeps PyTorch's default initialisation.
  np.testing.assert_array_equal(deconv.kernel[...], deconv_kernel)
  np.testing.assert_array_equal(deconv.bias[...], deconv_bias)
  again = nnx.Sequential(torch_init.torch_linear(1000, 400, rngs=nnx.Rngs(5)))
  torch_init.kaiming_normal(again, nnx.Rngs(1))
  np.testing.assert_array_equal(again.layers[0].kernel[...], linear.kernel[...])


def test_the_vaes_start_as_slow_disentanglements_model():
  """Kaiming-normal Linear and Conv weights with zero biases, transposed convolutions at
  PyTorch's defaults; images get distinct posteriors."""
  from gsgen import specs
  from gsgen.configs.benchmark import get_config
  from gsgen.datasets import render_dsprites
  from gsgen.learners import vae
  spec = specs.get("dsprites")
  config = get_config("learner=beta_vae")
  model = vae.build(config.model, config.model_kwargs, spec, nnx.Rngs(0),
                    z=config.learner_kwargs.z)
  for _, layer in nnx.iter_graph(model):
    if isinstance(layer, (nnx.Linear, nnx.Conv)):
      np.testing.assert_array_equal(layer.bias[...], 0.0)
      fan_in = np.prod(layer.kernel.shape[:-1])
      if layer.kernel.size >= 1000:
        assert float(jnp.std(layer.kernel[...])) == pytest.approx(np.sqrt(2.0 / fan_in),
                                                                  rel=0.1)
  assert assert_torch_default_init(model.decoder.deconvs) == 5
  rng = np.random.default_rng(0)
  idx = np.stack([rng.integers(0, n, 64) for n in spec.sizes], 1)
  images = render_dsprites.render(jnp.asarray(idx, jnp.int32)).astype(jnp.float32) / 255.0
  mean, logvar = model.posterior(images)
  # Under PyTorch's defaults the means of different images differed by about 1e-3 (sampling
  # noise: 1); here by a sizeable fraction of the noise. The decoder's logits follow its
  # input by about 0.0025 (0.0009 under PyTorch's defaults everywhere, 0.012 with Kaiming
  # transposed convolutions too).
  assert float(jnp.std(mean, axis=0).mean()) > 0.05
  assert abs(float(logvar.mean())) < 0.5
  z = jax.random.normal(jax.random.key(1), mean.shape)
  assert float(jnp.abs(model.decode(z) - model.decode(-z)).mean()) > 0.0015



def test_the_decoder_runs_cpu_batches_in_chunks_with_the_same_values_and_gradients(
    monkeypatch):
  decoder = latent.Decoder(10, 1, rngs=nnx.Rngs(0))
  z = jax.random.normal(jax.random.key(1), (64, 10))
  graphdef, state = nnx.split(decoder)

  def values_and_gradients():
    loss = lambda s: jnp.sum(jnp.sin(nnx.merge(graphdef, s)(z)))
    value, grads = jax.jit(jax.value_and_grad(loss))(state)
    return value, jax.tree.leaves(grads)

  products = lambda: jax.jit(lambda s: nnx.merge(graphdef, s)(z)).lower(state).as_text().count(
      "stablehlo.dot_general")
  monkeypatch.setattr(latent, "CPU_CHUNK", 0)
  whole, whole_products = values_and_gradients(), products()
  monkeypatch.setattr(latent, "CPU_CHUNK", 16)
  chunked = values_and_gradients()
  assert products() == 4 * whole_products  # four chunks, unrolled
  np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-5)
  for a, b in zip(chunked[1], whole[1]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))
