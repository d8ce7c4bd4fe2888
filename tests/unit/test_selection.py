"""core.selection on profiles alone: size and budget exclusions, ranking order, adapted search spaces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from microlearn_grpc.core.profile import profile_table
from microlearn_grpc.core.selection import estimate_fit_seconds, select_models


def _profile(rows: int, features: int = 10, classes: int = 2) -> dict:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=200) for i in range(features)})
    frame["y"] = rng.integers(0, classes, 200)
    profile = profile_table(pa.Table.from_pandas(frame))
    profile["row_count"] = rows  # pretend the table is this large: selection reads the profile only
    return profile


def test_large_tables_exclude_slow_estimators_with_reason():
    selection = select_models(_profile(2_000_000), "y", max_candidates=50)
    excluded = dict(selection.excluded)
    assert "too slow for 2,000,000 rows" in excluded["svc"]
    assert "too slow" in excluded["knn_classifier"]
    assert "svc" not in [c.estimator.name for c in selection.candidates]
    assert [w.code for w in selection.warnings if w.code == "LARGE_DATASET"]
    assert selection.validation == {"method": "holdout", "fraction": 0.2}


def test_short_budget_excludes_what_cannot_fit_in_it():
    profile = _profile(300_000, features=40)
    selection = select_models(profile, "y", time_budget_seconds=10, max_candidates=50)
    names = [c.estimator.name for c in selection.candidates]
    assert "lightgbm_classifier" in names
    slow = dict(selection.excluded)
    assert "too slow for a 10 s budget" in slow["lightning_mlp_classifier"]
    for candidate in selection.candidates:
        assert candidate.estimated_fit_seconds <= 5


def test_small_tables_lift_simple_models():
    small = [c.estimator.name for c in select_models(_profile(300), "y", max_candidates=4).candidates]
    assert "logistic_regression" in small
    assert small[0] == "lightgbm_classifier"


def test_estimate_grows_with_data_and_cost():
    assert estimate_fit_seconds(1.0, 100_000, 50) == pytest.approx(0.3 + 1.5, rel=0.01)
    assert estimate_fit_seconds(2.0, 100_000, 50) > estimate_fit_seconds(1.0, 100_000, 50)


def test_multiclass_and_forced_regression():
    profile = _profile(5_000, classes=5)
    assert select_models(profile, "y").task == "multiclass"
    forced = select_models(profile, "y", task="regression")
    assert forced.task == "regression" and forced.metric == "rmse"
    assert all("regression" in c.estimator.tasks for c in forced.candidates)


def test_mid_size_tables_search_a_neural_network_and_keep_a_linear_model():
    # From 5,000 rows the MLP earns a slot (it beat every boosted model on the bench's 30-40k-row tables),
    # and a linear model keeps the last slot when boosting and bagging would take them all.
    mid = select_models(_profile(30_000, features=20), "y", time_budget_seconds=30)
    names = [c.estimator.name for c in mid.candidates]
    assert names[0] == "lightgbm_classifier" and len(names) == 5
    assert "lightning_mlp_classifier" in names
    assert [n for n in names if n in ("logistic_regression", "ridge_classifier", "sgd_classifier")], names
    linear = next(c for c in select_models(_profile(30_000, features=20), "y").candidates
                  if c.estimator.family == "linear")
    assert linear.rank <= 5 and linear.reason
    # Below 5,000 rows the MLP gets no lift; a linear model is there on its own merit.
    small = select_models(_profile(1_500), "y", max_candidates=5)
    assert "lightning_mlp_classifier" not in [c.estimator.name for c in small.candidates]


def test_the_linear_slot_never_overrides_an_explicit_list_or_a_tiny_one():
    chosen = select_models(_profile(30_000), "y", include=("lightgbm_classifier", "xgboost_classifier",
                                                          "random_forest_classifier"), max_candidates=3)
    assert {c.estimator.name for c in chosen.candidates} == {"lightgbm_classifier", "xgboost_classifier",
                                                             "random_forest_classifier"}
    two = select_models(_profile(30_000), "y", max_candidates=2)
    assert all(c.estimator.family != "linear" for c in two.candidates)
    excluded = dict(select_models(_profile(30_000), "y").excluded)
    assert all(c.estimator.name not in excluded for c in select_models(_profile(30_000), "y").candidates)
