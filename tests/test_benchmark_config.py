"""The benchmark config's tables: the learners' budgets come from the learners."""

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
