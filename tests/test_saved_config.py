"""The saved config: a ConfigDict written as JSON reads back exactly, types included, and the
launcher loads it by its short name."""

import json

import ml_collections
import pytest

from gsgen import configs
from gsgen import learners
from gsgen import main as main_lib
from gsgen import models
from gsgen import workdir as workdir_lib
from gsgen.configs import benchmark
from gsgen.configs import saved


def typed(node):
  """The tree of ``node`` with every leaf's and section's type beside its value."""
  if isinstance(node, ml_collections.ConfigDict):
    return ("ConfigDict", {k: typed(node[k]) for k in node.keys()})
  if isinstance(node, tuple):
    return ("tuple", tuple(typed(v) for v in node))
  return (type(node).__name__, node)


ARGS = [f"model={m},learner={l},preset={p}" for m in sorted(models.MODELS)
        for l in sorted(learners.LEARNERS) for p in ("cpu", "paper")]
ARGS += [f"dataset={d},split={s},model=cnn,preset=smoke,seed=3,source=procedural:stored"
         for d in ("dsprites", "shapes3d", "mpi3d") for s in ("random", "extrapolation")]
ARGS += ["model=resnet50,preset=transfer", "model=bit_resnet50,learner=pcl,preset=transfer"]


@pytest.mark.parametrize("arg", ARGS)
def test_a_written_config_reads_back_exactly(arg, tmp_path):
  config = benchmark.get_config(arg)
  config.num_seeds, config.progress, config.optim.weight_decay = 2, False, 1e-4
  path = str(tmp_path / "config.json")
  workdir_lib.write_json(path, config.to_dict())
  back = saved.get_config(path)
  assert typed(back) == typed(config)
  assert back.to_dict() == config.to_dict()


def test_the_launcher_loads_it_by_its_short_name(tmp_path):
  config = benchmark.get_config("model=mlp,preset=smoke")
  path = str(tmp_path / "config.json")
  workdir_lib.write_json(path, config.to_dict())
  assert configs.resolve(f"saved:{path}") == f"{configs.path('saved')}:{path}"
  assert typed(main_lib.load_config(configs.resolve(f"saved:{path}"))) == typed(config)


@pytest.mark.parametrize("content,message", [
    (None, "needs the path of its JSON file"),
    ("{", "cannot read the saved config"),
    ("[1, 2]", "holds no JSON object"),
])
def test_a_missing_or_bad_file_is_a_value_error(content, message, tmp_path):
  path = ""
  if content is not None:
    path = str(tmp_path / "config.json")
    with open(path, "w") as f:
      f.write(content)
  with pytest.raises(ValueError, match=message):
    saved.get_config(path)
  with pytest.raises(ValueError, match="cannot read the saved config"):
    saved.get_config(str(tmp_path / "nowhere.json"))


def test_json_gives_lists_where_the_config_has_tuples():
  """Why `saved.from_dict` turns lists back into tuples."""
  config = benchmark.get_config("preset=smoke")
  assert isinstance(json.loads(json.dumps(config.to_dict()))["data"]["grid"], list)
  assert isinstance(saved.from_dict(json.loads(json.dumps(config.to_dict()))).data.grid, tuple)
