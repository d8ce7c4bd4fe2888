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
