"""The streaming profiler: statistics checked against numpy, type inference, target suggestions."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from microlearn_grpc.core import profile as profile_module
from microlearn_grpc.core.profile import StreamingProfiler, profile_table

COLUMN_KEYS = {"name", "type", "physical_type", "missing_count", "distinct_count", "distinct_count_exact", "numeric",
               "top_values", "min_datetime", "max_datetime", "hinted"}
NUMERIC_KEYS = {"min", "max", "mean", "std", "p25", "p50", "p75", "zero_count"}


def iris_like(seed: int = 0) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """150 rows shaped like sklearn's iris: 4 measurements per flower, 3 species of 50, a few holes,
    and the last two rows repeating earlier rows exactly."""
    rng = np.random.default_rng(seed)
    means = {"setosa": (5.0, 3.4, 1.5, 0.2), "versicolor": (5.9, 2.8, 4.3, 1.3), "virginica": (6.6, 3.0, 5.6, 2.0)}
    species = np.repeat(list(means), 50)
    data = {name: np.round(np.array([rng.normal(means[s][i], 0.3) for s in species]), 1)
            for i, name in enumerate(["sepal_length", "sepal_width", "petal_length", "petal_width"])}
    data["sepal_width"][[3, 70, 140]] = np.nan  # missing measurements
    for name in data:
        data[name][148] = data[name][0]
        data[name][149] = data[name][1]
    species[148], species[149] = species[0], species[1]
    columns = {name: pa.array(values, from_pandas=True) for name, values in data.items()}
    columns["species"] = pa.array(species)
    return pa.table(columns), {**data, "species": species}


def test_iris_like_profile():
    table, raw = iris_like()
    profile = profile_table(table)
    json.dumps(profile, allow_nan=False)
    assert set(profile) == {"row_count", "column_count", "duplicate_row_count", "columns", "target_suggestions"}
    assert (profile["row_count"], profile["column_count"]) == (150, 5)
    assert profile["duplicate_row_count"] == 2
    columns = {c["name"]: c for c in profile["columns"]}
    assert all(set(c) == COLUMN_KEYS for c in profile["columns"])
    for name in ["sepal_length", "sepal_width", "petal_length", "petal_width"]:
        column, values = columns[name], raw[name]
        present = values[~np.isnan(values)]
        assert column["type"] == "numeric" and column["physical_type"] == "double" and not column["hinted"]
        assert column["missing_count"] == int(np.isnan(values).sum())
        assert column["distinct_count"] == len(np.unique(present)) and column["distinct_count_exact"]
        stats = column["numeric"]
        assert set(stats) == NUMERIC_KEYS
        assert stats["min"] == present.min() and stats["max"] == present.max()
        assert stats["mean"] == pytest.approx(present.mean(), rel=1e-12)
        assert stats["std"] == pytest.approx(present.std(), rel=1e-9)  # population std, like the proto says
        for key, q in [("p25", 0.25), ("p50", 0.5), ("p75", 0.75)]:
            assert stats[key] == pytest.approx(np.quantile(present, q))  # exact: the sample holds every value
        assert stats["zero_count"] == int((present == 0).sum())
        top = column["top_values"]
        values_counted, counts = np.unique(present, return_counts=True)
        assert len(top) == min(10, len(values_counted))
        assert [t["count"] for t in top] == sorted(counts, reverse=True)[: len(top)]
    assert columns["sepal_width"]["missing_count"] == 3
    species = columns["species"]
    assert (species["type"], species["physical_type"], species["distinct_count"]) == ("categorical", "string", 3)
    assert species["numeric"] is None
    assert species["top_values"] == [{"value": "setosa", "count": 52}, {"value": "versicolor", "count": 50},
                                     {"value": "virginica", "count": 48}]
    best = profile["target_suggestions"][0]
    assert (best["column"], best["task"]) == ("species", "multiclass")
    assert 0 <= best["score"] <= 1 and best["reason"]
    assert all(s["task"] == "regression" for s in profile["target_suggestions"][1:])


def _approx(value):
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9, abs=1e-12)
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_approx(v) for v in value]
    return value


def test_streaming_in_any_batch_size_matches_one_pass(monkeypatch):
    table, _ = iris_like(seed=3)
    whole = profile_table(table)
    monkeypatch.setattr(profile_module, "_CHUNK_ROWS", 5)  # really work batch by batch
    for size in (1, 7, 64):
        profiler = StreamingProfiler(table.schema)
        for batch in table.to_batches(max_chunksize=size):
            profiler.update(batch)
        assert profiler.finish() == _approx(whole)


def test_nan_and_infinity():
    values = [1.0, float("nan"), None, float("inf"), -float("inf"), 0.0, 3.0]
    profile = profile_table(pa.table({"x": pa.array(values, type=pa.float64(), from_pandas=False)}))
    column = profile["columns"][0]
    assert column["missing_count"] == 2  # null and NaN
    assert column["numeric"]["min"] == 0.0 and column["numeric"]["max"] == 3.0  # over finite values
    assert column["numeric"]["mean"] == pytest.approx(4 / 3) and column["numeric"]["zero_count"] == 1
    assert column["distinct_count"] == 5
    assert {"inf", "-inf"} <= {t["value"] for t in column["top_values"]}
    json.dumps(profile, allow_nan=False)


def test_all_missing_and_all_infinite_columns():
    table = pa.table({"empty": pa.nulls(5), "inf": pa.array([math.inf] * 5), "nan": pa.array([math.nan] * 5)})
    columns = {c["name"]: c for c in profile_table(table)["columns"]}
    assert columns["empty"]["missing_count"] == 5 and columns["empty"]["type"] == "categorical"
    assert columns["inf"]["numeric"] is None and columns["inf"]["missing_count"] == 0
    assert columns["nan"]["missing_count"] == 5 and columns["nan"]["numeric"] is None
    json.dumps(profile_table(table), allow_nan=False)


def test_type_inference_rules():
    n = 200
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    table = pa.table({
        "row_id": pa.array(np.arange(n)),
        "flag": pa.array(rng.random(n) < 0.5),
        "answer": pa.array(rng.choice(["Yes", "No"], n)),
        "day": pa.array([f"2024-01-{1 + i % 28:02d}" for i in range(n)]),
        "at": pa.array(np.datetime64("2024-01-01T00:00:00") + np.arange(n).astype("timedelta64[h]")),
        "uuid": pa.array([f"u-{i:08x}-{rng.integers(1 << 30):x}" for i in range(n)]),
        "review": pa.array([" ".join(rng.choice(words, 8)) + f" number {i}" for i in range(n)]),
        "color": pa.array(rng.choice(["red", "green", "blue"], n)),
        "stars": pa.array(rng.integers(1, 6, n)),
        "amount": pa.array(rng.normal(100, 10, n)),
    })
    columns = {c["name"]: c for c in profile_table(table)["columns"]}
    assert {name: c["type"] for name, c in columns.items()} == {
        "row_id": "id", "flag": "boolean", "answer": "boolean", "day": "datetime", "at": "datetime", "uuid": "id",
        "review": "text", "color": "categorical", "stars": "numeric", "amount": "numeric"}
    assert (columns["day"]["min_datetime"], columns["day"]["max_datetime"]) == ("2024-01-01", "2024-01-28")
    assert columns["at"]["min_datetime"] == "2024-01-01T00:00:00"
    assert columns["at"]["max_datetime"] == "2024-01-09T07:00:00"
    assert columns["flag"]["top_values"][0]["value"] in ("true", "false")


def test_target_suggestions_rules():
    n = 300
    rng = np.random.default_rng(1)
    table = pa.table({
        "customer_id": pa.array(np.arange(n)),
        "signup": pa.array([f"2023-05-{1 + i % 28:02d}" for i in range(n)]),
        "age": pa.array(rng.integers(18, 90, n)),
        "income": pa.array(rng.normal(50_000, 5_000, n)),
        "plan": pa.array(rng.choice(["free", "pro", "team", "enterprise"], n)),
        "label": pa.array(rng.integers(0, 2, n)),
        "notes": pa.array([f"free text comment number {i} about the account" for i in range(n)]),
    })
    suggestions = profile_table(table)["target_suggestions"]
    assert suggestions[0]["column"] == "label" and suggestions[0]["task"] == "binary"
    assert len(suggestions) <= 5
    assert [s["score"] for s in suggestions] == sorted((s["score"] for s in suggestions), reverse=True)
    assert all(0 <= s["score"] <= 1 for s in suggestions)
    named = {s["column"]: s["task"] for s in suggestions}
    assert not {"customer_id", "signup", "notes"} & set(named)  # id, datetime, text are never targets
    assert named["income"] == "regression" and named["plan"] == "multiclass"


def test_hints_override_inference():
    table = pa.table({"code": pa.array(["a1", "b2", "a1"]), "n": pa.array([1, 2, 3])})
    columns = {c["name"]: c for c in profile_table(table, {"code": "id", "n": "categorical"})["columns"]}
    assert columns["code"]["type"] == "id" and columns["code"]["hinted"]
    assert columns["n"]["type"] == "categorical" and columns["n"]["hinted"]


def test_distinct_count_becomes_a_lower_bound_past_the_cap():
    n = 120_000
    table = pa.table({"key": pa.array([f"k{i}" for i in range(n)]), "group": pa.array(np.arange(n) % 4)})
    columns = {c["name"]: c for c in profile_table(table)["columns"]}
    key = columns["key"]
    assert not key["distinct_count_exact"] and 100_000 < key["distinct_count"] <= n
    assert key["type"] == "id"  # the sketch still sees a near-unique column
    assert len(key["top_values"]) == 10
    assert columns["group"]["distinct_count_exact"] and columns["group"]["distinct_count"] == 4


def test_quantiles_from_a_uniform_sample():
    rng = np.random.default_rng(5)
    values = rng.normal(10, 2, 400_000)
    profiler = StreamingProfiler(pa.schema([("x", pa.float64())]), sample_size=20_000, seed=1)
    for chunk in np.array_split(values, 40):
        profiler.update(pa.record_batch([pa.array(chunk)], names=["x"]))
    stats = profiler.finish()["columns"][0]["numeric"]
    for key, q in [("p25", 0.25), ("p50", 0.5), ("p75", 0.75)]:
        assert stats[key] == pytest.approx(np.quantile(values, q), abs=0.06)
    assert stats["mean"] == pytest.approx(values.mean()) and stats["std"] == pytest.approx(values.std())


def test_duplicates_scaled_past_the_exact_window(monkeypatch):
    monkeypatch.setattr(profile_module, "DUPLICATE_ROWS", 1000)
    table = pa.table({"a": pa.array(np.arange(4000) % 2000), "b": pa.array(["x"] * 4000)})
    profile = profile_table(table)
    assert profile["duplicate_row_count"] == 0  # the first 1000 rows are distinct: scaled, still 0
    table = pa.table({"a": pa.array(np.arange(4000) % 500)})
    assert profile_table(table)["duplicate_row_count"] == 2000  # 500 of 1000 repeat -> half of 4000


def test_duplicates_across_batches_with_nulls():
    table = pa.table({"a": pa.array([1, None, 1, None]), "b": pa.array(["x", "y", "x", "y"]),
                      "t": pa.array([None] * 4, type=pa.timestamp("s"))})
    profiler = StreamingProfiler(table.schema)
    for batch in table.to_batches(max_chunksize=1):
        profiler.update(batch)
    assert profiler.finish()["duplicate_row_count"] == 2


def test_batch_with_other_schema_is_refused():
    profiler = StreamingProfiler(pa.schema([("a", pa.int64())]))
    with pytest.raises(ValueError):
        profiler.update(pa.record_batch([pa.array(["x"])], names=["a"]))
