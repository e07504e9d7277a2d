"""results.json: the one "same config" rule and its named exceptions, assembly from what a run
recorded, the file's round trip, the resume check and the printed table (no training)."""

import json
import types

import pytest

from gsgen import results as results_lib
from gsgen import workdir as workdir_lib
from gsgen.configs import benchmark

SMOKE = "dataset=dsprites,split=random,model=cnn,preset=smoke"


def get_config(**fields):
  config = benchmark.get_config(SMOKE)
  for field, value in fields.items():
    section, _, name = field.rpartition("__")
    (config[section] if section else config)[name] = value
  return config


def as_read_back(config):
  return json.loads(json.dumps(config.to_dict()))


def test_a_config_and_its_json_are_the_same_config():
  config = get_config()
  assert results_lib.differences(as_read_back(config), config) == {}  # tuples read as lists
  assert results_lib.flatten({"optim": {"decay_at": (0.3,)}, "seed": 0}) == {
      "optim.decay_at": [0.3], "seed": 0}


@pytest.mark.parametrize("field, value, finished, resumes", [
    ("progress", False, True, True),            # changes no number
    ("eval__batch_size", 128, False, True),     # how the scores are computed
    ("eval__max_examples", 100, False, True),
    ("train__log_every", 1, False, True),       # logging and saving
    ("train__checkpoint_every", 1, False, True),
    ("data__data_dir", "/elsewhere", False, True),  # where prepared data lives
    ("optim__learning_rate", 0.01, False, False),   # what is trained
    ("train__steps", 6, False, False),
    ("seed", 1, False, False),
    ("preset", "cpu", False, False),
])
def test_each_named_exception_and_nothing_else_is_ignored(field, value, finished, resumes):
  saved, new = as_read_back(get_config()), get_config(**{field: value})
  dotted = field.replace("__", ".")
  assert results_lib.differences(saved, new) == {dotted: (saved_value(saved, dotted), value)}
  assert (results_lib.differences(saved, new, ignore=results_lib.NOT_RESULTS) == {}) == finished
  assert (results_lib.differences(saved, new, ignore=results_lib.NOT_TRAINING) == {}) == resumes


def saved_value(saved, dotted):
  return results_lib.flatten(saved)[dotted]


def test_a_field_on_one_side_only_differs():
  saved = as_read_back(get_config())
  grown = dict(saved, extra=None)
  assert results_lib.differences(saved, grown) == {"extra": (None, None)}
  assert results_lib.differences(grown, saved, ignore=results_lib.NOT_TRAINING) == {
      "extra": (None, None)}


def fake_source(spec_name="dsprites", sizes=(2, 2, 9, 9, 2)):
  spec = types.SimpleNamespace(name=spec_name, sizes=sizes)
  return types.SimpleNamespace(spec=spec, data_source="procedural",
                               data=types.SimpleNamespace(name="procedural"), split="random")


STAGES = (types.SimpleNamespace(name="representation", steps=3),
          types.SimpleNamespace(name="readout", steps=2))
ROWS = [{"step": 3, "stage": "representation", "loss": 2.0, "images_per_second": 10.0},
        {"step": 4, "stage": "readout", "loss": 1.5, "images_per_second": 11.0},
        {"step": 5, "stage": "readout", "loss": 1.0, "images_per_second": 12.0}]
TEST = {"rsquared": 0.5, "mse": 0.1, "rsquared_noncategorical": 0.6, "num_examples": 1000,
        "evaluated": "all", "rsquared_shape": 0.5, "mse_shape": 0.1}


def one_seed(config, seeds_in_one_program=1):
  return results_lib.of_seed(config, fake_source(), STAGES, test=TEST, files={}, rows=ROWS,
                             num_params=7, devices="8 x cpu", init_from={},
                             config_changes=[], seeds_in_one_program=seeds_in_one_program)


def test_one_seed_is_assembled_from_what_its_run_recorded():
  config = get_config(seed=3)
  out = results_lib.of_run(config, fake_source(), [one_seed(config)], [])
  assert out["dataset"] == "dsprites" and out["seed"] == 3 and out["grid"] == [2, 2, 9, 9, 2]
  assert "num_seeds" not in out and "per_seed" not in out
  assert out["steps"] == 5 and out["stages"] == {"representation": 3, "readout": 2}
  assert out["train"] == {
      "final_loss": 1.0, "images_per_second": 12.0, "num_params": 7, "devices": "8 x cpu",
      "final_metrics": {  # each stage's last row
          "representation": {"step": 3, "loss": 2.0, "images_per_second": 10.0},
          "readout": {"step": 5, "loss": 1.0, "images_per_second": 12.0}}}
  assert out["config"] == config.to_dict()


def test_several_seeds_hold_each_seed_and_write_it_to_its_folder(tmp_path):
  config = get_config(seed=4, num_seeds=2)
  per_seed = []
  for s in (4, 5):
    one = get_config(seed=s)
    per_seed.append(one_seed(one, seeds_in_one_program=2))
  out = results_lib.of_run(config, fake_source(), per_seed, [])
  assert out["seeds"] == [4, 5] and out["num_seeds"] == 2 and list(out["per_seed"]) == ["4", "5"]
  assert out["per_seed"]["5"]["seed"] == 5
  assert out["per_seed"]["5"]["train"]["seeds_in_one_program"] == 2
  path = str(tmp_path)
  assert results_lib.read(path) is None
  results_lib.write(path, out)
  assert results_lib.read(path) == json.loads(json.dumps(out))
  for s in ("4", "5"):
    assert results_lib.read(workdir_lib.seed_dir(path, int(s))) == json.loads(
        json.dumps(out["per_seed"][s]))


def test_a_run_is_finished_only_for_a_config_that_made_its_results(tmp_path):
  config = get_config()
  path = str(tmp_path)
  assert results_lib.finished(path, config) is None  # nothing there yet
  results_lib.write(path, results_lib.of_run(config, fake_source(), [one_seed(config)], []))
  assert results_lib.finished(path, config) == results_lib.read(path)
  assert results_lib.finished(path, get_config(progress=False)) == results_lib.read(path)
  assert results_lib.finished(path, get_config(eval__batch_size=128)) is None
  assert results_lib.finished(path, get_config(seed=1)) is None


def test_the_resume_check_refuses_training_changes_and_records_accepted_ones(tmp_path):
  path = str(tmp_path)
  assert results_lib.check_config(path, get_config(), 0) == []
  assert workdir_lib.read_config(path) == as_read_back(get_config())
  # Nothing trained yet: any config replaces the saved one.
  assert results_lib.check_config(path, get_config(train__steps=5), 0) == []
  assert results_lib.check_config(path, get_config(train__steps=5, eval__batch_size=128), 2) == []
  with pytest.raises(results_lib.ConfigChangedError,
                     match=r"trained to step 2 with another config \(train.steps: 5 -> 6\)"):
    results_lib.check_config(path, get_config(train__steps=6), 2)
  changes = results_lib.check_config(path, get_config(train__steps=6), 2, accept_changes=True)
  assert [(c["step"], c["fields"]) for c in changes] == [(2, {"train.steps": [5, 6]})]
  assert json.loads((tmp_path / "config_changes.json").read_text()) == changes
  assert workdir_lib.read_config(path)["train"]["steps"] == 6


def test_the_table_names_the_run_and_every_factor():
  config = get_config()
  table = results_lib.format_table(one_seed(config))
  assert table.splitlines() == [
      "dsprites (procedural), split random, model cnn, learner regression, seed 0, 5 steps, "
      "test examples 1,000 (all)",
      "  factor                   R2        MSE",
      "  shape                 0.500    0.10000",
      "  mean                  0.500    0.10000",
      "  non-categorical       0.600"]
