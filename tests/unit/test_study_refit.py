"""A study's refit keeps time within the budget only when it would train on rows the trials did not."""

from __future__ import annotations

import pytest

from workers.study_refit import applies, reserve


def _spec(**changes):
    return {"refit": True, "validation": {"method": "holdout", "fraction": 0.2},
            "budget": {"time_budget_seconds": 100}, **changes}


def test_refit_applies_to_holdout_studies_only():
    assert applies(_spec())
    assert not applies(_spec(refit=False))
    assert not applies(_spec(validation={"method": "kfold", "folds": 5}))
    assert not applies(_spec(validation={"method": "holdout", "validation_dataset": "datasets/ds-1"}))


def test_reserve_scales_a_typical_trial_to_every_row_within_a_quarter_of_the_budget():
    assert reserve(_spec(), [2.0, 4.0, 100.0]) == pytest.approx(4.0 / 0.8 + 1.0)  # the median, on 1/0.8 the rows
    assert reserve(_spec(), []) == pytest.approx(0.05 * 100 / 0.8 + 1.0)  # before any trial ended
    assert reserve(_spec(), [90.0]) == 25.0
    assert reserve(_spec(validation={"method": "kfold"}), [4.0]) == 0.0
    assert reserve(_spec(budget={"time_budget_seconds": 0}), [4.0]) == 0.0
