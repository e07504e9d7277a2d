"""Tests of source strings: one parse, one frozen value, the strings each dataset accepts."""

import dataclasses

import pytest

from gsgen import specs
from gsgen.datasets import sources


def test_unknown_source_lists_valid_ones():
  with pytest.raises(ValueError, match="procedural, official, benchmark_random"):
    sources.parse("dsprites", "real")
  assert sources.parse("mpi3d", "official").config == "real"
  assert sources.configs("mpi3d")[:4] == ("procedural", "toy", "realistic", "real")


@pytest.mark.parametrize("dataset", specs.DATASETS)
def test_every_name_round_trips(dataset):
  for text in sources.names(dataset):
    data = sources.parse(dataset, text)
    assert sources.parse(dataset, data.name) == data
    assert sources.parse(dataset, data) is data
    assert data.dataset == dataset and data.kind in sources.KINDS
    assert data.config in sources.configs(dataset)
    assert data.data_source == ("procedural" if data.kind == "procedural" else "official")
    assert data.stored == (text != "procedural")
  # Every config is reachable, and only MPI3D's "official" is an alias.
  names = {sources.parse(dataset, t).name for t in sources.names(dataset)}
  assert names == set(sources.configs(dataset)) | {"procedural:stored"}


def test_what_each_string_means():
  live = sources.parse("dsprites", "procedural")
  assert (live.kind, live.config, live.stored, live.benchmark_split) == (
      "procedural", "procedural", False, None)
  stored = sources.parse("dsprites", "procedural:stored")
  assert (stored.kind, stored.config, stored.stored, stored.name) == (
      "procedural", "procedural", True, "procedural:stored")
  assert stored.data_source == "procedural" and stored.parts == ("train",)
  official = sources.parse("shapes3d", "official")
  assert (official.kind, official.config, official.stored) == ("official", "official", True)
  for variant in ("toy", "realistic", "real"):
    data = sources.parse("mpi3d", variant)
    assert (data.kind, data.config, data.name, data.data_source) == (
        "official", variant, variant, "official")
  bench = sources.parse("mpi3d", "benchmark_extrapolation")
  assert (bench.kind, bench.config, bench.benchmark_split, bench.data_source) == (
      "benchmark", "benchmark_extrapolation", "extrapolation", "official")
  assert bench.parts == ("train", "test")
  assert bench.tfds_name == "gsgen_mpi3d/benchmark_extrapolation"
  assert str(bench.folder("d")) == "d/gsgen_mpi3d/benchmark_extrapolation"
  # Frozen: a parsed source cannot be changed behind a reader's back.
  with pytest.raises(dataclasses.FrozenInstanceError):
    bench.config = "official"


@pytest.mark.parametrize("dataset,text", [
    ("dsprites", "real"), ("shapes3d", "toy"), ("mpi3d", "benchmark_none"),
    ("dsprites", "benchmark_"), ("dsprites", "Procedural"), ("dsprites", "official:stored"),
    ("dsprites", "procedural:disk"), ("dsprites", ""),
])
def test_bad_strings_name_the_valid_ones(dataset, text):
  with pytest.raises(ValueError) as e:
    sources.parse(dataset, text)
  message = str(e.value)
  assert repr(text) in message and dataset in message
  for name in sources.names(dataset):
    assert name in message


def test_a_source_of_another_dataset_is_refused():
  with pytest.raises(ValueError, match="of dsprites, not shapes3d"):
    sources.parse("shapes3d", sources.parse("dsprites", "official"))
  with pytest.raises(ValueError, match="unknown dataset"):
    sources.parse("cifar", "procedural")


def test_prepare_command():
  data = sources.parse("mpi3d", "official")
  assert data.prepare_command("data/tfds") == (
      "python -m gsgen.datasets.prepare --dataset mpi3d --source real --data_dir data/tfds")
  stored = sources.parse("dsprites", "procedural:stored")
  assert stored.prepare_command("x", (3, 2, 2, 2, 2)).endswith(
      "--source procedural --data_dir x --grid 3,2,2,2,2")
