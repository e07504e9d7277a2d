"""The benchmark config's tables: the learners' budgets come from the learners, and the smoke
preset has a reduced grid for every dataset it builds."""

import pytest

from gsgen import learners
from gsgen.configs import benchmark


def test_every_representation_learner_budgets_each_preset_that_trains_from_scratch():
  from_scratch = set(benchmark.PRESETS) - {"transfer"}  # transfer fine-tunes a supervised model
  for name, learner in learners.LEARNERS.items():
    if learner.predict is not None:
      assert learner.budgets == {}, name  # the preset's steps, and no readout
      continue
    assert set(learner.budgets) == from_scratch, name
    for budget in learner.budgets.values():
      assert set(budget) == {"steps", "readout_steps"}
      assert all(isinstance(v, int) and v > 0 for v in budget.values())


def test_the_budget_table_is_the_learners_own():
  assert benchmark.LEARNER_BUDGETS == {
      preset: {name: learner.budgets[preset] for name, learner in learners.LEARNERS.items()
               if preset in learner.budgets}
      for preset in ("cpu", "paper", "smoke")}
  for preset, table in benchmark.LEARNER_BUDGETS.items():
    for name, budget in table.items():
      config = benchmark.get_config(f"learner={name},preset={preset}")
      assert (config.train.steps, config.readout.steps) == (budget["steps"],
                                                            budget["readout_steps"])


def test_a_dataset_without_a_smoke_grid_is_an_error(monkeypatch):
  assert benchmark.get_config("dataset=mpi3d,preset=smoke").data.grid == (2, 2, 2, 2, 2, 7, 2)
  monkeypatch.delitem(benchmark.SMOKE_GRIDS, "mpi3d")
  with pytest.raises(ValueError, match="the smoke preset has no reduced grid for dataset "
                                       "'mpi3d'; SMOKE_GRIDS has one for dsprites, shapes3d"):
    benchmark.get_config("dataset=mpi3d,preset=smoke")
  assert benchmark.get_config("dataset=mpi3d,preset=cpu").data.grid == ()  # the full grid
  with pytest.raises(ValueError, match="unknown dataset 'dsprite'; choose one of"):
    benchmark.get_config("dataset=dsprite,preset=smoke")
