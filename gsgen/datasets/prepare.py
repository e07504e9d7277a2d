"""Prepares a dataset as TFDS array_record files, from the command line or Python.

Contract: rendering or reading streams in chunks, so memory stays bounded; a finished dataset
is not prepared twice.

Synopsis::

  python -m gsgen.datasets.prepare --dataset dsprites --source procedural --data_dir data/tfds
  python -m gsgen.datasets.prepare --dataset mpi3d --source real --official_dir data
  python -m gsgen.datasets.prepare --dataset shapes3d --grid 3,3,3,2,4,3   # a small smoke grid
"""

from __future__ import annotations

import argparse
import sys
import time

import tensorflow_datasets as tfds

from gsgen import specs as specs_lib
from gsgen.datasets import builders
from gsgen.datasets import sources


def prepare(dataset: str, source: str | sources.DataSource = "procedural",
            data_dir=sources.DEFAULT_DATA_DIR, official_dir="data", grid_sizes=None) -> str:
  """Prepares one dataset and source.

  Args:
    dataset: dsprites, shapes3d or mpi3d.
    source: a source string (`sources.names`; ``procedural:stored`` is ``procedural``).
    data_dir: where the TFDS dataset is written.
    official_dir: where official files are read from.
    grid_sizes: optional reduced grid (one size per factor).

  Returns:
    The folder the records were written to.

  Raises:
    ValueError: unknown source, a folder holding another grid, or an official file that is
      not the published one (`official.OfficialFileError`, raised before or while writing).
    FileNotFoundError: a missing official file.
  """
  spec = specs_lib.get(dataset)
  grid = spec.subgrid(grid_sizes) if grid_sizes else None
  b = builders.builder(spec.name, source, data_dir=data_dir, official_dir=official_dir,
                       grid=grid)
  wanted = (grid or spec).sizes
  if b.is_prepared():
    written = tfds.builder_from_directory(str(b.data_dir)).info.features
    found = sources.prepared_grid(spec, written).sizes
    if found != wanted:
      raise ValueError(f"{b.data_dir} already holds grid {found}, not {wanted}; delete that "
                       f"folder or pick another --data_dir.")
  b.download_and_prepare()
  return str(b.data_dir)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", required=True, choices=specs_lib.DATASETS)
  parser.add_argument("--source", default="procedural",
                      help="procedural (default), official, toy/realistic/real (MPI3D), "
                           "or benchmark_<split>")
  parser.add_argument("--data_dir", default=sources.DEFAULT_DATA_DIR)
  parser.add_argument("--official_dir", default="data",
                      help="folder holding the official files (see data/README.md)")
  parser.add_argument("--grid", default=None,
                      help="comma-separated reduced grid sizes, e.g. 3,2,4,8,8 (smoke tests)")
  args = parser.parse_args(argv)
  sizes = tuple(int(s) for s in args.grid.split(",")) if args.grid else None
  start = time.time()
  try:
    folder = prepare(args.dataset, args.source, args.data_dir, args.official_dir, sizes)
  except (ValueError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"prepared {args.dataset} ({args.source}) in {time.time() - start:.0f} s: {folder}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
