"""A study's report: its table, leaderboard, the paper's claims checked, figures and page.

Synopsis::

  from gsgen.study import report
  report.write_all("workdirs/study")       # results.csv, leaderboard.md, claims.md,
                                           # report.html, figures/*.png

A partial study is reported as far as it got, with the cells still missing listed, never as
an error.
"""

from __future__ import annotations

import os

from gsgen import workdir as workdir_lib
from gsgen.study import claims as claims_lib
from gsgen.study import figures as figures_lib
from gsgen.study import page
from gsgen.study import table


def write_all(workdir: str, figures: bool = True, print_fn=print) -> dict:
  """Writes ``results.csv``, ``leaderboard.md``, ``claims.md``, ``report.html`` (the
  `gsgen.study.page` with all of them) and ``figures/``.

  Returns:
    ``{"rows": n, "missing": [cell names], "files": [paths]}``.
  """
  rows, missing = table.collect(workdir)
  files = [os.path.join(workdir, n) for n in ("results.csv", "leaderboard.md", "claims.md")]
  table.write_csv(rows, files[0])
  workdir_lib.write_text(files[1], table.leaderboard(rows))
  workdir_lib.write_text(files[2], claims_lib.markdown(claims_lib.check(rows), rows, missing))
  drawn = []
  if figures and rows:
    drawn = figures_lib.draw_all(rows, workdir)
  files += [page.write(workdir, rows, missing, drawn)] + drawn
  if missing:
    print_fn(f"{len(missing)} of {len(rows) + len(missing)} cells have no results yet: "
             + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
  print_fn(f"{len(rows)} cells reported: " + ", ".join(files))
  return {"rows": len(rows), "missing": missing, "files": files}
