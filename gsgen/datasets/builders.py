"""TFDS builders of the three datasets, written as array_record without TensorFlow.

Synopsis::

  from gsgen.datasets import builders
  builder = builders.builder("dsprites", "procedural", data_dir="data/tfds")
  builder.download_and_prepare()       # renders and writes 737,280 records
  # later, in any process, without importing this module:
  import tensorflow_datasets as tfds
  records = tfds.data_source("gsgen_dsprites/procedural", data_dir="data/tfds")["train"]
  records[12345]["index"]              # 12345: record i is flat grid index i

Builders are named ``gsgen_<dataset>`` so they do not clash with TFDS's own ``dsprites`` and
``shapes3d``. Configs (data sources):

  procedural                 rendered by `gsgen.datasets.procedural` (default; no file needed)
  official                   dSprites npz / Shapes3D h5 under ``official_dir``
  toy, realistic, real       (MPI3D only) ``mpi3d_<variant>.npz`` under ``official_dir``
  benchmark_<split>          the published benchmark split files of <split> (random,
                             composition, interpolation, extrapolation); splits train, test

Grid configs have one split, ``train``, holding the whole grid in flat order; the benchmark
configs keep the published files' train and test parts in file order.

Features: ``image`` (uint8 zlib-compressed tensor), ``label_<factor>`` (class label, the
factor index), ``value_<factor>`` (float32 factor value) and ``index`` (flat grid index); the
label and value names are TFDS's own for dSprites and Shapes3D.

Known traps this module avoids (tensorflow-datasets 4.9 without TensorFlow): the ``Image``
feature needs TensorFlow to encode, so images are zlib ``Tensor`` features; records are
reordered by key hash unless ``disable_shuffling=True``; ``dl_manager.manual_dir`` raises on a
missing folder, so official files are looked up here instead.
"""

from __future__ import annotations

import os
import pathlib
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from gsgen import splits as splits_lib
from gsgen.datasets import official
from gsgen.datasets import procedural
from gsgen import specs as specs_lib

_VERSION = "1.0.0"
DEFAULT_DATA_DIR = os.path.join("data", "tfds")
# Images rendered or read per chunk while preparing: bounds memory (MPI3D: 4096 x 12 KB).
CHUNK_SIZE = 4096
BENCHMARK_PREFIX = "benchmark_"


def sources(dataset) -> tuple[str, ...]:
  """The data sources (builder configs) of a dataset, the default first."""
  name = specs_lib.get(dataset).name
  grid = ("procedural",) + (official.MPI3D_VARIANTS if name == "mpi3d" else ("official",))
  return grid + tuple(BENCHMARK_PREFIX + s for s in splits_lib.SPLITS)


def config_name(dataset, source: str) -> str:
  """The builder config of a source; ``official`` means ``real`` for MPI3D.

  Raises:
    ValueError: unknown source; the message lists the valid ones.
  """
  name = specs_lib.get(dataset).name
  if name == "mpi3d" and source == "official":
    source = "real"
  if source not in sources(name):
    raise ValueError(f"unknown source {source!r} for {name}; choose one of "
                     f"{', '.join(sources(name))}" + (" (official = real)" if name == "mpi3d"
                                                      else "") + ".")
  return source


def is_official(source: str) -> bool:
  """Whether a source is the published data (anything but ``procedural``)."""
  return source != "procedural"


class _GsgenBuilder(tfds.core.GeneratorBasedBuilder):
  """Shared builder logic; subclasses name the dataset."""

  DATASET: str = ""
  VERSION = tfds.core.Version(_VERSION)
  RELEASE_NOTES = {_VERSION: "First release."}

  def __init__(self, *, official_dir: str | os.PathLike = "data",
               grid: specs_lib.DatasetSpec | None = None, **kwargs):
    """Args:
      official_dir: folder of the official files (official and benchmark configs).
      grid: a reduced grid of the dataset (`specs.DatasetSpec.subgrid`), for tests.
      **kwargs: passed to `tfds.core.GeneratorBasedBuilder` (data_dir, config, ...).
    """
    self.official_dir = pathlib.Path(official_dir)
    self.spec = grid or specs_lib.get(self.DATASET)
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    features = {"image": tfds.features.Tensor(shape=self.spec.image_shape, dtype=np.uint8,
                                              encoding=tfds.features.Encoding.ZLIB)}
    for f in self.spec.factors:
      features[f"label_{f.name}"] = tfds.features.ClassLabel(num_classes=f.size)
    for f in self.spec.factors:
      features[f"value_{f.name}"] = tfds.features.Scalar(dtype=np.float32)
    features["index"] = tfds.features.Scalar(dtype=np.int64)
    return tfds.core.DatasetInfo(
        builder=self,
        description=(f"{self.DATASET} ({self.builder_config.name} source), record i is flat "
                     f"grid index i of the factors {', '.join(self.spec.factor_names)}."),
        features=tfds.features.FeaturesDict(features),
        disable_shuffling=True,
        homepage="https://arxiv.org/abs/2107.08221",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing is downloaded
    source = self.builder_config.name
    if source.startswith(BENCHMARK_PREFIX):
      variant = source[len(BENCHMARK_PREFIX):]
      return {part: self._generate_examples(official.read_benchmark_split(
          self.official_dir, self.DATASET, variant, part, expected_spec=self.spec))
              for part in official.BENCHMARK_PARTS}
    if source == "procedural":
      return {"train": self._generate_examples(None)}
    return {"train": self._generate_examples(
        read_official(self.DATASET, source, self.official_dir, self.spec))}

  def _generate_examples(self, arrays: official.Arrays | None) -> Iterator:
    """Examples of official arrays in their order, or of the procedural grid (None)."""
    total = self.spec.num_images if arrays is None else len(arrays)
    for start in range(0, total, CHUNK_SIZE):
      stop = min(start + CHUNK_SIZE, total)
      if arrays is None:
        flat = np.arange(start, stop)
        idx, images = self.spec.factor_indices(flat), procedural.render_numpy(self.spec, flat)
      else:
        idx, images = arrays.factor_indices[start:stop], arrays.images[start:stop]
        flat = self.spec.flat_index(idx)
      values = self.spec.values(idx).astype(np.float32)
      for k in range(stop - start):
        example = {"image": images[k], "index": int(flat[k])}
        for j, name in enumerate(self.spec.factor_names):
          example[f"label_{name}"] = int(idx[k, j])
          example[f"value_{name}"] = values[k, j]
        # With shuffling disabled records are sorted by key: the key is the position in the
        # source, which for grid sources is the flat index.
        yield start + k, example


def prepared_grid(dataset, features) -> specs_lib.DatasetSpec:
  """The grid a dataset was prepared on (full or reduced), from its written features."""
  spec = specs_lib.get(dataset)
  sizes = tuple(features[f"label_{f.name}"].num_classes for f in spec.factors)
  return spec if sizes == spec.sizes else spec.subgrid(sizes)


def read_official(dataset, source: str, official_dir, grid=None) -> official.Arrays:
  """Reads and validates a dataset's official grid file (the ``official``/MPI3D configs)."""
  name = specs_lib.get(dataset).name
  variant = config_name(name, source) if name == "mpi3d" else None
  path = official.find_official_file(name, official_dir, variant=variant)
  if name == "dsprites":
    return official.read_dsprites(path, expected_spec=grid or specs_lib.DSPRITES)
  if name == "shapes3d":
    return official.read_shapes3d(path, expected_spec=grid or specs_lib.SHAPES3D)
  candidates = (grid,) if grid is not None else (specs_lib.MPI3D, specs_lib.MPI3D_LEGACY)
  return official.read_mpi3d(path, candidates=candidates)


def _configs(dataset: str) -> list[tfds.core.BuilderConfig]:
  return [tfds.core.BuilderConfig(name=s, description=_describe(s))
          for s in sources(dataset)]


def _describe(source: str) -> str:
  if source == "procedural":
    return "procedurally rendered stand-in (not the published images)"
  if source.startswith(BENCHMARK_PREFIX):
    return f"published benchmark split files of the {source[len(BENCHMARK_PREFIX):]} split"
  return f"published dataset file ({source})"


class GsgenDsprites(_GsgenBuilder):
  """dSprites: 737,280 binary 64x64 sprites (shape, scale, orientation, x, y)."""
  DATASET = "dsprites"
  BUILDER_CONFIGS = _configs("dsprites")


class GsgenShapes3d(_GsgenBuilder):
  """Shapes3D: 480,000 64x64 RGB scenes (floor, wall, object hue; scale; shape; azimuth)."""
  DATASET = "shapes3d"
  BUILDER_CONFIGS = _configs("shapes3d")


class GsgenMpi3d(_GsgenBuilder):
  """MPI3D: 1,036,800 64x64 RGB images of a robot arm (7 factors)."""
  DATASET = "mpi3d"
  BUILDER_CONFIGS = _configs("mpi3d")


BUILDERS = {"dsprites": GsgenDsprites, "shapes3d": GsgenShapes3d, "mpi3d": GsgenMpi3d}


def tfds_name(dataset, source: str = "procedural") -> str:
  """The ``name/config`` string that `tfds.data_source` reads."""
  name = specs_lib.get(dataset).name
  return f"gsgen_{name}/{config_name(name, source)}"


def builder(dataset, source: str = "procedural", data_dir=DEFAULT_DATA_DIR,
            official_dir="data", grid=None) -> _GsgenBuilder:
  """A builder of ``dataset`` for ``source``, ready for ``download_and_prepare()``.

  Args:
    dataset: dsprites, shapes3d or mpi3d.
    source: one of `sources(dataset)` (``official`` is ``real`` for MPI3D).
    data_dir: where prepared datasets go.
    official_dir: where the official files are.
    grid: optional reduced grid (tests).
  """
  name = specs_lib.get(dataset).name
  return BUILDERS[name](config=config_name(name, source), data_dir=os.fspath(data_dir),
                        official_dir=official_dir, grid=grid)
