"""The compiled (NumPy) preprocessor serving uses must produce exactly the matrix of the fitted
scikit-learn pipeline, for every kind of branch the platform builds, on training-like rows and on
rows with unseen categories and missing values where training had none."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from microlearn_grpc.core.fast_transform import compile_preprocessor, sample_values
from microlearn_grpc.core.preprocessing import PreprocessingNeeds, build_preprocessor, plan_features
from microlearn_grpc.core.profile import profile_table
from tests.unit.test_preprocessing import messy_frame, unseen_rows

NEEDS = [PreprocessingNeeds(handles_missing=m, needs_scaling=s, handles_categorical=c)
         for m, s, c in itertools.product((False, True), repeat=3)]
TARGETS = [("churn", "binary"), ("plan", "multiclass"), ("age", "regression"), (None, "clustering")]


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    return messy_frame()


@pytest.fixture(scope="module")
def profile(messy) -> dict:
    return profile_table(pa.Table.from_pandas(messy))


def decoded(preprocessor, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The arrays the serving decoder hands over: typed columns, datetimes as naive UTC."""
    plain = preprocessor.named_steps["frame"].transform(frame)
    out = {}
    for name in plain.columns:
        column = plain[name]
        out[name] = (column.dt.tz_convert(None).to_numpy() if isinstance(column.dtype, pd.DatetimeTZDtype)
                     else column.to_numpy())
    return out


def fitted(messy, profile, target, task, needs):
    plan = plan_features(profile, target, task=task)
    rows = messy if target is None else messy[messy[target].notna()]
    pre = build_preprocessor(plan, needs, seed=3)
    pre.fit(rows, None if target is None else rows[target])
    return pre


@pytest.mark.parametrize("needs", NEEDS, ids=lambda n: f"missing{int(n.handles_missing)}-scale{int(n.needs_scaling)}"
                                                         f"-cat{int(n.handles_categorical)}")
@pytest.mark.parametrize("target, task", TARGETS, ids=[t for _, t in TARGETS])
def test_compiled_matches_scikit_learn(messy, profile, target, task, needs):
    pre = fitted(messy, profile, target, task, needs)
    fast = compile_preprocessor(pre)
    assert fast is not None
    # Everything but the datetime branch (kept as scikit-learn's own transform) is compiled.
    assert fast.compiled_branches == sum(1 for name, t, cols in pre[-1].transformers_
                                         if t != "drop" and len(cols) and name != "datetime")
    for frame in (messy, unseen_rows(messy), messy.head(1)):
        frame = frame.copy()
        frame.loc[frame.index[:1], ["tenure", "plan", "city"]] = np.nan  # missing where training had none
        expected = pre.transform(frame)
        got = fast.transform(decoded(pre, frame), len(frame))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0, equal_nan=True)


def test_check_reports_agreement_and_disagreement(messy, profile):
    pre = fitted(messy, profile, "churn", "binary", PreprocessingNeeds(needs_scaling=True))
    fast = compile_preprocessor(pre)
    schema = [(name, kind) for name, kind in pre.named_steps["frame"].columns]
    values = sample_values(schema, {"city": ["city01", "city02"], "plan": ["basic", "pro"]})
    rows = len(next(iter(values.values())))
    assert fast.check(pre, values, rows) is None
    scaler = pre[-1].named_transformers_["numeric"].steps[-1][1]
    scaler.mean_ = scaler.mean_ + 1.0  # the pipeline changed after compiling: the check must notice
    assert "differs" in fast.check(pre, values, rows)


def test_not_a_platform_preprocessor_is_not_compiled():
    from sklearn.preprocessing import StandardScaler

    assert compile_preprocessor(StandardScaler().fit(np.ones((3, 2)))) is None


def test_one_row_is_much_faster_than_scikit_learn(messy, profile):
    """Not a benchmark (bench/serving_throughput.py is): a guard that the compiled path is the cheap one."""
    pre = fitted(messy, profile, "churn", "binary", PreprocessingNeeds(needs_scaling=True))
    row = messy.head(1).drop(columns=["signup", "last_seen"])
    fast = compile_preprocessor(pre)
    values = decoded(pre, messy.head(1))

    def timed(fn) -> float:
        fn()
        began = time.perf_counter()
        for _ in range(50):
            fn()
        return time.perf_counter() - began

    assert row is not None
    assert timed(lambda: fast.transform(values, 1)) < timed(lambda: pre.transform(messy.head(1)))
