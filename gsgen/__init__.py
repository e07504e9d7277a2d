"""gsgen: does visual representation learning generalise within its domain? (Schott et al.)

Importing the package changes nothing in the environment: a process that trains, scores or
times calls `gsgen.xla.configure` first (the command lines do), which sets gsgen's XLA CPU
option (README, Performance).

Synopsis::

  from gsgen import xla
  xla.configure()          # before JAX starts its backend
  from gsgen import train
"""
