"""The study command line: run a study's cells, or report on them.

Synopsis::

  python -m gsgen.study run --study=cpu --workdir=workdirs/study --jobs=2
  python -m gsgen.study run --study=paper --workdir=/shared/study --executor=ray \
      --address=auto --gpus_per_cell=0.25
  python -m gsgen.study report --workdir=workdirs/study
  python -m gsgen.study list --study=paper

A mistake (a missing flag, an unknown study, a bad study file) prints one line and exits 1.
SIGTERM or SIGINT stops the running cells at their next step (see `gsgen.study.runner`) and
exits 128 + the signal number (143 for SIGTERM): rerun the same command to resume.
"""

from __future__ import annotations

import argparse
import sys

if __name__ == "__main__":
  # Before the imports below (the package's own came first and are read again); the cells
  # it starts inherit the setting.
  from gsgen import xla as _xla
  _xla.restart_with_huge_pages()

from gsgen import study as study_lib
from gsgen import xla
from gsgen.study import report
from gsgen.study import runner


class _Parser(argparse.ArgumentParser):
  """argparse, with a usage mistake as one line and exit status 1 (argparse: usage, 2)."""

  def error(self, message):
    print(f"error: {message} ({self.prog} --help lists the flags)", file=sys.stderr)
    sys.exit(1)


def main(argv=None) -> int:
  parser = _Parser(prog="python -m gsgen.study", description=__doc__.split("\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  run = sub.add_parser("run", help="train every unfinished cell, then write the report")
  run.add_argument("--study", required=True, help="smoke, cpu, paper, or a study file")
  run.add_argument("--workdir", required=True, help="the study's folder (one per cell inside)")
  run.add_argument("--jobs", type=int, default=1, help="cells at once (local executor)")
  run.add_argument("--retries", type=int, default=2, help="attempts after a failure")
  run.add_argument("--executor", default="local", choices=runner.EXECUTORS)
  run.add_argument("--address", default=None, help="Ray cluster address (e.g. auto)")
  run.add_argument("--gpus_per_cell", type=float, default=0.0,
                   help="Ray: the GPU share of a cell (0.25 packs four on one GPU)")
  run.add_argument("--seeds_per_program", type=int, default=None,
                   help="train up to N consecutive seeds of a cell as replicas of one program "
                        "(default: the study's seeds_per_program, else 1)")
  run.add_argument("--grace_seconds", type=float, default=25.0,
                   help="after SIGTERM/SIGINT, how long to wait for the cells' checkpoints")
  run.add_argument("--no_report", action="store_true", help="skip the report at the end")
  rep = sub.add_parser("report", help="results.csv, leaderboard.md, claims.md, figures/ and "
                                      "report.html")
  rep.add_argument("--workdir", required=True)
  rep.add_argument("--no_figures", action="store_true")
  lst = sub.add_parser("list", help="print a study's cells and their workdir names")
  lst.add_argument("--study", required=True)
  args = parser.parse_args(argv)
  xla.configure()  # the report's figures score runs in this process
  try:
    if args.command == "list":
      study = study_lib.load(args.study)
      study.check()
      for cell in study.cells():
        print(cell.name)
      return 0
    if args.command == "report":
      report.write_all(args.workdir, figures=not args.no_figures)
      return 0
    summary = runner.run(study_lib.load(args.study), args.workdir, jobs=args.jobs,
                         retries=args.retries, executor=args.executor, address=args.address,
                         gpus_per_cell=args.gpus_per_cell,
                         seeds_per_program=args.seeds_per_program,
                         grace_seconds=args.grace_seconds)
    if "signal" in summary:
      return 128 + summary["signal"]
    if not args.no_report:
      report.write_all(args.workdir)
    return 1 if summary["failed"] else 0
  except (ValueError, FileNotFoundError, ImportError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
