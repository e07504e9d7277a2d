"""Tests of the renderer table and chunked rendering into numpy."""

import numpy as np
import pytest

from gsgen.datasets import procedural
from gsgen.datasets import render_dsprites
from gsgen.datasets import render_shapes3d
from gsgen import specs


def test_chunks_equal_one_jitted_call():
  spec = specs.DSPRITES
  rows = spec.factor_indices(np.arange(0, spec.num_images, 2113))  # 349 rows: 3 chunks
  got = procedural.render_numpy(spec, factor_indices=rows, batch_size=128)
  assert isinstance(got, np.ndarray) and got.shape == (len(rows), 64, 64, 1)
  np.testing.assert_array_equal(got, np.asarray(render_dsprites.render(rows)))
  by_flat = procedural.render_numpy("dsprites", np.arange(0, spec.num_images, 2113),
                                    batch_size=128)
  np.testing.assert_array_equal(by_flat, got)


def test_shapes3d_renders_by_recolouring_its_geometries():
  assert procedural.renderer("shapes3d") is render_shapes3d.render_recoloured
  assert procedural.renderer(specs.SHAPES3D.subgrid((2, 2, 2, 2, 2, 2))) is (
      render_shapes3d.render_recoloured)
  rows = specs.SHAPES3D.factor_indices(np.arange(0, 480_000, 9_973))
  got = procedural.render_numpy("shapes3d", factor_indices=rows, batch_size=64)
  np.testing.assert_array_equal(got, np.asarray(render_shapes3d.render(rows)))


def test_empty_input():
  assert procedural.render_numpy("dsprites", np.zeros(0, int)).shape == (0, 64, 64, 1)


@pytest.mark.parametrize("rows,match", [
    ([[3, 0, 0, 0, 0]], "out of range"),
    ([[0, 0, 0, 0]], "shape"),
    ([[0.0, 0, 0, 0, 0]], "integers"),
])
def test_bad_indices_are_refused(rows, match):
  with pytest.raises(ValueError, match=match):
    procedural.render_numpy("dsprites", factor_indices=np.asarray(rows))


def test_renderer_table():
  assert set(procedural.RENDERERS) == set(specs.DATASETS)
  assert procedural.renderer(specs.DSPRITES.subgrid((2, 2, 2, 2, 2))) is render_dsprites.render
  with pytest.raises(ValueError, match="flat_indices"):
    procedural.render_numpy("dsprites")
