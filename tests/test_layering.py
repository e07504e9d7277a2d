"""Import rules between layers and module sizes, read from the source with `ast`.

`LAYERS` is the allowlist of who may import whom: each top-level module or package of gsgen
may import its own modules and the ones named beside it, all in layers below its own, so there
is no upward import; no gsgen module imports itself in a circle. Inside the data layer, the
reader sits beside, not on top of, its writer and the renderers. Reading every import
statement (including those inside functions) keeps these rules true without running any code.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gsgen"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
  parts = path.relative_to(root).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path, top_level_only: bool = False,
            root: pathlib.Path = ROOT) -> set[str]:
  """Every module an import statement of ``path`` may bind, absolute and dotted.

  ``from a import b`` yields both ``a`` and ``a.b`` (b may be a module or a name in a);
  relative imports are resolved against the module's package.
  """
  found = set()
  for base, names in _statements(path, top_level_only, root):
    found.add(base)
    found.update(f"{base}.{name}" for name in names or ())
  return found


def _statements(path: pathlib.Path, top_level_only: bool = False, root: pathlib.Path = ROOT):
  """(module, None) for ``import module``; (base, names) for ``from base import names``."""
  tree = ast.parse(path.read_text(), str(path))
  package = _module_name(path, root).split(".")
  if path.name != "__init__.py":
    package = package[:-1]
  for node in (tree.body if top_level_only else ast.walk(tree)):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name, None
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
      yield base, [alias.name for alias in node.names]


def _violations(found: set[str], forbidden) -> list[str]:
  return sorted(m for m in found for f in forbidden if m == f or m.startswith(f + "."))


def test_the_import_reader_sees_every_form(tmp_path):
  pkg = tmp_path / "gsgen" / "datasets"
  pkg.mkdir(parents=True)
  module = pkg / "m.py"
  module.write_text("import numpy as np\nfrom gsgen import splits as s\n"
                    "from . import builders\nfrom ..evaluate import x\n"
                    "def f():\n  import gsgen.train\n")
  found = imports(module, root=tmp_path)
  top = imports(module, top_level_only=True, root=tmp_path)
  assert {"numpy", "gsgen.splits", "gsgen.datasets.builders", "gsgen.evaluate.x",
          "gsgen.train"} <= found
  assert "gsgen.train" not in top
  assert _violations(found, ["gsgen.splits", "gsgen.train"]) == ["gsgen.splits",
                                                                  "gsgen.train"]


DATA_LAYER = sorted((PACKAGE / "datasets").glob("*.py"))
# Everything above the data layer: the split rules, training and evaluation code.
ABOVE_DATA = ("gsgen.splits", "gsgen.evaluate", "gsgen.train", "gsgen.input_pipeline",
              "gsgen.main", "gsgen.models", "gsgen.learners", "gsgen.sharding",
              "gsgen.checkpoint")


@pytest.mark.parametrize("path", DATA_LAYER, ids=lambda p: p.name)
def test_the_data_layer_imports_nothing_above_it(path):
  assert _violations(imports(path), ABOVE_DATA) == [], (
      f"{path.name} imports a layer above gsgen.datasets; split names are specs.SPLITS.")


def test_the_reader_imports_only_the_shared_vocabulary():
  found = {m for m in imports(PACKAGE / "datasets" / "loader.py") if m.startswith("gsgen")}
  allowed = {"gsgen", "gsgen.specs", "gsgen.datasets", "gsgen.datasets.sources",
             "gsgen.datasets.records", "gsgen.datasets.fork_safe"}
  assert found <= allowed, f"loader.py imports {sorted(found - allowed)}"
  writers = ("gsgen.datasets.builders", "gsgen.datasets.prepare", "gsgen.datasets.procedural",
             "gsgen.datasets.render_dsprites", "gsgen.datasets.render_shapes3d",
             "gsgen.datasets.render_mpi3d")
  assert not _violations(found, writers)


@pytest.mark.parametrize("name", ["sources.py", "records.py", "npz.py", "pixels.py",
                                  "fork_safe.py"])
def test_the_shared_modules_need_no_tfds_and_no_renderer(name):
  found = imports(PACKAGE / "datasets" / name)
  assert not _violations(found, ("tensorflow_datasets", "tensorflow", "jax",
                                 "gsgen.datasets.builders", "gsgen.datasets.loader",
                                 "gsgen.datasets.procedural"))


def test_procedural_training_needs_no_tfds_at_import():
  for path in (PACKAGE / "input_pipeline.py", PACKAGE / "datasets" / "__init__.py"):
    assert not _violations(imports(path, top_level_only=True), ("tensorflow_datasets",))


# Who may import whom, bottom up: each top-level module or package of gsgen (its "unit") may
# import its own modules and the units named beside it, all in layers below its own. Derived
# from the real imports and grouped by subject; a new import across units starts here.
LAYERS = (
    # The vocabulary and the process's plumbing: no other gsgen module.
    {"gsgen": (), "specs": (), "xla": (), "progress": (), "sharding": (), "checkpoint": (),
     "workdir": ()},
    # Rules, images and records over it: the splits, the data, the pair samplers, the run's
    # results and metric log.
    {"splits": ("specs",), "datasets": ("specs",), "pairs": ("specs",),
     "user_images": ("specs",), "results": ("workdir",), "metric_log": ("workdir",)},
    # The split's data resolved once; the networks and their optimizer.
    {"split_data": ("specs", "splits", "datasets"), "models": (), "optim": ()},
    # What a run is built from: batches, objectives, weights from elsewhere, scores.
    {"input_pipeline": ("pairs", "sharding", "split_data"),
     "learners": ("specs", "datasets", "pairs", "models"),
     "weights": ("checkpoint", "workdir", "models", "optim"),
     "evaluate": ("specs", "progress", "splits", "user_images")},
    # The config, the jitted step, the checks before a run, a finished run from Python.
    {"configs": ("specs", "models", "learners"),
     "steps": ("sharding", "optim", "learners"),
     "validate": ("specs", "workdir", "splits", "pairs", "models", "optim", "learners",
                  "weights"),
     "runs": ("specs", "workdir", "learners", "weights")},
    # The engine.
    {"train": ("progress", "sharding", "checkpoint", "workdir", "datasets", "results",
               "metric_log", "split_data", "models", "optim", "input_pipeline", "learners",
               "weights", "evaluate", "steps", "validate")},
    # Studies over it.
    {"study": ("specs", "xla", "workdir", "splits", "datasets", "results", "configs",
               "validate", "runs")},
    # The command line.
    {"main": ("xla", "workdir", "results", "configs", "train")},
)
ALLOWED = {unit: set(may) for layer in LAYERS for unit, may in layer.items()}
LAYER_OF = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
MODULE_PATHS = {_module_name(path, ROOT): path for path in MODULES}


def _unit(module: str) -> str:
  return module.split(".")[1] if "." in module else module


def gsgen_imports(path: pathlib.Path) -> set[str]:
  """The gsgen modules (packages by their ``__init__``) that ``path`` imports anywhere.

  ``from p import x`` names module ``p.x`` where there is one, else ``p`` (x is a name in p);
  ``import a.b`` names the longest module prefix of ``a.b``.
  """
  def module(name):
    while name and name not in MODULE_PATHS:
      name = name.rpartition(".")[0]
    return name

  found = set()
  for base, names in _statements(path):
    for name in ([base] if names is None else
                 [f"{base}.{n}" if f"{base}.{n}" in MODULE_PATHS else base for n in names]):
      if name == "gsgen" or name.startswith("gsgen."):
        found.add(module(name))
  found.discard(_module_name(path, ROOT))
  return found


GRAPH = {name: gsgen_imports(path) for name, path in MODULE_PATHS.items()}


def test_the_allowlist_is_layered_and_names_only_what_exists():
  assert len(LAYER_OF) == sum(len(layer) for layer in LAYERS), "a unit in two layers"
  for unit, may in ALLOWED.items():
    assert (PACKAGE / f"{unit}.py").is_file() or (PACKAGE / unit / "__init__.py").is_file() or (
        unit == "gsgen"), f"LAYERS names {unit!r}, which is no module or package of gsgen"
    for other in may:
      assert other in LAYER_OF, f"{unit} may import {other!r}, which LAYERS does not place"
      assert LAYER_OF[other] < LAYER_OF[unit], (
          f"{unit} (layer {LAYER_OF[unit]}) may import {other} (layer {LAYER_OF[other]}): "
          "an upward or sideways import; move one of them")


@pytest.mark.parametrize("name", sorted(MODULE_PATHS))
def test_every_import_is_allowed(name):
  unit = _unit(name)
  assert unit in ALLOWED, f"{name}: its unit {unit!r} has no entry in LAYERS"
  wrong = sorted(m for m in GRAPH[name] if _unit(m) != unit and _unit(m) not in ALLOWED[unit])
  assert not wrong, (f"{name} imports {wrong}; {unit} may import only {sorted(ALLOWED[unit])} "
                     "(LAYERS in tests/test_layering.py)")


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module, or with a self-loop (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1 or v in graph.get(v, ()):
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def test_the_circle_finder_finds_circles():
  assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
  assert _circles({"a": {"a"}, "b": set()}) == [["a"]]
  assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_gsgen_module_imports_itself_in_a_circle():
  assert _circles(GRAPH) == [], "import circles among gsgen modules"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_exceeds_450_lines(path):
  lines = len(path.read_text().splitlines())
  assert lines <= 450, f"{path.relative_to(ROOT)} has {lines} lines; split it by noun."
