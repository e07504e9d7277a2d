"""Kept for code written against it: ``data.split_data`` is `gsgen.split_data.parts`.

Synopsis::

  from gsgen import data
  train, test = data.split_data("dsprites", "extrapolation")   # = split_data.parts(...)
"""

from gsgen.split_data import SplitPart  # pylint: disable=unused-import
from gsgen.split_data import parts as split_data  # pylint: disable=unused-import
