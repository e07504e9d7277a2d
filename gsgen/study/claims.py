"""The paper's claims checked against a study's table: overall, per group, per approach.

Synopsis::

  from gsgen.study import claims, table
  rows, missing = table.collect("workdirs/study")
  for claim in claims.check(rows):
    claim.holds, claim.by_group["supervised"].holds, claim.deciding
  text = claims.markdown(claims.check(rows), rows, missing)       # claims.md

The claims are about kinds of approaches (`gsgen.study.GROUPS`), so each is checked for the
study as a whole, for every group (its approaches' cells pooled) and for every approach (its
seeds). A verdict is True (holds), False (does not hold) or None (the results cannot tell).
Numbers are means ± standard deviations over seeds (over the pooled cells for a group).
``deciding`` names what the verdict turns on: the comparisons against the claim when it
fails; the narrowest comparison, or the exceptions, when it holds.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from gsgen.study import GROUPS

# A claim holds when at least this share of its comparisons agree.
MOSTLY = 0.75
OTHER_SPLITS = ("random", "composition", "interpolation")
_SHOWN = 12
MARKS = {True: "holds", False: "does not hold", None: "undecided"}


class Verdict(NamedTuple):
  """One group's or approach's verdict on a claim, and the numbers behind it."""
  holds: bool | None
  numbers: str


@dataclasses.dataclass
class Claim:
  """One claim of the paper, checked: ``holds`` is None when the results cannot tell.

  Attributes:
    text: the claim.
    holds: the verdict on the whole study.
    evidence: notes and numbers beside the tables below (may be empty).
    by_group: group -> its verdict, in `GROUPS` order, for the groups with a say.
    by_approach: approach -> its verdict, in the table's order.
    deciding: the comparisons the verdict turns on.
  """
  text: str
  holds: bool | None
  evidence: list[str]
  by_group: dict[str, Verdict] = dataclasses.field(default_factory=dict)
  by_approach: dict[str, Verdict] = dataclasses.field(default_factory=dict)
  deciding: list[str] = dataclasses.field(default_factory=list)


def check(rows: list[dict]) -> list[Claim]:
  """The claims of the study, each with the numbers behind its verdicts."""
  return [_hardest(rows), _towards_mean(rows), _modular(rows), _shapes3d_colours(rows),
          _transfer_on_real(rows)]


def spread(values) -> str:
  """``mean ± std`` of ``values`` (three decimals)."""
  return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def _verdict(agree: int, total: int) -> bool | None:
  return None if total == 0 else bool(agree >= MOSTLY * total)


def _all(oks) -> bool | None:
  oks = list(oks)
  return None if not oks else all(oks)


def _cap(lines: list[str]) -> list[str]:
  return lines[:_SHOWN] + ([f"... and {len(lines) - _SHOWN} more"] if len(lines) > _SHOWN
                           else [])


def _approaches(rows) -> dict[str, str]:
  """Approach -> group, in the order of the table."""
  return {r["approach"]: r["group"] for r in rows}


def _groups(rows) -> list[str]:
  present = {r["group"] for r in rows}
  return [g for g in GROUPS if g in present] + sorted(present - set(GROUPS))


def _slices(rows):
  """(label, rows) per dataset and data source: results compare only within one source."""
  several = len({r["data_source"] for r in rows}) > 1
  for dataset in dict.fromkeys(r["dataset"] for r in rows):
    for source in dict.fromkeys(r["data_source"] for r in rows if r["dataset"] == dataset):
      yield (f"{dataset} ({source})" if several else dataset,
             [r for r in rows if r["dataset"] == dataset and r["data_source"] == source])


def _r2(rows, split) -> list[float]:
  return [r["test.rsquared"] for r in rows
          if r["split"] == split and r.get("test.rsquared") is not None]


def _compare_splits(rows):
  """Whether extrapolation has the lowest mean R² of ``rows``: (ok, margin, numbers) or None."""
  extra = _r2(rows, "extrapolation")
  others = {s: v for s in OTHER_SPLITS if (v := _r2(rows, s))}
  if not extra or not others:
    return None
  margin = min(np.mean(v) for v in others.values()) - np.mean(extra)
  numbers = (f"extrapolation {spread(extra)} vs "
             + ", ".join(f"{s} {spread(v)}" for s, v in others.items()))
  return bool(margin > 0), float(margin), numbers


def _deciding(holds, against: list[str], unanimous: str) -> list[str]:
  """What a majority verdict turns on: the comparisons against it, or its exceptions."""
  if holds is None:
    return []
  if holds is False:
    return _cap(against)
  return _cap([f"exception: {a}" for a in against] or [unanimous])


def _hardest(rows) -> Claim:
  approaches = _approaches(rows)
  per_approach = {a: [] for a in approaches}  # (ok, margin, numbers, dataset label)
  per_group = {g: [] for g in _groups(rows)}
  for label, part in _slices(rows):
    compared = []
    for approach in approaches:
      result = _compare_splits([r for r in part if r["approach"] == approach])
      if result:
        per_approach[approach].append((*result, label))
        compared.append(approach)
    for group in per_group:
      result = _compare_splits([r for r in part if r["group"] == group
                                and r["approach"] in compared])
      if result:
        per_group[group].append((*result, label))
  checks = [(ok, margin, f"{label}/{a}: {numbers}")
            for a, cs in per_approach.items() for ok, margin, numbers, label in cs]
  holds = _all(ok for ok, _, _ in checks)
  deciding = []
  if holds is False:
    deciding = [t + " (extrapolation is not the lowest)" for ok, _, t in checks if not ok]
  elif holds:
    _, margin, text = min(checks, key=lambda c: c[1])
    deciding = [f"narrowest: {text} (margin {margin:.3f})"]
  verdicts = lambda by: {k: Verdict(_all(c[0] for c in cs),
                                    "; ".join(f"{c[3]}: {c[2]}" for c in cs))
                         for k, cs in by.items() if cs}
  return Claim("Extrapolation is the hardest split for every approach.", holds,
               [] if checks else ["no approach has results on extrapolation and on another "
                                  "split of one dataset"],
               verdicts(per_group), verdicts(per_approach), _cap(deciding))


def _towards_mean(rows) -> Claim:
  pairs = []  # (row, factor, share of the ratio in [0, 1])
  for r in rows:
    if r["split"] != "extrapolation":
      continue
    for key, value in r.items():
      if key.startswith("towards_mean.") and key.endswith(".share_0_1") and value is not None:
        pairs.append((r, key.split(".")[1], value))

  def verdict(chosen, per_seed: bool) -> Verdict:
    shares = np.asarray([s for _, _, s in chosen])
    above = int(np.sum(shares > 0.5))
    numbers = f"median share {np.median(shares):.2f}"
    if per_seed:
      cells = {}
      for r, _, s in chosen:
        cells.setdefault(r["cell"], []).append(s)
      numbers += f" (per seed: {spread([np.median(v) for v in cells.values()])})"
    return Verdict(_verdict(above, len(shares)),
                   numbers + f"; above 0.5 in {above} of {len(shares)} factor x cell pairs")

  evidence, shares = [], np.asarray([s for _, _, s in pairs])
  if not pairs:
    evidence.append("no towards-the-mean summaries on the extrapolation split")
  if pairs:
    evidence.append(f"share of OOD predictions closer to the training mean than the truth "
                    f"(ratio in [0, 1]), extrapolation split: median {np.median(shares):.2f} "
                    f"over {len(shares)} factor x cell pairs; above 0.5 in "
                    f"{np.mean(shares > 0.5):.0%} of them")
  holds = None if not pairs else bool(np.mean(shares > 0.5) >= MOSTLY)
  against = [f"{r['cell']}: {f} share {s:.2f}" for r, f, s in pairs if s <= 0.5]
  deciding = _deciding(holds, against, f"all {len(pairs)} factor x cell pairs are above 0.5")
  return Claim("Predictions of out-of-distribution factors fall towards the training mean "
               "(the ratio lies mostly in [0, 1]).", holds, evidence,
               _split_by(pairs, "group", _groups(rows), lambda c: verdict(c, False)),
               _split_by(pairs, "approach", _approaches(rows), lambda c: verdict(c, True)),
               deciding)


def _split_by(items, key, names, verdict) -> dict[str, Verdict]:
  """``{name: verdict(items of that name)}`` for the names with items (first item: a row)."""
  out = {}
  for name in names:
    chosen = [it for it in items if it[0][key] == name]
    if chosen:
      out[name] = verdict(chosen)
  return out


def _modular(rows) -> Claim:
  subsets = []  # (row, factor, R² of the other split factors, R² of the OOD factor, ok)
  for r in rows:
    if r["split"] != "extrapolation":
      continue
    for key, value in r.items():
      if key.startswith("modularity.") and key.endswith(".rsquared_id_split_factors") \
          and value is not None:
        factor = key.split(".")[1]
        ood = r.get(f"modularity.{factor}.rsquared_ood")
        subsets.append((r, factor, value, ood, value >= 0.5 and (ood is None or value > ood)))

  def verdict(chosen, per_seed: bool) -> Verdict:
    agree = sum(ok for *_, ok in chosen)
    ind = [v for _, _, v, _, _ in chosen]
    ood = [o for _, _, _, o, _ in chosen if o is not None]
    if per_seed:  # each seed's mean over its subsets, then the spread over seeds
      cells = {}
      for r, _, v, o, _ in chosen:
        cells.setdefault(r["cell"], ([], []))
        cells[r["cell"]][0].append(v)
        if o is not None:
          cells[r["cell"]][1].append(o)
      ind = [np.mean(v) for v, _ in cells.values()]
      ood = [np.mean(o) for _, o in cells.values() if o]
    return Verdict(_verdict(agree, len(chosen)),
                   f"{agree} of {len(chosen)} subsets agree; other split factors R² "
                   f"{spread(ind)}" + (f", OOD factor R² {spread(ood)}" if ood else ""))

  lines = [f"{r['cell']}: {f} out of distribution: other split factors R² {v:.3f}, {f} R² "
           + ("undefined" if o is None else f"{o:.3f}") for r, f, v, o, _ in subsets]
  agree = sum(ok for *_, ok in subsets)
  holds = _verdict(agree, len(subsets))
  against = [line for line, s in zip(lines, subsets) if not s[-1]]
  deciding = _deciding(holds, against, f"all {len(subsets)} subsets agree")
  return Claim("In-distribution factors stay well predicted when one factor is out of "
               "distribution (R² of the other split factors >= 0.5 and above the OOD "
               "factor's).", holds,
               [f"{agree} of {len(subsets)} one-factor-OOD subsets agree" if subsets else
                "no one-factor-OOD subsets on the extrapolation split"],
               _split_by(subsets, "group", _groups(rows), lambda c: verdict(c, False)),
               _split_by(subsets, "approach", _approaches(rows), lambda c: verdict(c, True)),
               deciding)


def _shapes3d_colours(rows) -> Claim:
  values = []  # (row, hue factor, R²)
  for r in rows:
    if r["dataset"] != "shapes3d" or r["split"] not in ("composition", "interpolation"):
      continue
    for hue in ("floor_hue", "wall_hue", "object_hue"):
      value = r.get(f"test.rsquared_{hue}")
      if value is not None:
        values.append((r, hue, value))

  def verdict(chosen, per_seed: bool) -> Verdict:
    good = sum(v >= 0.8 for _, _, v in chosen)
    numbers = [v for _, _, v in chosen]
    if per_seed:
      cells = {}
      for r, _, v in chosen:
        cells.setdefault(r["seed"], []).append(v)
      numbers = [np.mean(v) for v in cells.values()]
    return Verdict(_verdict(good, len(chosen)),
                   f"colour R² {spread(numbers)}; >= 0.8 in {good} of {len(chosen)}")

  good = sum(v >= 0.8 for _, _, v in values)
  holds = _verdict(good, len(values))
  against = [f"{r['cell']}: {h} R² {v:.3f}" for r, h, v in values if v < 0.8]
  deciding = _deciding(holds, against, f"all {len(values)} colour factors reach 0.8")
  return Claim("Shapes3D colour factors compose and interpolate fairly well (R² >= 0.8).",
               holds, [f"{good} of {len(values)} colour factor x cell pairs reach 0.8"
                       if values else "no Shapes3D composition or interpolation results"],
               _split_by(values, "group", _groups(rows), lambda c: verdict(c, False)),
               _split_by(values, "approach", _approaches(rows), lambda c: verdict(c, True)),
               deciding)


def _transfer_on_real(rows) -> Claim:
  # Only the real variant: the toy and realistic ones (official too) are rendered scenes.
  real = [r for r in rows if r["dataset"] == "mpi3d" and r["source"] == "real"]
  text = "On MPI3D-real, transfer learning helps most."
  if not real:
    return Claim(text, None, ["no results on the official MPI3D-real data in this study "
                              "(procedural MPI3D is a stand-in for the toy scene, and the "
                              "toy and realistic variants are not real photographs)"])
  real = [r for r in real if r["split"] == "extrapolation"
          and r.get("test.rsquared") is not None]
  if not real:
    return Claim(text, None, ["no extrapolation results on MPI3D-real"])
  group = _approaches(real)
  scores = {a: [r["test.rsquared"] for r in real if r["approach"] == a] for a in group}
  ranked = sorted(scores, key=lambda a: -np.mean(scores[a]))
  evidence = [f"{a} ({group[a]}): {spread(scores[a])}" for a in ranked]
  transfer = [a for a in ranked if group[a] == "transfer"]
  if not transfer:
    return Claim(text, None, ["no transfer approach in this study"] + evidence)
  best_transfer, best_other = transfer[0], next(
      (a for a in ranked if group[a] != "transfer"), None)
  if best_other is None:
    return Claim(text, None, ["no approach other than transfer to compare with"] + evidence)
  beats = lambda a, b: bool(np.mean(scores[a]) > np.mean(scores[b]))
  by_group = {}
  for g in _groups(real):
    best = next(a for a in ranked if group[a] == g)
    by_group[g] = Verdict(beats(best_transfer, best) if g != "transfer" else
                          beats(best_transfer, best_other),
                          f"best {best} {spread(scores[best])}")
  by_approach = {a: Verdict(beats(a, best_other) if group[a] == "transfer" else
                            beats(best_transfer, a), spread(scores[a])) for a in group}
  holds = group[ranked[0]] == "transfer"
  return Claim(text, holds, evidence, by_group, by_approach,
               [f"best transfer approach {best_transfer} {spread(scores[best_transfer])} vs "
                f"best other {best_other} ({group[best_other]}) "
                f"{spread(scores[best_other])}"])


def markdown(claims: list[Claim], rows: list[dict], missing: list[str]) -> str:
  """``claims.md``: each claim's verdict, per group and per approach, with its numbers."""
  sources = sorted({r["data_source"] for r in rows})
  lines = ["# Claims check", "",
           f"From {len(rows)} finished cells ({', '.join(sources) or 'no'} data)"
           + (f"; {len(missing)} cells missing." if missing else "."), ""]
  for c in claims:
    lines += [f"## {c.text}", "", f"**{MARKS[c.holds]}**", ""]
    lines += [f"- {e}" for e in c.evidence] + ([""] if c.evidence else [])
    if c.by_group:
      lines += ["| Group | Verdict | Numbers |", "|---|---|---|"]
      lines += [f"| {g} | {MARKS[v.holds]} | {v.numbers} |" for g, v in c.by_group.items()]
      lines.append("")
    if c.by_approach:
      group = _approaches(rows)
      lines += ["| Approach | Group | Verdict | Numbers |", "|---|---|---|---|"]
      lines += [f"| {a} | {group.get(a, '')} | {MARKS[v.holds]} | {v.numbers} |"
                for a, v in c.by_approach.items()]
      lines.append("")
    if c.deciding:
      lines += ["Decided by:", ""] + [f"- {d}" for d in c.deciding] + [""]
  return "\n".join(lines)
