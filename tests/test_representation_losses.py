"""Known answers of the representation learners' losses: each term against an independent
computation (closed forms, Monte-Carlo, numerical integration, hand-computed values) and
each loss's normalisation (per image, per pair) on a stand-in model whose posterior and
decoder output are set by hand."""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import integrate
from scipy import stats

from gsgen.learners import ada_gvae
from gsgen.learners import beta_vae
from gsgen.learners import pcl
from gsgen.learners import slow_vae
from gsgen.learners import vae
from gsgen.models import latent

# A variance so small that a reparameterised sample is its mean to float32 precision.
EXACT = -40.0


class StandIn:
  """A VAE with a set posterior and decoder output; records the codes it decodes."""

  def __init__(self, mean, logvar, logits):
    self.mean, self.logvar, self.logits = (jnp.asarray(a, jnp.float32)
                                           for a in (mean, logvar, logits))
    self.decoded = None

  def posterior(self, x):
    assert x.shape[0] == self.mean.shape[0]
    return self.mean, self.logvar

  def decode(self, z):
    self.decoded = z
    return self.logits


def softplus(x):
  return math.log1p(math.exp(x))


def test_gaussian_kl_matches_its_closed_form_and_a_monte_carlo_estimate():
  mean = np.array([1.0, 0.0, -0.5])
  logvar = np.array([0.0, math.log(4.0), math.log(0.25)])
  # Per dimension 0.5 (m^2 + s - log s - 1): 0.5, 0.5 (3 - log 4), 0.5 (0.25 + 0.25 + log 4 - 1)
  closed = 0.5 + 0.5 * (3 - math.log(4)) + 0.5 * (-0.5 + math.log(4))
  kl = float(vae.gaussian_kl(jnp.asarray(mean), jnp.asarray(logvar)))
  assert kl == pytest.approx(closed, rel=1e-6)
  sigma = np.exp(0.5 * logvar)
  z = mean + sigma * np.random.default_rng(0).standard_normal((400_000, 3))
  log_ratio = (stats.norm.logpdf(z, mean, sigma) - stats.norm.logpdf(z)).sum(1)
  assert abs(log_ratio.mean() - closed) < 4 * log_ratio.std() / math.sqrt(len(z))


def test_gaussian_entropy_per_dimension():
  logvar = jnp.array([0.0, math.log(9.0)])
  np.testing.assert_allclose(vae.gaussian_entropy(logvar),
                             [stats.norm(scale=1).entropy(), stats.norm(scale=3).entropy()],
                             rtol=1e-6)


def test_bernoulli_nll_sums_the_sigmoid_cross_entropy_over_pixels():
  logits = jnp.array([[0.0, 2.0], [-1.0, 3.0]]).reshape(2, 1, 2, 1)
  images = jnp.array([[1.0, 0.0], [0.3, 1.0]]).reshape(2, 1, 2, 1)
  expected = [math.log(2) + softplus(2.0),
              0.3 * softplus(1.0) + 0.7 * softplus(-1.0) + softplus(-3.0)]
  np.testing.assert_allclose(vae.bernoulli_nll(logits, images), expected, rtol=1e-6)


def test_reparameterised_samples_have_the_posterior_moments_and_gradients():
  mean, logvar = jnp.array([1.0, -2.0]), jnp.array([0.0, math.log(0.25)])
  z = vae.reparameterise(jax.random.key(0), jnp.tile(mean, (200_000, 1)),
                         jnp.tile(logvar, (200_000, 1)))
  np.testing.assert_allclose(z.mean(0), mean, atol=0.01)
  np.testing.assert_allclose(z.std(0), [1.0, 0.5], rtol=0.01)
  key = jax.random.key(1)
  eps = jax.random.normal(key, (2,))
  dmean, dlogvar = jax.grad(lambda m, l: vae.reparameterise(key, m, l).sum(), (0, 1))(
      mean, logvar)
  np.testing.assert_allclose(dmean, [1.0, 1.0])
  np.testing.assert_allclose(dlogvar, 0.5 * jnp.exp(0.5 * logvar) * eps, rtol=1e-6)


def test_beta_vae_loss_is_per_image():
  mean = [[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]]
  logits = np.random.default_rng(0).normal(size=(3, 4, 4, 1))
  images = np.random.default_rng(1).uniform(size=(3, 4, 4, 1))
  model = StandIn(mean, np.full((3, 2), EXACT), logits)
  loss, aux = beta_vae.loss(model, {"image": jnp.asarray(images, jnp.float32)},
                            jax.random.key(0), beta=4.0)
  recon = np.mean([float(vae.bernoulli_nll(jnp.asarray(logits[i:i + 1], jnp.float32),
                                           jnp.asarray(images[i:i + 1], jnp.float32))[0])
                   for i in range(3)])
  kl = np.mean([float(vae.gaussian_kl(jnp.asarray(m), jnp.full(2, EXACT))) for m in mean])
  assert float(aux["reconstruction"]) == pytest.approx(recon, rel=1e-5)
  assert float(aux["kl"]) == pytest.approx(kl, rel=1e-5)
  assert float(loss) == pytest.approx(recon + 4.0 * kl, rel=1e-5)
  np.testing.assert_allclose(model.decoded, mean, atol=1e-6)  # decoded the posterior sample


def test_kl_weight_ramps_linearly_over_the_warmup_steps():
  assert vae.kl_weight(4.0, 0, {}) == 4.0  # no warm-up: the study's full weight throughout
  weights = [float(vae.kl_weight(4.0, 8, {"step": jnp.int32(s)})) for s in (1, 2, 4, 8, 9, 100)]
  assert weights == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
  with pytest.raises(ValueError, match="kl_warmup needs the training step"):
    vae.kl_weight(4.0, 8, {"image": None})


@pytest.mark.parametrize("learner", [beta_vae, ada_gvae, slow_vae])
def test_each_vae_loss_weighs_its_kl_by_the_warmup(learner):
  rng = np.random.default_rng(6)
  pairs = learner is not beta_vae
  model = StandIn(rng.normal(size=(4, 2)), np.log(rng.uniform(0.5, 2.0, size=(4, 2))),
                  rng.normal(size=(4, 4, 4, 1)))
  images = jnp.asarray(rng.uniform(size=(2, 2, 4, 4, 1) if pairs else (4, 4, 4, 1)),
                       jnp.float32)
  opts = {"beta": 3.0, "gamma": 10.0, "rate_prior": 6.0}
  opts = {k: v for k, v in opts.items() if k in inspect.signature(learner.loss).parameters}
  full, aux = learner.loss(model, {"image": images}, jax.random.key(0), **opts)
  ramped, aux_r = learner.loss(model, {"image": images, "step": jnp.int32(5)},
                               jax.random.key(0), kl_warmup=20, **opts)
  # Step 5 of 20: the KL term weighs a quarter of beta; every logged term is unchanged.
  assert {k: float(v) for k, v in aux.items()} == {k: float(v) for k, v in aux_r.items()}
  assert float(full) - float(ramped) == pytest.approx(0.75 * 3.0 * float(aux["kl"]),
                                                      rel=1e-4)


def normal_kl(m1, s1, m2, s2):
  """KL(N(m1, s1) || N(m2, s2)) with variances s1, s2."""
  return 0.5 * (math.log(s2 / s1) + (s1 + (m1 - m2) ** 2) / s2 - 1.0)


def test_ada_gvae_divergence_is_twice_the_kl_between_the_pair():
  mean = jnp.array([[[0.3, -1.0], [1.2, 0.5]]])
  logvar = jnp.array([[[0.0, math.log(2.0)], [math.log(3.0), math.log(0.5)]]])
  d = ada_gvae.divergence(mean, logvar)
  np.testing.assert_allclose(d[0], [2 * normal_kl(0.3, 1.0, 1.2, 3.0),
                                    2 * normal_kl(-1.0, 2.0, 0.5, 0.5)], rtol=1e-6)


def test_ada_gvae_shares_the_dimensions_below_the_midpoint_and_averages_them():
  # Pair 0: unit variances, d = (m2 - m1)^2 = [0, 0.01, 9]: midpoint 4.5, dims 0 and 1 shared.
  # Pair 1: d = [1/4 - 1 + log 4, 0, 25]: midpoint 12.5, dims 0 and 1 shared; dim 0 has
  #   variances 1 and 4, averaged to 2.5 (the mean of variances, not of log-variances).
  mean = jnp.array([[[0.0, 0.0, 0.0], [0.0, 0.1, 3.0]],
                    [[0.0, 0.0, 5.0], [0.0, 0.0, 0.0]]])
  logvar = jnp.log(jnp.array([[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
                              [[1.0, 4.0, 1.0], [4.0, 4.0, 1.0]]]))
  (m1, l1), (m2, l2), shared = ada_gvae.aggregate(mean, logvar)
  np.testing.assert_array_equal(shared, [[True, True, False], [True, True, False]])
  np.testing.assert_allclose(m1, [[0.0, 0.05, 0.0], [0.0, 0.0, 5.0]], atol=1e-7)
  np.testing.assert_allclose(m2, [[0.0, 0.05, 3.0], [0.0, 0.0, 0.0]], atol=1e-7)
  np.testing.assert_allclose(jnp.exp(l1), [[1.0, 1.0, 1.0], [2.5, 4.0, 1.0]], rtol=1e-6)
  np.testing.assert_allclose(jnp.exp(l2), [[1.0, 1.0, 1.0], [2.5, 4.0, 1.0]], rtol=1e-6)
  # All divergences equal: the bins are undefined (0 / 0) and every dimension is shared.
  same = ada_gvae.aggregate(jnp.zeros((1, 2, 3)), jnp.zeros((1, 2, 3)))[2]
  assert bool(same.all())


def test_ada_gvae_counts_a_dimension_exactly_at_the_midpoint_as_not_shared():
  """TF's histogram_fixed_width_bins, as disentanglement_lib bins the divergences: bin
  floor(2 (d - min) / (max - min)) clipped to 0..1, so the midpoint is in the upper bin."""
  d = jnp.array([[0.0, 1.0, 2.0, 0.5, 1.5], [3.0, 1.0, 2.0, 2.0, 1.0]])
  np.testing.assert_array_equal(ada_gvae.shared(d), [[True, False, False, True, False],
                                                     [False, True, False, False, True]])
  # Unit variances and mean gaps 0, 1, 2 (d = 0, 1, 4: midpoint 2, so 0 and 1 are shared),
  # then gaps 0, 2, 2 (d = 0, 4, 4: only the first).
  mean = jnp.array([[[0.0, 0.0, 0.0], [0.0, 1.0, 2.0]], [[0.0, 0.0, 0.0], [0.0, 2.0, 2.0]]])
  share = ada_gvae.aggregate(mean, jnp.zeros_like(mean))[2]
  np.testing.assert_array_equal(share, [[True, True, False], [True, False, False]])
  # d exactly at the midpoint of its pair's range is in the upper bin: not shared.
  tie = ada_gvae.shared(jnp.array([[0.0, 2.0, 4.0]]))
  np.testing.assert_array_equal(tie, [[True, False, False]])


def test_ada_gvae_loss_is_per_image_and_per_pair():
  # Two pairs, z = 2; the second dimension differs in both pairs and stays unshared.
  mean = np.array([[0.5, 1.0], [0.5, -1.0], [1.0, 2.0], [3.0, 0.0]])  # interleaved pairs
  logits = np.random.default_rng(2).normal(size=(4, 4, 4, 1))
  images = np.random.default_rng(3).uniform(size=(2, 2, 4, 4, 1))
  model = StandIn(mean, np.full((4, 2), EXACT), logits)
  loss, aux = ada_gvae.loss(model, {"image": jnp.asarray(images, jnp.float32)},
                            jax.random.key(0), beta=2.0)
  # Pair 0 shares dim 0 (equal means); pair 1: d = [4, 4] e^40 ties, so both are shared.
  aggregated = np.array([[0.5, 1.0], [0.5, -1.0], [2.0, 1.0], [2.0, 1.0]])
  np.testing.assert_allclose(model.decoded, aggregated, atol=1e-5)
  recon = float(jnp.mean(vae.bernoulli_nll(jnp.asarray(logits, jnp.float32), jnp.asarray(
      images.reshape(4, 4, 4, 1), jnp.float32))))
  kl_per_image = [float(vae.gaussian_kl(jnp.asarray(m), jnp.full(2, EXACT)))
                  for m in aggregated]
  # disentanglement_lib averages the two images' KL terms: 0.5 * (KL1 + KL2), mean over pairs.
  kl = (kl_per_image[0] + kl_per_image[1] + kl_per_image[2] + kl_per_image[3]) / 4
  assert float(aux["reconstruction"]) == pytest.approx(recon, rel=1e-5)
  assert float(aux["kl"]) == pytest.approx(kl, rel=1e-5)
  assert float(loss) == pytest.approx(recon + 2.0 * kl, rel=1e-5)
  assert float(aux["shared_dims"]) == pytest.approx(1.5)


@pytest.mark.parametrize("offset,variance,rate", [(0.0, 1.0, 6.0), (0.7, 0.25, 6.0),
                                                  (-2.0, 2.0, 1.0), (3.0, 0.01, 2.5)])
def test_slow_vae_laplace_cross_entropy_matches_numerical_integration(offset, variance, rate):
  sigma = math.sqrt(variance)

  def integrand(x):
    return -stats.norm.pdf(x, offset, sigma) * stats.laplace.logpdf(x, 0.0, 1.0 / rate)

  numeric = integrate.quad(integrand, offset - 12 * sigma, offset + 12 * sigma,
                           points=[0.0], limit=200)[0]
  closed = float(slow_vae.laplace_cross_entropy(jnp.float32(offset),
                                                jnp.float32(math.log(variance)), rate))
  assert closed == pytest.approx(numeric, rel=1e-5, abs=1e-5)


def test_slow_vae_loss_combines_per_image_and_per_pair_terms():
  mean = np.array([[0.5, 1.0], [0.0, -1.0], [1.0, 2.0], [3.0, 0.5]])
  logvar = np.log(np.array([[1.0, 0.5], [2.0, 1.0], [0.25, 1.0], [1.0, 4.0]]))
  logits = np.random.default_rng(4).normal(size=(4, 4, 4, 1))
  images = np.random.default_rng(5).uniform(size=(2, 2, 4, 4, 1))
  model = StandIn(mean, logvar, logits)
  opts = dict(beta=2.0, gamma=10.0, rate_prior=6.0)
  loss, aux = slow_vae.loss(model, {"image": jnp.asarray(images, jnp.float32)},
                            jax.random.key(0), **opts)
  recon = float(jnp.mean(vae.bernoulli_nll(jnp.asarray(logits, jnp.float32), jnp.asarray(
      images.reshape(4, 4, 4, 1), jnp.float32))))
  var = np.exp(logvar)
  kl_normal = np.mean([sum(normal_kl(mean[i, d], var[i, d], 0.0, 1.0) for d in range(2))
                       for i in range(4)])
  cross = 0.0
  for first, second in ((0, 1), (2, 3)):
    for a, b in ((first, second), (second, first)):
      for d in range(2):
        cross += float(slow_vae.laplace_cross_entropy(
            jnp.float32(mean[a, d] - mean[b, d]), jnp.float32(logvar[a, d]), 6.0))
  entropy = np.mean([sum(stats.norm(scale=math.sqrt(var[i, d])).entropy() for d in range(2))
                     for i in range(4)])
  kl_laplace = cross / 2 - entropy  # cross-entropies per pair, entropy per image
  assert float(aux["reconstruction"]) == pytest.approx(recon, rel=1e-5)
  assert float(aux["kl"]) == pytest.approx(kl_normal, rel=1e-5)
  assert float(aux["kl_laplace"]) == pytest.approx(kl_laplace, rel=1e-5)
  assert float(loss) == pytest.approx(2 * recon + 2.0 * kl_normal + 10.0 * kl_laplace,
                                      rel=1e-5)


class PCLStandIn:
  """PCL's BatchNorm, logit and coefficients on set encoder outputs (``raw``)."""
  logits = latent.PCL.logits

  def __init__(self, raw, c=0.0, q=1.0):
    self.features = jnp.asarray(raw, jnp.float32)
    z = self.features.shape[-1]
    self.norm = latent.BatchNorm(z)
    self.a, self.b = nnx.Param(jnp.ones(z)), nnx.Param(-jnp.ones(z))
    self.c, self.q, self.m = (nnx.Param(jnp.full(z, c)), nnx.Param(jnp.asarray(q)),
                              nnx.Param(jnp.zeros(())))

  def raw(self, x):
    assert x.shape[0] == self.features.shape[0]
    return self.features


def pcl_by_hand(raw, c, q, m=0.0):
  """The official PCL forward in numpy: positives [x_t, x_(t-1)] and negatives
  [x_t, x*] in one batch, BatchNorm (batch statistics, biased variance, eps 1e-5) over all
  4B frames, r = -sum |h_t - h_other + c| + q sum h_t^2 + m, mean logistic loss."""
  raw = np.asarray(raw, np.float64)
  prev, t, neg = raw[:, 0], raw[:, 1], raw[:, 2]
  frames = np.concatenate([t, prev, t, neg])
  h = (frames - frames.mean(0)) / np.sqrt(frames.var(0) + 1e-5)
  b = len(raw)
  h_t, h_prev, h_t2, h_neg = h[:b], h[b:2 * b], h[2 * b:3 * b], h[3 * b:]
  pos = -np.abs(h_t - h_prev + c).sum(1) + q * (h_t ** 2).sum(1) + m
  negl = -np.abs(h_t2 - h_neg + c).sum(1) + q * (h_t2 ** 2).sum(1) + m
  loss = np.mean(np.concatenate([np.logaddexp(0, -pos), np.logaddexp(0, negl)]))
  accuracy = np.mean(np.concatenate([pos > 0, negl <= 0]))
  return loss, accuracy


def test_pcl_loss_on_hand_computed_pairs():
  # Frames [x_(t-1), x_t, x*] of two examples, z = 2.
  raw = np.array([[[0.0, 1.0], [0.5, -1.0], [2.0, 0.0]],
                  [[1.0, 0.5], [2.0, 2.0], [-1.0, 1.5]]])
  model = PCLStandIn(raw.reshape(6, 2), c=0.3, q=0.7)
  loss, aux = pcl.loss(model, {"image": jnp.zeros((2, 3, 4, 4, 1))}, jax.random.key(0))
  expected, accuracy = pcl_by_hand(raw, 0.3, 0.7)
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  assert float(aux["accuracy"]) == pytest.approx(accuracy)
  # The BatchNorm was in training mode: its running statistics moved (momentum 0.1, the
  # unbiased variance of the 8 frames).
  frames = np.concatenate([raw[:, 1], raw[:, 0], raw[:, 1], raw[:, 2]])
  np.testing.assert_allclose(model.norm.mean[...], 0.1 * frames.mean(0), rtol=1e-5)
  np.testing.assert_allclose(model.norm.var[...], 0.9 + 0.1 * frames.var(0, ddof=1),
                             rtol=1e-5)
  with pytest.raises(ValueError, match="three frames"):
    pcl.loss(model, {"image": jnp.zeros((3, 2, 4, 4, 1))}, jax.random.key(0))


def test_pcl_loss_equals_the_official_pytorch_forward_on_the_same_features():
  """The reference's Net head (BatchNorm1d, grouped Conv1d w with a bias, learnable scalar a,
  m) on the same encoder outputs and coefficients, in PyTorch."""
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(4)
  b, z = 16, 10
  raw = rng.normal(size=(b, 3, z)).astype(np.float32)
  model = PCLStandIn(raw.reshape(-1, z))
  model.c[...] = jnp.asarray(rng.uniform(-0.7, 0.7, z), jnp.float32)
  model.q[...] = jnp.asarray(0.4)
  model.m[...] = jnp.asarray(-0.2)
  loss, _ = pcl.loss(model, {"image": jnp.zeros((b, 3, 4, 4, 1))}, jax.random.key(0))
  bn = torch.nn.BatchNorm1d(z)
  w = torch.nn.Conv1d(z, z, kernel_size=2, groups=z)
  with torch.no_grad():
    w.weight[:, :, 0] = 1.0
    w.weight[:, :, 1] = -1.0
    w.bias[:] = torch.tensor(np.asarray(model.c[...]))
  a, m = torch.tensor([0.4]), torch.tensor([-0.2])
  x = torch.tensor(raw)
  pos = torch.stack([x[:, 1], x[:, 0]], 1)           # [x_t, x_(t-1)]
  neg = torch.stack([x[:, 1], x[:, 2]], 1)           # [x_t, x*]
  h = bn(torch.cat([pos, neg]).reshape(-1, z)).reshape(2 * b, 2, z)
  q = torch.sum(torch.abs(w(h.permute(0, 2, 1))), dim=[1, 2])
  logits = -q + a * torch.sum(h[:, 0] ** 2, dim=1) + m
  labels = torch.cat([torch.ones(b), torch.zeros(b)])
  expected = torch.nn.BCEWithLogitsLoss()(logits, labels).detach()
  assert float(loss) == pytest.approx(float(expected), rel=1e-5)
  np.testing.assert_allclose(model.norm.mean[...], bn.running_mean.numpy(), rtol=1e-5,
                             atol=1e-7)
  np.testing.assert_allclose(model.norm.var[...], bn.running_var.numpy(), rtol=1e-5)
