"""The study's report page: built from Python, rendered and printed by a headless Chromium,
and the same bytes from a second report."""

import html.parser
import os
import re
import shutil
import subprocess
import sys

import matplotlib.image
import pytest

from gsgen.study import claims as claims_lib
from gsgen.study import page
from gsgen.study import report
from gsgen.study import runner

REPORTED = ("report.html", "results.csv", "claims.md", "leaderboard.md")


class Dom(html.parser.HTMLParser):
  """Every start tag as ``(tag, attributes)``, and each results table's rows of cells."""

  def __init__(self, text):
    super().__init__()
    self.tags, self.tables = [], []
    self._table = self._cell = None
    self.feed(text)

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    self.tags.append((tag, attrs))
    classes = attrs.get("class", "").split()
    if tag == "table" and "results" in classes:
      self._table = []
      self.tables.append(self._table)
    elif self._table is not None and tag == "tr":
      self._table.append([])
    elif self._table is not None and tag in ("td", "th"):
      self._cell = {"class": classes, "text": ""}
      self._table[-1].append(self._cell)

  def handle_endtag(self, tag):
    if tag in ("td", "th"):
      self._cell = None
    elif tag == "table":
      self._table = None

  def handle_data(self, data):
    if self._cell is not None:
      self._cell["text"] += data

  def ids(self):
    return [a["id"] for _, a in self.tags if "id" in a]


@pytest.fixture(scope="session")  # set up before the smoke study: a skip costs no run
def browser():
  path = shutil.which("chromium")
  if path is None:
    if os.environ.get("CI"):
      pytest.fail("the report page test needs Debian's Chromium in CI: apt-get install "
                  "chromium (.ci/run installs it)")
    pytest.skip("no chromium here (apt-get install chromium); CI runs this test")
  return path


def chromium(browser, tmp_path, *args) -> str:
  """Runs headless Chromium with ``args``; its standard output."""
  proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                         *args], capture_output=True, text=True, timeout=180, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_the_page_renders_in_a_browser_with_every_section_and_prints(browser, finished,
                                                                     tmp_path):
  workdir, _, _ = finished
  url = "file://" + os.path.abspath(os.path.join(workdir, "report.html"))
  dom_text = chromium(browser, tmp_path, "--dump-dom", url)
  dom = Dom(dom_text)
  ids = dom.ids()
  assert [i for i in ids if i in page.SECTIONS] == list(page.SECTIONS)
  # The results table: one row per approach, one column per split, the best one marked.
  (table,) = dom.tables
  header = [c["text"] for c in table[0]]
  assert header[:3] == ["Approach", "Group", "Seeds"] and header[3:] == ["random",
                                                                        "extrapolation"]
  rows = {r[0]["text"]: r for r in table[1:]}
  assert sorted(rows) == ["cnn", "mlp"]
  assert all(r[1]["text"] == "supervised" and r[2]["text"] == "1" for r in rows.values())
  for column in range(3, len(header)):
    marked = [r for r in rows.values() if "best" in r[column]["class"]]
    assert len(marked) == 1 and page.BEST in marked[0][column]["text"], header[column]
    assert re.fullmatch(r"-?\d\.\d{3} ± \d\.\d{3} " + page.BEST, marked[0][column]["text"])
  # Every claim with its verdict, by group and by approach.
  rows_, _ = report.collect(workdir)
  articles = re.findall(r'<article class="claim".*?</article>', dom_text, re.S)
  claims = report.check_claims(rows_)
  assert len(articles) == len(claims)
  for claim, article in zip(claims, articles):
    assert claim.text in article.replace("&gt;", ">")
    assert re.search(r"Verdict: <span class=\"verdict (holds|fails|undecided)\">"
                     + claims_lib.MARKS[claim.holds] + "</span>", article)
    if claim.by_group:
      assert 'class="by-group"' in article and 'class="by-approach"' in article
  # The figures, inside the page; nothing from the network.
  images = [a.get("src", "") for t, a in dom.tags if t == "img"]
  assert len(images) == len(os.listdir(os.path.join(workdir, "figures"))) == 5
  assert all(src.startswith("data:image/png;base64,") for src in images)
  links = [a[k] for _, a in dom.tags for k in ("src", "href") if k in a]
  assert all(v.startswith(("data:", "#")) for v in links), links
  assert not re.search(r"https?:|//[a-z]", re.sub(r"base64,[A-Za-z0-9+/=]+", "", dom_text))
  # A screenshot that shows something, and a printable PDF.
  shot, pdf = tmp_path / "page.png", tmp_path / "page.pdf"
  chromium(browser, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000",
           "--hide-scrollbars", url)
  pixels = matplotlib.image.imread(str(shot))[..., :3]
  assert pixels.shape[:2] == (4000, 1280)
  assert pixels.std() > 0.05 and (pixels < 0.9).any(axis=-1).mean() > 0.02
  chromium(browser, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", url)
  data = pdf.read_bytes()
  assert data.startswith(b"%PDF") and len(data) > 20_000


def test_a_second_report_writes_the_same_bytes(finished):
  """Run from the command line in another process (another hash seed): the page, the table,
  the claims and the leaderboard are byte for byte those of the first report."""
  workdir, _, _ = finished
  before = {n: open(os.path.join(workdir, n), "rb").read() for n in REPORTED}
  proc = subprocess.run([sys.executable, "-m", "gsgen.study", "report", f"--workdir={workdir}"],
                        capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "report.html" in proc.stdout
  for name in REPORTED:
    assert open(os.path.join(workdir, name), "rb").read() == before[name], name


def test_the_page_built_from_python_has_its_sections_and_names_what_is_missing(finished,
                                                                               tmp_path):
  workdir, _, _ = finished
  partial = tmp_path / "partial"
  shutil.copytree(workdir, partial)
  os.remove(partial / "report.html")
  gone, failed = sorted(n for n in os.listdir(partial)
                        if n.startswith(("dsprites-random-cnn", "dsprites-random-mlp")))
  os.remove(partial / gone / "results.json")
  os.remove(partial / failed / "results.json")
  runner._record_failures(str(partial), {failed: {"exit": 3, "log": "somewhere/log.txt"}})
  manifest = (partial / "study.json").read_text()
  (partial / "study.json").write_text(manifest.replace('"smoke"', '"smoke <b>&"', 1))
  path = page.write(str(partial))
  text = open(path).read()
  assert path == str(partial / "report.html")
  positions = [text.index(f'id="{s}"') for s in page.SECTIONS]
  assert positions == sorted(positions)
  assert "<h1>Study smoke &lt;b&gt;&amp;</h1>" in text and "<b>&" not in text
  assert "Results on procedural data." in text
  assert "4 cells: 2 finished, 2 without results" in text
  missing = text[text.index('id="missing"'):]
  assert f"<td>{gone}</td><td>started: its log.txt says how it ended</td>" in missing
  assert f"<td>{failed}</td><td>failed (exit 3; somewhere/log.txt)</td>" in missing
  assert text.count('<img src="data:image/png;base64,') == 5
  # The results table has no mean where the cell is missing.
  assert '<td class="none">–</td>' in text[text.index('id="results"'):text.index(
      'id="leaderboard"')]
  figures = text[text.index('id="figures"'):text.index('id="missing"')]
  captions = re.findall(r"<figcaption>(.*?)</figcaption>", figures)
  assert captions[1].startswith("Lowest mean R² averaged over approaches: dsprites: ")
  assert re.match(r"Points above the diagonal .*: dsprites: \d of 8\.", captions[2])
  assert len(captions) == 5 and all(captions)
