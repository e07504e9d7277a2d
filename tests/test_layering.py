"""Import rules between layers and module sizes, read from the source with `ast`.

The data layer sits below the split rules and the training code; its reader sits beside, not
on top of, its writer and the renderers. Reading every import statement (including those inside
functions) keeps these rules true without running any of the code.
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
  tree = ast.parse(path.read_text(), str(path))
  package = _module_name(path, root).split(".")
  if path.name != "__init__.py":
    package = package[:-1]
  nodes = tree.body if top_level_only else ast.walk(tree)
  found = set()
  for node in nodes:
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
      found.add(base)
      found.update(f"{base}.{alias.name}" for alias in node.names)
  return found


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


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_exceeds_450_lines(path):
  lines = len(path.read_text().splitlines())
  assert lines <= 450, f"{path.relative_to(ROOT)} has {lines} lines; split it by noun."
