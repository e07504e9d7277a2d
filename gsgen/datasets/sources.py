"""Data sources: a source string parsed once into one frozen `DataSource`.

Contract: the writer (`builders`, `prepare`), the reader (`loader`) and the input pipeline
ask this module what a string such as ``real`` means, which TFDS config holds it and where it
lies on disk; it needs neither TFDS nor the renderers (docs/datasets.md, "Source strings").

Synopsis::

  from gsgen.datasets import sources
  data = sources.parse("mpi3d", "official")
  data.name, data.config, data.kind    # ('real', 'real', 'official')
  data.data_source                     # 'official': what every result names
  sources.parse("dsprites", "procedural:stored").stored       # True: read from disk
  sources.parse("shapes3d", "benchmark_composition").benchmark_split   # 'composition'
  sources.data_dir("")                 # 'data/tfds': where prepared datasets are by default
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from gsgen import specs as specs_lib

DEFAULT_DATA_DIR = os.path.join("data", "tfds")
BENCHMARK_PREFIX = "benchmark_"
STORED_SUFFIX = ":stored"
MPI3D_VARIANTS = ("toy", "realistic", "real")
KINDS = ("procedural", "official", "benchmark")
_BUILDER_PREFIX = "gsgen_"  # + a dataset's name: TFDS has its own ``dsprites``


@dataclasses.dataclass(frozen=True)
class DataSource:
  """Where a dataset's images come from.

  Attributes:
    dataset: dsprites, shapes3d or mpi3d.
    kind: ``procedural`` (rendered), ``official`` (a published grid file) or ``benchmark``
      (the published benchmark split files).
    config: the TFDS builder config that holds it when prepared.
    stored: whether images are read on the host from a prepared TFDS dataset; False only
      for procedural images rendered on the fly inside the training step.
    benchmark_split: the split of a benchmark source, else None.
  """
  dataset: str
  kind: str
  config: str
  stored: bool
  benchmark_split: str | None = None

  @property
  def data_source(self) -> str:
    """``procedural`` or ``official``: what every result names."""
    return "procedural" if self.kind == "procedural" else "official"

  @property
  def name(self) -> str:
    """The canonical source string; ``parse(dataset, name)`` gives this value back."""
    if self.kind == "procedural" and self.stored:
      return self.config + STORED_SUFFIX
    return self.config

  @property
  def parts(self) -> tuple[str, ...]:
    """The parts a prepared copy holds: the whole grid in ``train``, or a benchmark's two."""
    return ("train", "test") if self.kind == "benchmark" else ("train",)

  @property
  def tfds_name(self) -> str:
    """The ``name/config`` string that ``tfds.data_source`` reads."""
    return f"{_BUILDER_PREFIX}{self.dataset}/{self.config}"

  def folder(self, data_dir) -> pathlib.Path:
    """The folder of its prepared copy under ``data_dir`` (versions below it)."""
    return pathlib.Path(data_dir) / f"{_BUILDER_PREFIX}{self.dataset}" / self.config

  def prepare_command(self, data_dir, grid_sizes=None) -> str:
    """The shell command that prepares it under ``data_dir``."""
    grid = f" --grid {','.join(map(str, grid_sizes))}" if grid_sizes else ""
    return (f"python -m gsgen.datasets.prepare --dataset {self.dataset} --source "
            f"{self.config} --data_dir {data_dir}{grid}")


def data_dir(path=None) -> str:
  """The folder of prepared datasets: ``path``, or `DEFAULT_DATA_DIR` when None or empty (as
  ``config.data.data_dir`` leaves it). Every reader resolves the default here."""
  return os.fspath(path) if path else DEFAULT_DATA_DIR


def builder_name(dataset) -> str:
  """The TFDS builder name, ``gsgen_<dataset>`` (TFDS has its own ``dsprites``)."""
  return f"{_BUILDER_PREFIX}{specs_lib.get(dataset).name}"


def configs(dataset) -> tuple[str, ...]:
  """The TFDS builder configs of a dataset, the default (procedural) first."""
  name = specs_lib.get(dataset).name
  grid = ("procedural",) + (MPI3D_VARIANTS if name == "mpi3d" else ("official",))
  return grid + tuple(BENCHMARK_PREFIX + s for s in specs_lib.SPLITS)


def names(dataset) -> tuple[str, ...]:
  """Every source string `parse` accepts for a dataset."""
  name = specs_lib.get(dataset).name
  extra = ("procedural" + STORED_SUFFIX,) + (("official",) if name == "mpi3d" else ())
  return configs(name) + extra


def parse(dataset, text: str | DataSource) -> DataSource:
  """Parses a source string (a `DataSource` of the same dataset passes through).

  Args:
    dataset: dataset name or spec.
    text: ``procedural``, ``procedural:stored``, ``official``, ``toy``, ``realistic``,
      ``real`` (MPI3D; its ``official`` is ``real``) or ``benchmark_<split>``.

  Returns:
    The `DataSource`.

  Raises:
    ValueError: unknown string, or a `DataSource` of another dataset; the message lists
      the valid strings.
  """
  spec = specs_lib.get(dataset)
  name = spec.name
  if isinstance(text, DataSource):
    if text.dataset != name:
      raise ValueError(f"data source {text.name!r} is of {text.dataset}, not {name}.")
    return text
  if text == "procedural" + STORED_SUFFIX:
    return DataSource(name, "procedural", "procedural", stored=True)
  config = "real" if name == "mpi3d" and text == "official" else text
  if config not in configs(spec):
    valid = ", ".join(configs(spec)) + f" or procedural{STORED_SUFFIX}"
    raise ValueError(f"unknown source {text!r} for {name}; choose one of {valid}"
                     + (" (official = real)." if name == "mpi3d" else "."))
  if config == "procedural":
    return DataSource(name, "procedural", config, stored=False)
  if config.startswith(BENCHMARK_PREFIX):
    return DataSource(name, "benchmark", config, stored=True,
                      benchmark_split=config[len(BENCHMARK_PREFIX):])
  return DataSource(name, "official", config, stored=True)


def prepared_grid(dataset, features) -> specs_lib.DatasetSpec:
  """The grid a dataset was prepared on (full or reduced), from its written TFDS features."""
  spec = specs_lib.get(dataset)
  sizes = tuple(features[f"label_{f.name}"].num_classes for f in spec.factors)
  return spec if sizes == spec.sizes else spec.subgrid(sizes)
