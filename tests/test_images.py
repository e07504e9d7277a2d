"""Images of grid points: the one host function gives what each former path gave."""

import numpy as np
import pytest

from gsgen import specs
from gsgen.datasets import images
from gsgen.datasets import prepare
from gsgen.datasets import procedural
from gsgen.datasets import records
from gsgen.datasets import sources

GRID = (3, 2, 6, 6, 6)
POINTS = np.array([[0, 0, 0, 0, 0], [1, 1, 3, 2, 5], [2, 0, 5, 5, 1], [2, 1, 0, 4, 3]])


def test_the_default_data_folder_is_resolved_in_one_place():
  assert sources.data_dir(None) == sources.data_dir("") == sources.DEFAULT_DATA_DIR
  assert sources.DEFAULT_DATA_DIR == "data/tfds"
  assert sources.data_dir("elsewhere") == "elsewhere"


@pytest.mark.parametrize("dataset", ["dsprites", "shapes3d"])
def test_procedural_points_are_the_images_every_former_path_rendered(dataset):
  spec = specs.get(dataset)
  idx = spec.factor_indices(np.array([0, 17, 4321, spec.num_images - 1]))
  got = images.of_points(spec, "procedural", idx)
  assert got.dtype == np.uint8 and got.shape == (4,) + spec.image_shape
  # The batch sizes of the former paths: study figures (64), preview (all at once), the
  # VAE pictures (512), the PyTorch parts (the next power of two).
  for batch_size in (64, len(idx), 512, 4):
    np.testing.assert_array_equal(
        got, procedural.render_numpy(spec, factor_indices=idx, batch_size=batch_size))
  # A reduced grid renders with its dataset's renderer.
  small = spec.subgrid(tuple(min(2, n) for n in spec.sizes))
  np.testing.assert_array_equal(images.of_points(small, "procedural", small.factor_indices([3])),
                                procedural.render_numpy(small, [3]))


def test_records_are_rendered_or_read():
  spec = specs.DSPRITES.subgrid(GRID)
  data = sources.parse(spec, "procedural")
  rendered = records.Records(spec, spec.all_factor_indices(), None, data)
  expected = procedural.render_numpy(spec, factor_indices=spec.all_factor_indices()[[5, 1, 9]])
  np.testing.assert_array_equal(images.of_records(rendered, [5, 1, 9]), expected)
  stored = records.Records(spec, spec.all_factor_indices(),
                           records.ImageView(procedural.render_numpy(spec, np.arange(
                               spec.num_images))), data)
  np.testing.assert_array_equal(images.of_records(stored, [5, 1, 9]), expected)


def test_stored_points_are_read_from_the_prepared_copy(tmp_path):
  prepare.prepare("dsprites", "procedural", tmp_path, grid_sizes=GRID)
  spec = specs.DSPRITES.subgrid(GRID)
  got = images.of_points(spec, "procedural:stored", POINTS, data_dir=tmp_path)
  np.testing.assert_array_equal(got, procedural.render_numpy(spec, factor_indices=POINTS))
  with pytest.raises(FileNotFoundError, match="not prepared"):
    images.of_points(spec, "procedural:stored", POINTS, data_dir=tmp_path / "empty")


def test_benchmark_split_files_are_not_looked_up_by_point():
  with pytest.raises(ValueError, match="file order, not the grid"):
    images.of_points(specs.SHAPES3D, "benchmark_extrapolation", [[0] * 6])
