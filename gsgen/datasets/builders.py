"""TFDS builders of the three datasets, written as array_record without TensorFlow.

Contract: builders are named ``gsgen_<dataset>``, one config per data source
(`sources.configs`); a grid config holds the whole grid in its ``train`` part, record i being
flat grid index i; a benchmark config keeps the published files' parts in file order. This
module only writes; `gsgen.datasets.loader` reads (docs/datasets.md, "Prepared data").

Synopsis::

  from gsgen.datasets import builders
  builder = builders.builder("dsprites", "procedural", data_dir="data/tfds")
  builder.download_and_prepare()       # renders and writes 737,280 records
  # later, in any process, without importing gsgen:
  import tensorflow_datasets as tfds
  records = tfds.data_source("gsgen_dsprites/procedural", data_dir="data/tfds")["train"]
  records[12345]["index"]              # 12345: record i is flat grid index i
"""

from __future__ import annotations

import os
import pathlib
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from gsgen import specs as specs_lib
from gsgen.datasets import official
from gsgen.datasets import procedural
from gsgen.datasets import records as records_lib
from gsgen.datasets import sources

_VERSION = "1.0.0"
# Images rendered or read per chunk while preparing: bounds memory (MPI3D: 4096 x 12 KB).
CHUNK_SIZE = 4096


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

  # TFDS announces "Downloading and preparing"; nothing is downloaded here (the images are
  # rendered, or read from files the user placed), so say what happens.
  def _log_download_bytes(self) -> None:
    print(f"Preparing {self.DATASET} ({self.builder_config.name}, nothing is downloaded) to "
          f"{self.data_dir} ...")

  def _log_download_done(self) -> None:
    print(f"Prepared {self.DATASET} ({self.builder_config.name}) in {self.data_dir}.")

  @property
  def data(self) -> sources.DataSource:
    """The data source this builder's config writes."""
    return sources.parse(self.DATASET, self.builder_config.name)

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
    data = self.data
    if data.kind == "benchmark":
      return {part: self._generate_examples(official.read_benchmark_split(
          self.official_dir, self.DATASET, data.benchmark_split, part, expected_spec=self.spec))
              for part in data.parts}
    if data.kind == "procedural":
      return {"train": self._generate_examples(None)}
    return {"train": self._generate_examples(
        official.read_official(data, self.official_dir, self.spec))}

  def _generate_examples(self, recs: records_lib.Records | None) -> Iterator:
    """Examples of official records in their order, or of the procedural grid (None)."""
    total = self.spec.num_images if recs is None else len(recs)
    for start in range(0, total, CHUNK_SIZE):
      stop = min(start + CHUNK_SIZE, total)
      if recs is None:
        flat = np.arange(start, stop)
        idx, images = self.spec.factor_indices(flat), procedural.render_numpy(self.spec, flat)
      else:
        idx, images = recs.factor_indices[start:stop], recs.images[start:stop]
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


def _configs(dataset: str) -> list[tfds.core.BuilderConfig]:
  return [tfds.core.BuilderConfig(name=c, description=_describe(sources.parse(dataset, c)))
          for c in sources.configs(dataset)]


def _describe(data: sources.DataSource) -> str:
  if data.kind == "procedural":
    return "procedurally rendered stand-in (not the published images)"
  if data.kind == "benchmark":
    return f"published benchmark split files of the {data.benchmark_split} split"
  return f"published dataset file ({data.config})"


class GsgenDsprites(_GsgenBuilder):
  """dSprites: 737,280 binary 64x64 sprites (shape, scale, orientation, x, y)."""
  name = sources.builder_name("dsprites")
  DATASET = "dsprites"
  BUILDER_CONFIGS = _configs("dsprites")


class GsgenShapes3d(_GsgenBuilder):
  """Shapes3D: 480,000 64x64 RGB scenes (floor, wall, object hue; scale; shape; azimuth)."""
  name = sources.builder_name("shapes3d")
  DATASET = "shapes3d"
  BUILDER_CONFIGS = _configs("shapes3d")


class GsgenMpi3d(_GsgenBuilder):
  """MPI3D: 1,036,800 64x64 RGB images of a robot arm (7 factors)."""
  name = sources.builder_name("mpi3d")
  DATASET = "mpi3d"
  BUILDER_CONFIGS = _configs("mpi3d")


BUILDERS = {"dsprites": GsgenDsprites, "shapes3d": GsgenShapes3d, "mpi3d": GsgenMpi3d}


def builder(dataset, source: str | sources.DataSource = "procedural",
            data_dir=sources.DEFAULT_DATA_DIR, official_dir="data",
            grid=None) -> _GsgenBuilder:
  """A builder of ``dataset`` for ``source``, ready for ``download_and_prepare()``.

  Args:
    dataset: dsprites, shapes3d or mpi3d.
    source: a source string (`sources.names`) or `sources.DataSource`; ``procedural`` and
      ``procedural:stored`` both write the procedural config.
    data_dir: where prepared datasets go.
    official_dir: where the official files are.
    grid: optional reduced grid (tests).
  """
  data = sources.parse(dataset, source)
  return BUILDERS[data.dataset](config=data.config, data_dir=os.fspath(data_dir),
                                official_dir=official_dir, grid=grid)
