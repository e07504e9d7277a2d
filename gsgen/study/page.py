"""A study's report as one self-contained HTML page: ``report.html``.

Synopsis::

  from gsgen.study import page
  page.write("workdirs/study")        # -> workdirs/study/report.html, from its results and
                                      #    the figures already drawn in figures/
  text = page.render("workdirs/study", rows, missing, figure_paths)

Contract: everything is inside the one file (figures as base64 PNG data URIs, inline CSS, no
script, no reference to the network), so it opens from a file browser, travels as an
attachment and prints on A4. Its sections, in order and each with its ``id``: ``header``,
``results``, ``leaderboard``, ``claims``, ``figures``, ``missing``. It holds no date and
orders everything the same way each time: a study gives the same bytes on every report.
"""

from __future__ import annotations

import base64
import html
import json
import os

import numpy as np

from gsgen import specs as specs_lib
from gsgen import workdir as workdir_lib
from gsgen.study import claims as claims_lib
from gsgen.study import read_manifest
from gsgen.study import table
from gsgen.study import runner

SECTIONS = ("header", "results", "leaderboard", "claims", "figures", "missing")
BEST = "★"
_VERDICT_CLASS = {True: "holds", False: "fails", None: "undecided"}

_CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;color:#222;max-width:1120px;
 margin:1.5em auto;padding:0 1.2em;line-height:1.4;font-size:15px}
h1{margin:.2em 0;font-size:1.7em}
h2{border-bottom:2px solid #444;padding-bottom:.15em;margin-top:1.8em}
h3{margin:1.2em 0 .4em;font-size:1.08em}
nav a{margin-right:1em}
.meta{color:#444;margin:.2em 0}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:.92em}
caption{text-align:left;font-weight:bold;padding:.2em 0}
th,td{border:1px solid #bbb;padding:.22em .55em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.best{background:#e3f1e3;font-weight:bold}
td.none{color:#999;text-align:center}
.mark{color:#1d6b1d}
.verdict{display:inline-block;padding:.05em .55em;border-radius:.3em;font-weight:bold;
 white-space:nowrap}
.holds{background:#d7efd7;color:#18461a}
.fails{background:#f6d8d8;color:#6e1717}
.undecided{background:#e8e8e8;color:#444}
.claim{border-left:4px solid #ccc;padding:.1em 0 .3em 1em;margin:1.2em 0}
.claim h3{margin-top:.3em}
.claim td:last-child{max-width:40em}
figure{margin:1.2em 0}
figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{color:#333;margin-top:.3em}
@media print{
 @page{size:A4;margin:12mm}
 body{max-width:none;margin:0;padding:0;font-size:9.5pt}
 nav{display:none}
 h2,h3{break-after:avoid;page-break-after:avoid}
 tr,figure,img,.verdict{break-inside:avoid;page-break-inside:avoid}
 thead{display:table-header-group}
 table{font-size:8.5pt}
 figure img{max-height:235mm;border:none}
 td.best,th,.verdict{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def write(workdir: str, rows: list[dict] | None = None, missing: list[str] | None = None,
          figure_paths: list[str] | None = None) -> str:
  """Writes ``workdir/report.html``; returns its path.

  Args:
    workdir: the study's folder.
    rows, missing: `table.collect`'s answer (read from ``workdir`` when None).
    figure_paths: the figures to embed, in order (None: the PNGs in ``workdir/figures``).
  """
  if rows is None or missing is None:
    rows, missing = table.collect(workdir)
  if figure_paths is None:
    folder = os.path.join(workdir, "figures")
    figure_paths = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
                    if n.endswith(".png")] if os.path.isdir(folder) else []
  path = os.path.join(workdir, "report.html")
  workdir_lib.write_text(path, render(workdir, rows, missing, figure_paths))
  return path


def render(workdir: str, rows: list[dict], missing: list[str],
           figure_paths: list[str]) -> str:
  """The page's text (see the module docstring)."""
  with open(os.path.join(workdir, "study.json")) as f:
    name = json.load(f)["name"]
  parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>Study {_e(name)}: report</title>", f"<style>{_CSS}</style>", "</head>",
           "<body>"]
  parts += _header(name, rows, missing)
  parts += _results(workdir, rows)
  parts += _leaderboard(rows)
  parts += _claims(rows)
  parts += _figures(rows, figure_paths)
  parts += _missing(workdir, missing)
  parts += ["</body>", "</html>"]
  return "\n".join(parts) + "\n"


def _e(text) -> str:
  return html.escape(str(text))


def _sources(rows) -> str:
  """Every data source of the study, said once: ``procedural data``."""
  return "; ".join(table.source_label(d, [r["source"] for r in rows if r["data_source"] == d])
                   for d in sorted({r["data_source"] for r in rows}))


def _slices(rows):
  """(dataset, data source, its rows), in the table's order."""
  for dataset in dict.fromkeys(r["dataset"] for r in rows):
    for source in dict.fromkeys(r["data_source"] for r in rows if r["dataset"] == dataset):
      yield dataset, source, [r for r in rows
                              if r["dataset"] == dataset and r["data_source"] == source]


def _header(name, rows, missing) -> list[str]:
  total = len(rows) + len(missing)
  links = " ".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS[1:])
  out = ['<header id="header">', f"<h1>Study {_e(name)}</h1>",
         f'<p class="meta">Results on {_e(_sources(rows))}.</p>' if rows else
         '<p class="meta">No results yet.</p>',
         f'<p class="meta">{total} cells: {len(rows)} finished, {len(missing)} without '
         f"results (missing or failed: see <a href=\"#missing\">missing</a>).</p>"]
  if any(r["data_source"] == "procedural" for r in rows):
    out.append('<p class="meta">Procedural images are a stand-in for the published datasets: '
               "their results compare only with procedural results.</p>")
  return out + [f"<nav>{links}</nav>", "</header>"]


def _results(workdir, rows) -> list[str]:
  out = ['<section id="results">', "<h2>Results</h2>",
         f"<p>Mean test R² ± standard deviation over seeds; {BEST} and bold: the best in its "
         "column.</p>"]
  several = len({r["data_source"] for r in rows}) > 1
  wanted = [c.split for c in read_manifest(workdir)]
  for dataset, source, part in _slices(rows):
    splits = [s for s in specs_lib.SPLITS if s in wanted]
    scores = {s: table.mean_r2(part, split=s) for s in splits}
    groups = {r["approach"]: r["group"] for r in part}
    best = {s: max(m for m, _, _ in v.values()) for s, v in scores.items() if v}
    title = f"{dataset} ({source} data)" if several else dataset
    out += [f'<table class="results" id="results-{_e(dataset)}-{_e(source)}">',
            f"<caption>{_e(title)}</caption>",
            "<thead><tr><th>Approach</th><th>Group</th><th>Seeds</th>"
            + "".join(f"<th>{_e(s)}</th>" for s in splits) + "</tr></thead>", "<tbody>"]
    for approach, group in groups.items():
      seeds = sorted({v[approach][2] for v in scores.values() if approach in v})
      seeds = "–".join(str(n) for n in dict.fromkeys(seeds[:1] + seeds[-1:])) or "0"
      cells = []
      for s in splits:
        if approach not in scores[s]:
          cells.append('<td class="none">–</td>')
          continue
        m, sd, _ = scores[s][approach]
        text = f"{m:.3f} ± {sd:.3f}"
        cells.append(f'<td class="num best"><b>{text}</b> <span class="mark">{BEST}</span></td>'
                     if m == best[s] else f'<td class="num">{text}</td>')
      out.append(f"<tr><th>{_e(approach)}</th><td>{_e(group)}</td>"
                 f'<td class="num">{seeds}</td>' + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>"]
  if not rows:
    out.append("<p>No cell has finished yet.</p>")
  return out + ["</section>"]


def _leaderboard(rows) -> list[str]:
  out = ['<section id="leaderboard">', "<h2>Leaderboard</h2>",
         "<p>Extrapolation split, mean test R² over seeds (± standard deviation), best first "
         "(leaderboard.md).</p>"]
  for dataset, label, entries in table.boards(rows):
    out += ['<table class="leaderboard">',
            f"<caption>{_e(dataset)} leaderboard ({_e(label)})</caption>",
            "<thead><tr><th>Method</th><th>Group</th><th>R² extrapolation</th><th>Seeds</th>"
            "</tr></thead>", "<tbody>"]
    out += [f'<tr><th>{_e(a)}</th><td>{_e(g)}</td><td class="num">{100 * m:.1f}% ± '
            f'{100 * s:.1f}</td><td class="num">{n}</td></tr>' for a, g, m, s, n in entries]
    out += ["</tbody>", "</table>"]
  if not table.boards(rows):
    out.append("<p>No extrapolation results yet.</p>")
  return out + ["</section>"]


def _numbers(text: str) -> str:
  """A verdict's numbers, one dataset or measure a line."""
  return "<br>".join(_e(part) for part in text.split("; "))


def _verdict(holds) -> str:
  return f'<span class="verdict {_VERDICT_CLASS[holds]}">{claims_lib.MARKS[holds]}</span>'


def _claims(rows) -> list[str]:
  out = ['<section id="claims">', "<h2>Claims</h2>",
         "<p>Each claim of the paper on the study as a whole, per group of approaches (their "
         "cells pooled) and per approach (mean ± standard deviation over seeds).</p>"]
  group = {r["approach"]: r["group"] for r in rows}
  for k, c in enumerate(claims_lib.check(rows)):
    out += [f'<article class="claim" id="claim-{k + 1}">', f"<h3>{_e(c.text)}</h3>",
            f"<p>Verdict: {_verdict(c.holds)}</p>"]
    if c.evidence:
      out += ["<ul>"] + [f"<li>{_e(e)}</li>" for e in c.evidence] + ["</ul>"]
    if c.by_group:
      out += ['<table class="by-group"><caption>By group</caption>',
              "<thead><tr><th>Group</th><th>Verdict</th><th>Numbers</th></tr></thead>"]
      out += [f"<tr><th>{_e(g)}</th><td>{_verdict(v.holds)}</td><td>{_numbers(v.numbers)}</td>"
              "</tr>"
              for g, v in c.by_group.items()]
      out.append("</table>")
    if c.by_approach:
      out += ['<table class="by-approach"><caption>By approach</caption>',
              "<thead><tr><th>Approach</th><th>Group</th><th>Verdict</th><th>Numbers</th>"
              "</tr></thead>"]
      out += [f"<tr><th>{_e(a)}</th><td>{_e(group.get(a, ''))}</td><td>{_verdict(v.holds)}"
              f"</td><td>{_numbers(v.numbers)}</td></tr>" for a, v in c.by_approach.items()]
      out.append("</table>")
    if c.deciding:
      out += ["<p>Decided by:</p>", '<ul class="deciding">']
      out += [f"<li>{_e(d)}</li>" for d in c.deciding] + ["</ul>"]
    out.append("</article>")
  return out + ["</section>"]


def _figures(rows, paths) -> list[str]:
  out = ['<section id="figures">', "<h2>Figures</h2>"]
  for path in paths:
    stem = os.path.splitext(os.path.basename(path))[0]
    with open(path, "rb") as f:
      data = base64.b64encode(f.read()).decode("ascii")
    out += [f'<figure id="figure-{_e(stem)}">',
            f'<img src="data:image/png;base64,{data}" alt="{_e(stem)}">',
            f"<figcaption>{_e(reading(stem, rows))}</figcaption>", "</figure>"]
  if not paths:
    out.append("<p>No figures (the report ran without them, or no cell has finished).</p>")
  return out + ["</section>"]


def reading(stem: str, rows: list[dict]) -> str:
  """One line read off figure ``stem`` (its file name without .png), from the numbers."""
  datasets = list(dict.fromkeys(r["dataset"] for r in rows))
  if stem.startswith("1_splits_"):
    from gsgen import splits as splits_lib  # pylint: disable=g-import-not-at-top
    spec = specs_lib.get(stem[len("1_splits_"):])
    shares = [f"{s} {splits_lib.masks(spec, s)[1].mean():.0%}" for s in specs_lib.SPLITS]
    return f"{spec.name}: share of the grid held out for testing: " + ", ".join(shares) + "."
  if stem == "2_r2_by_split":
    said = []
    for d in datasets:
      means = {s: np.mean([m for m, _, _ in table.mean_r2(rows, dataset=d, split=s).values()])
               for s in specs_lib.SPLITS if table.mean_r2(rows, dataset=d, split=s)}
      low = min(means, key=means.get)
      said.append(f"{d}: {low} ({means[low]:.3f}; highest "
                  f"{max(means, key=means.get)} {max(means.values()):.3f})")
    return "Lowest mean R² averaged over approaches: " + "; ".join(said) + "."
  if stem == "3_modularity":
    said = []
    for d in datasets:
      points = [(r[k], r[k.replace(".rsquared_ood", ".rsquared_id_split_factors")])
                for r in rows if r["dataset"] == d and r["split"] == "extrapolation"
                for k in r if k.startswith("modularity.") and k.endswith(".rsquared_ood")]
      points = [(o, i) for o, i in points if o is not None and i is not None]
      said.append(f"{d}: {sum(i > o for o, i in points)} of {len(points)}")
    return ("Points above the diagonal (the other split factors better predicted than the "
            "OOD factor): " + "; ".join(said) + ".")
  if stem == "4_towards_mean":
    said = []
    for d in datasets:
      shares = [v for r in rows if r["dataset"] == d and r["split"] == "extrapolation"
                for k, v in r.items()
                if k.startswith("towards_mean.") and k.endswith(".share_0_1") and v is not None]
      if shares:
        said.append(f"{d}: {np.median(shares):.2f} over {len(shares)} factor x cell pairs")
    return ("Median share of OOD predictions closer to the training mean than the truth "
            "(ratio in [0, 1]): " + "; ".join(said) + ".")
  if stem.startswith("5_predictions_"):
    d = stem[len("5_predictions_"):]
    cells = [r for r in rows if r["dataset"] == d and r["split"] == "extrapolation"
             and r.get("test.rsquared") is not None]
    if cells:
      best = max(cells, key=lambda r: r["test.rsquared"])
      return (f"{d}: the best extrapolation cell, {best['approach']} (seed {best['seed']}, "
              f"test R² {best['test.rsquared']:.3f}); held-out values shaded.")
  return stem


def _missing(workdir, missing) -> list[str]:
  failures = runner.read_failures(workdir)
  out = ['<section id="missing">', "<h2>Missing and failed cells</h2>",
         "<p>Cells without results.json: those that failed in the study's last complete run "
         "(after their retries), and those not run yet or stopped.</p>"]
  if not missing:
    return out + ["<p>None: every cell of the study has results.</p>", "</section>"]
  out += ['<table class="missing">', "<thead><tr><th>Cell</th><th>State</th></tr></thead>",
          "<tbody>"]
  for name in missing:
    if name in failures:
      state = f"failed (exit {failures[name]['exit']}; {failures[name]['log']})"
    elif os.path.isfile(os.path.join(workdir, name, "log.txt")):
      state = "started: its log.txt says how it ended"
    else:
      state = "not run yet"
    out.append(f"<tr><td>{_e(name)}</td><td>{_e(state)}</td></tr>")
  return out + ["</tbody>", "</table>", "</section>"]
