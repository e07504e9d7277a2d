"""The three datasets: procedural renderers, official readers, TFDS builders and reader.

``gsgen.datasets.load`` opens a prepared dataset as `records.Records` (see
`gsgen.datasets.loader`); it is imported lazily so that the renderers stay free of TFDS.
"""


def load(name, source="procedural", data_dir=None, part="train"):
  """Opens a prepared dataset as `gsgen.datasets.records.Records`; see `loader.load`."""
  from gsgen.datasets import loader  # pylint: disable=g-import-not-at-top
  return loader.load(name, source=source, data_dir=data_dir, part=part)
