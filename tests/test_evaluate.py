"""Known-answer tests of the evaluator (the metrics of docs/metrics.md)."""

import numpy as np
import pytest

from gsgen import evaluate, splits
from gsgen import specs

# A reduced dSprites grid (3 x 3 x 10 x 9 x 9 = 7,290 points) keeps tests fast; each split
# factor but scale still has a composition band (floor(size * 0.1234) >= 1).
SMALL = specs.DSPRITES.subgrid((3, 3, 10, 9, 9))


def _oracle(spec, transform=lambda t, idx: t):
  """A predict_fn that knows the truth: images carry their flat index in the pixels."""
  def images(flat):
    out = np.zeros((len(flat),) + spec.image_shape, np.uint8)
    for k in range(4):  # base-256 digits of the flat index
      out[:, 0, k, 0] = (flat >> (8 * k)) & 255
    out[:, 1, 0, 0] = 255  # a lit pixel, as every dSprites image has
    return out

  def predict(x):
    digits = np.round(x[:, 0, :4, 0] * 255).astype(np.int64)
    flat = (digits << (8 * np.arange(4))).sum(1)
    idx = spec.factor_indices(flat)
    return transform(spec.targets(idx), idx)

  return predict, images


def _scores(result, spec):
  return np.array([result[f"rsquared_{n}"] for n in spec.factor_names])


@pytest.mark.parametrize("split", splits.SPLITS)
def test_perfect_predictor_scores_one(split):
  predict, images = _oracle(SMALL)
  r = evaluate.evaluate_model(predict, SMALL, split, images, batch_size=100, progress=False)
  np.testing.assert_allclose(_scores(r, SMALL), 1.0, atol=1e-6)
  assert r["rsquared"] == pytest.approx(1.0, abs=1e-6)
  assert r["mse"] == pytest.approx(0.0, abs=1e-9)
  assert r["num_examples"] == splits.masks(SMALL, split)[1].sum()


def test_grid_mean_predictor_on_the_full_grid_scores_zero():
  predict, images = _oracle(SMALL, lambda t, idx: np.full_like(t, 0.5))
  r = evaluate.evaluate_model(predict, SMALL, "extrapolation", images, part="all",
                              batch_size=512, progress=False)
  np.testing.assert_allclose(_scores(r, SMALL), 0.0, atol=1e-6)
  assert r["num_examples"] == SMALL.num_images


def test_worse_than_the_mean_scores_below_zero():
  predict, images = _oracle(SMALL, lambda t, idx: 1.0 - t)
  r = evaluate.evaluate_model(predict, SMALL, "random", images, progress=False)
  assert all(s < 0 for s in _scores(r, SMALL))
  # Flipping a uniform target doubles ... the MSE is E[(1-2t)^2] = 4 Var on the full grid.
  r_all = evaluate.evaluate_model(predict, SMALL, "random", images, part="all",
                                  progress=False)
  np.testing.assert_allclose(_scores(r_all, SMALL), -3.0, atol=1e-5)


def test_r2_uses_full_grid_variance_not_test_variance():
  # Constant error 0.1 on every factor: MSE = 0.01, R2 = 1 - 0.01 / Var_grid.
  predict, images = _oracle(SMALL, lambda t, idx: t + 0.1)
  r = evaluate.evaluate_model(predict, SMALL, "extrapolation", images, progress=False)
  np.testing.assert_allclose(_scores(r, SMALL), 1 - 0.01 / SMALL.grid_variance(), rtol=1e-5)
  np.testing.assert_allclose(r["mse_scale"], 0.01, rtol=1e-5)
  noncat = [r[f"rsquared_{n}"] for n in SMALL.factor_names[1:]]
  assert r["rsquared_noncategorical"] == pytest.approx(np.mean(noncat))


def _random_batch(rng, spec, n):
  idx = spec.factor_indices(rng.integers(0, spec.num_images, n))
  preds = np.clip(spec.targets(idx) + rng.normal(0, 0.2, idx.shape), 0, 1).astype(np.float32)
  return preds, idx


def test_streaming_equals_one_shot():
  rng = np.random.default_rng(0)
  preds, idx = _random_batch(rng, SMALL, 1000)
  one = evaluate.Accumulator(SMALL, "extrapolation", part="all")
  one.update(preds, idx)
  many = evaluate.Accumulator(SMALL, "extrapolation", part="all")
  for start in range(0, 1000, 64):  # last batch padded with a mask
    p, i = preds[start:start + 64], idx[start:start + 64]
    pad = 64 - len(p)
    many.update(np.pad(p, ((0, pad), (0, 0))), np.pad(i, ((0, pad), (0, 0))),
                np.arange(64) < len(p))
  a, b = one.result(), many.result()
  for key, value in a.items():
    if isinstance(value, float):
      assert b[key] == pytest.approx(value, rel=1e-6), key
  assert a["towards_mean"] == b["towards_mean"]


def test_vmapped_statistics_equal_a_plain_loop():
  rng = np.random.default_rng(1)
  preds, idx = _random_batch(rng, SMALL, 500)
  targets = SMALL.targets(idx)
  weights = (rng.random((500, 3)) < 0.5).astype(np.float32)
  ood = rng.random((500, 5)) < 0.7
  mean = np.full(5, 0.4, np.float32)
  stats = evaluate.batch_statistics(preds, targets, weights, ood, mean)
  for j in range(5):
    for s in range(3):
      expected = (weights[:, s] * (preds[:, j] - targets[:, j]) ** 2).sum()
      assert float(stats["sse"][s, j]) == pytest.approx(expected, rel=1e-5)
    keep = ood[:, j] & (np.abs(targets[:, j] - mean[j]) > 1e-6)
    ratio = np.abs(preds[keep, j] - mean[j]) / np.abs(targets[keep, j] - mean[j])
    assert float(stats["ratio_within"][j]) == (ratio <= 1 + 1e-5).sum()
    hist = np.bincount(np.minimum(np.floor(ratio / 0.01).astype(int), 400),
                       minlength=401)
    np.testing.assert_array_equal(np.asarray(stats["ratio_hist"][j]), hist)
  np.testing.assert_array_equal(np.asarray(stats["count"]), weights.sum(0))


@pytest.mark.parametrize("scale,median,share", [(0.0, 0.005, 1.0), (1.0, 1.0, 1.0),
                                                (2.0, 2.0, 0.0)])
def test_towards_the_mean_ratio_known_answers(scale, median, share):
  """Predict mean + scale * (truth - mean): every ratio equals `scale`."""
  acc = evaluate.Accumulator(SMALL, "extrapolation")
  mean = acc.train_mean
  predict, images = _oracle(SMALL, lambda t, idx: mean + scale * (t - mean))
  r = evaluate.evaluate_model(predict, SMALL, "extrapolation", images, progress=False)
  assert set(r["towards_mean"]) == {"scale", "orientation", "x_position", "y_position"}
  for name, summary in r["towards_mean"].items():
    assert summary["median"] == pytest.approx(median, abs=evaluate.RATIO_BIN_WIDTH)
    assert summary["share_0_1"] == pytest.approx(share)
    j = SMALL.factor_index(name)
    _, test = splits.masks(SMALL, "extrapolation")
    grid = SMALL.all_factor_indices()
    ood = splits.ood_factors(grid, SMALL, "extrapolation")[:, j] & test
    defined = np.abs(SMALL.targets(grid)[:, j] - mean[j]) > 1e-6
    assert summary["num_points"] == (ood & defined).sum()
    assert sum(summary["counts"]) == summary["num_points"]


def test_train_mean_is_the_training_set_mean():
  acc = evaluate.Accumulator(specs.DSPRITES, "extrapolation")
  train, _ = splits.masks("dsprites", "extrapolation")
  expected = specs.DSPRITES.targets(specs.DSPRITES.all_factor_indices()[train]).astype(
      np.float64).mean(0)
  np.testing.assert_allclose(acc.train_mean, expected, rtol=1e-5)
  # Scale keeps indices 0-3 of 0-5: mean index 1.5 of 5.
  assert acc.train_mean[1] == pytest.approx(0.3)


def test_modularity_separates_the_ood_factor():
  """A model that collapses x_position to the training mean but is exact elsewhere."""
  mean = evaluate.Accumulator(SMALL, "extrapolation").train_mean
  j = SMALL.factor_index("x_position")

  def collapse(t, idx):
    t = t.copy()
    t[:, j] = mean[j]
    return t

  predict, images = _oracle(SMALL, collapse)
  r = evaluate.evaluate_model(predict, SMALL, "extrapolation", images, progress=False)
  mod = r["modularity"]
  assert set(mod) == {"scale", "orientation", "x_position", "y_position"}
  subsets = splits.one_factor_ood(SMALL, "extrapolation")
  for name, m in mod.items():
    assert m["num_examples"] == subsets[name].sum()
  # The old single key meant the mean over all other factors; now both are named.
  assert mod["x_position"]["rsquared_id_all_factors"] == pytest.approx(1.0, abs=1e-6)
  assert mod["x_position"]["rsquared_id_split_factors"] == pytest.approx(1.0, abs=1e-6)
  assert mod["x_position"]["rsquared_ood"] < 0
  # On the scale subset, x_position is in distribution and still wrong.
  assert mod["scale"]["rsquared_ood"] == pytest.approx(1.0, abs=1e-6)
  assert mod["scale"]["rsquared_id_all_factors"] < 1.0
  # On the scale subset the split factors besides scale are orientation, x and y (not
  # shape): x's R² enters a mean of three there, a mean of four over all other factors.
  others = mod["scale"]["rsquared"]
  assert mod["scale"]["rsquared_id_split_factors"] == pytest.approx(
      np.mean([others[f] for f in ("orientation", "x_position", "y_position")]))
  assert mod["scale"]["rsquared_id_all_factors"] == pytest.approx(
      np.mean([others[f] for f in ("shape", "orientation", "x_position", "y_position")]))
  assert r["towards_mean"]["x_position"]["share_0_1"] == 1.0


def test_random_and_composition_have_no_modularity():
  predict, images = _oracle(SMALL)
  for split in ("random", "composition"):
    r = evaluate.evaluate_model(predict, SMALL, split, images, progress=False)
    assert "modularity" not in r
    # No value is held out, so ratios are gathered for every factor of every test point
    # (shape's train mean 0.5 equals its middle value, where the ratio is undefined).
    assert set(r["towards_mean"]) == set(SMALL.factor_names)


def test_array_images_and_fixed_batch_shape():
  spec = SMALL
  images = np.zeros((spec.num_images, 64, 64, 1), np.uint8)
  seen = []

  def predict(x):
    seen.append(x.shape)
    assert x.dtype == np.float32
    return np.full((x.shape[0], spec.num_factors), 0.5, np.float32)

  r = evaluate.evaluate_model(predict, spec, "interpolation", images, batch_size=300,
                              progress=False)
  assert set(seen) == {(300, 64, 64, 1)}
  assert r["num_examples"] == splits.masks(spec, "interpolation")[1].sum()


def test_non_finite_predictions_raise():
  acc = evaluate.Accumulator(SMALL, "random")
  idx = SMALL.factor_indices(np.arange(8))
  preds = SMALL.targets(idx)
  preds[3, 2] = np.nan
  with pytest.raises(ValueError, match="non-finite"):
    acc.update(preds, idx)


def test_wrong_prediction_shape_raises():
  acc = evaluate.Accumulator(SMALL, "random")
  idx = SMALL.factor_indices(np.arange(8))
  with pytest.raises(ValueError, match="shape"):
    acc.update(np.zeros((8, 4)), idx)


def test_scores_of_an_empty_set_are_none():
  r = evaluate.regression_scores(np.zeros(5), 0, SMALL)
  assert r["num_examples"] == 0 and r["rsquared"] is None and r["mse_scale"] is None


def test_empty_training_set_is_refused():
  tiny = specs.DSPRITES.subgrid((3, 3, 3, 3, 3))
  with pytest.raises(ValueError, match="no training points"):
    evaluate.Accumulator(tiny, "composition")


def test_towards_mean_reports_factors_whose_held_out_values_sit_at_the_mean():
  # MPI3D interpolation holds out the middle camera height and background colour, which is
  # exactly their training mean: every ratio is undefined there, and that must be reported.
  spec = specs.MPI3D.subgrid((2, 2, 2, 3, 3, 4, 4))
  predict, images = _oracle(spec)
  r = evaluate.evaluate_model(predict, spec, "interpolation", images, progress=False)
  for name in ("camera_height", "background_color"):
    tm = r["towards_mean"][name]
    assert tm["num_points"] == 0 and tm["median"] is None and tm["share_0_1"] is None
    ood = splits.ood_factors(spec.all_factor_indices(), spec, "interpolation")
    assert tm["num_undefined"] == ood[:, spec.factor_index(name)].sum() > 0


def _dsprites_like(n, value):
  out = np.zeros((n, 64, 64, 1), np.uint8)
  out[:, 10:20, 10:20] = value
  return out


def test_bad_images_are_refused_with_the_fix():
  predict, _ = _oracle(SMALL)
  good = _dsprites_like(SMALL.num_images, 255)
  cases = [
      (good.astype(np.float32) / 255, "must be uint8"),
      (good[..., 0], r"channel axis.*images\[\.\.\., None\]"),
      (np.zeros((SMALL.num_images, 32, 32, 1), np.uint8), "must have shape"),
      (_dsprites_like(SMALL.num_images, 1), "only the values 0 and 1.*images \\* 255"),
  ]
  for images, message in cases:
    with pytest.raises(ValueError, match=message):
      evaluate.evaluate_model(predict, SMALL, "random", images, progress=False)


def test_given_membership_scores_every_record_with_the_given_train_mean():
  idx = SMALL.factor_indices(np.arange(0, SMALL.num_images, 7))
  truth = SMALL.targets(idx)
  rules = evaluate.Accumulator(SMALL, "extrapolation")
  given = evaluate.Accumulator(SMALL, "extrapolation", membership="given",
                               train_mean=np.full(SMALL.num_factors, 0.25))
  for acc in (rules, given):
    acc.update(truth * 0.5, idx)
  test = splits.is_test(idx, SMALL, "extrapolation")
  assert rules.result()["num_examples"] == test.sum() < len(idx)
  assert given.result()["num_examples"] == len(idx)
  np.testing.assert_allclose(given.train_mean, 0.25)


def test_an_images_array_that_is_not_the_grid_is_refused_naming_both_lengths():
  predict, render = _oracle(SMALL)
  test = splits.indices(SMALL, "extrapolation", "test")
  test_images = render(test)
  with pytest.raises(ValueError, match=rf"images holds {len(test):,} images, the dsprites grid "
                                       rf"{SMALL.num_images:,}: .*image_indices=gsgen.splits"):
    evaluate.evaluate_model(predict, SMALL, "extrapolation", test_images, progress=False)
  # With their flat indices, a test part's images score as the whole grid's.
  by_part = evaluate.evaluate_model(predict, SMALL, "extrapolation", test_images,
                                    image_indices=test, progress=False)
  whole = evaluate.evaluate_model(predict, SMALL, "extrapolation", render(np.arange(
      SMALL.num_images)), progress=False)
  assert by_part == whole and by_part["rsquared"] == pytest.approx(1.0, abs=1e-6)
  with pytest.raises(ValueError, match=r"flat index 0 is to be scored but is not among "
                                       r"image_indices"):
    evaluate.evaluate_model(predict, SMALL, "extrapolation", test_images, image_indices=test,
                            part="all", progress=False)


def test_an_images_function_returning_the_wrong_count_is_named():
  predict, render = _oracle(SMALL)
  with pytest.raises(ValueError, match=r"the images function returned 99 images for 100 flat "
                                       r"indices"):
    evaluate.evaluate_model(predict, SMALL, "random", lambda idx: render(idx[:-1]),
                            batch_size=100, progress=False)
