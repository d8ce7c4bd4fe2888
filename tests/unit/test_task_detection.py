"""Task detection from real profiles of small generated tables: each rule, the refusals, explicit tasks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from microlearn_grpc.core.profile import profile_table
from microlearn_grpc.core.task_detection import TaskDetection, check_task, detect_task

N = 200


@pytest.fixture(scope="module")
def profile() -> dict:
    rng = np.random.default_rng(0)
    rare = np.array(["ok"] * 196 + ["fraud"] * 4)
    table = pa.table({
        "churn": pa.array(rng.choice(["yes", "no"], N, p=[0.7, 0.3])),
        "paid": pa.array(rng.random(N) < 0.5),
        "spam": pa.array(rng.choice([0, 1], N)),
        "fraud": pa.array(rng.permutation(rare)),
        "species": pa.array(rng.choice(["setosa", "versicolor", "virginica"], N)),
        "price": pa.array(rng.normal(100, 20, N).round(2)),
        "rating": pa.array(rng.integers(1, 6, N)),
        "stars": pa.array(np.where(rng.random(N) < 0.1, np.nan, rng.integers(1, 4, N).astype(float))),
        "age": pa.array(rng.integers(18, 90, N)),
        "half": pa.array(rng.choice([0.5, 1.0, 1.5], N)),
        "code": pa.array(rng.integers(0, 40, N).astype(str)),
        "row": pa.array(np.arange(N)),
        "email": pa.array([f"user{i}@example.com" for i in range(N)]),
        "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 30, N)]),
        "constant": pa.array(["x"] * N),
        "empty": pa.array([None] * N, type=pa.string()),
        "mostly_missing": pa.array(["a", "b", "c"] + [None] * (N - 3)),
    })
    return profile_table(table)


def test_no_target_is_clustering(profile):
    for target in (None, ""):
        got = detect_task(profile, target)
        assert got == TaskDetection("clustering", got.reason, None, {}, None)
        assert "no target" in got.reason


def test_two_strings_are_binary_with_counts_and_imbalance(profile):
    got = detect_task(profile, "churn")
    assert got.task == "binary" and got.n_classes == 2
    assert got.reason == f"target 'churn' has 2 distinct values ({', '.join(got.class_counts)})"
    assert set(got.class_counts) == {"yes", "no"} and sum(got.class_counts.values()) == N
    assert list(got.class_counts.values()) == sorted(got.class_counts.values(), reverse=True)
    assert got.imbalance_ratio == pytest.approx(max(got.class_counts.values()) / min(got.class_counts.values()))
    assert got.warnings == ()


@pytest.mark.parametrize("target", ["paid", "spam"])
def test_booleans_and_two_numbers_are_binary(target, profile):
    got = detect_task(profile, target)
    assert got.task == "binary" and got.n_classes == 2 and "has 2 distinct values" in got.reason


def test_a_rare_class_is_warned_about(profile):
    got = detect_task(profile, "fraud")
    assert got.task == "binary" and got.class_counts == {"ok": 196, "fraud": 4}
    assert got.imbalance_ratio == 49.0
    assert got.warnings == (
        "classes are imbalanced: 'fraud' is 2.0% of the rows (imbalance ratio 49); consider balance_classes and a "
        "metric such as roc_auc or f1_macro",
        "class 'fraud' has fewer than 5 rows; a model can hardly learn them and validation may not see them")


def test_categories_are_multiclass(profile):
    got = detect_task(profile, "species")
    assert got.task == "multiclass" and got.n_classes == 3
    assert got.reason.startswith("target 'species' is categorical with 3 distinct values (")
    assert set(got.class_counts) == {"setosa", "versicolor", "virginica"}
    assert got.imbalance_ratio is not None and got.imbalance_ratio < 2


def test_many_classes_are_counted_partly(profile):
    got = detect_task(profile, "code")  # digits stored as strings: categories, not numbers
    assert got.task == "multiclass" and got.n_classes == 40
    assert len(got.class_counts) == 10 and got.imbalance_ratio is None  # only the top 10 values are known
    assert got.reason.endswith(", ...)")


def test_fractional_numbers_are_regression(profile):
    got = detect_task(profile, "price")
    assert got.task == "regression" and got.n_classes is None and got.class_counts == {}
    assert got.reason.startswith("target 'price' is numeric with fractional values (for example ")
    assert got.confidence > 0.9


def test_few_fractional_values_are_still_regression(profile):
    assert detect_task(profile, "half").task == "regression"


def test_few_whole_numbers_are_multiclass_with_regression_as_alternative(profile):
    got = detect_task(profile, "rating")
    assert got.task == "multiclass" and got.n_classes == 5 and got.alternatives == ("regression",)
    assert got.reason == ("target 'rating' holds whole numbers with 5 distinct values "
                          f"({', '.join(got.class_counts)}), at most 20, so each value is a class")
    assert any("set the task to regression" in w for w in got.warnings)


def test_whole_floats_with_missing_values_are_multiclass_and_missing_rows_are_warned(profile):
    got = detect_task(profile, "stars")  # integers that became floats because of missing values
    column = next(c for c in profile["columns"] if c["name"] == "stars")
    assert got.task == "multiclass" and got.n_classes == 3
    assert (f"target 'stars' is missing in {column['missing_count']} of 200 rows "
            f"({column['missing_count'] / 200:.1%}); those rows are left out of training") in got.warnings


def test_many_whole_numbers_are_regression(profile):
    got = detect_task(profile, "age")
    assert got.task == "regression" and got.alternatives == ("multiclass",)
    assert got.reason.startswith("target 'age' holds whole numbers with ")
    assert got.reason.endswith("distinct values, more than 20, so it is treated as a quantity")


def test_a_row_number_is_regression_with_a_warning(profile):
    got = detect_task(profile, "row")
    assert got.task == "regression" and "like a row number" in got.warnings[0]


@pytest.mark.parametrize("target, message", [
    ("nope", r"target 'nope' is not a column of the dataset; the columns are: churn, paid, spam, "),
    ("empty", r"target 'empty' has no values: it is missing in all 200 rows"),
    ("constant", r"target 'constant' has the same value \(x\) in every row"),
    ("day", r"target 'day' holds dates or times \(30 distinct values\)"),
])
def test_unusable_targets_are_refused(target, message, profile):
    with pytest.raises(ValueError, match=message):
        detect_task(profile, target)


def test_text_with_few_values_is_multiclass_with_a_warning(profile):
    got = detect_task(profile, "mostly_missing")
    assert got.task == "multiclass" and got.n_classes == 3
    assert got.warnings == ("target 'mostly_missing' is missing in 197 of 200 rows (98.5%); those rows are left out "
                            "of training", "classes 'a', 'b', 'c' have fewer than 5 rows; a model can hardly learn "
                            "them and validation may not see them")


def test_a_hint_wins_over_numbers():
    profile = profile_table(pa.table({"zip": pa.array(np.arange(50) % 30 * 1000 + 10000)}), {"zip": "categorical"})
    got = detect_task(profile, "zip")
    assert got.task == "multiclass" and got.n_classes == 30


def test_more_than_1000_strings_are_refused():
    profile = profile_table(pa.table({"email": pa.array([f"user{i}@example.com" for i in range(1200)])}))
    with pytest.raises(ValueError, match=r"target 'email' is id \(string\) with 1200 distinct values: too many "
                                         r"classes to classify \(at most 1000\), and not numeric"):
        detect_task(profile, "email")


def test_identifiers_with_few_rows_are_multiclass_with_a_warning(profile):
    got = detect_task(profile, "email")
    first = ", ".join(repr(label) for label in list(got.class_counts)[:5])
    assert got.task == "multiclass" and got.confidence == 0.5 and got.warnings == (
        "target 'email' looks like an identifier; each of its 200 values is treated as a class",
        f"classes {first} have fewer than 5 rows; a model can hardly learn them and validation may not see them")


def test_a_fraction_beyond_the_top_values_is_seen_in_the_minimum():
    values = np.r_[np.repeat(np.arange(1.0, 11.0), 20), 0.25]  # the top 10 values are whole, the minimum is not
    got = detect_task(profile_table(pa.table({"y": values})), "y")
    assert got.task == "regression" and "for example 0.25" in got.reason


# -- explicit tasks ------------------------------------------------------------------------------


def test_check_task_accepts_a_possible_task_and_says_what_detection_thought(profile):
    got = check_task(profile, "rating", "regression")
    assert got.task == "regression" and got.confidence == 1.0
    assert got.reason == "task regression was set in the spec; target 'rating' has 5 distinct values"
    assert got.warnings[0].startswith("the task is set to regression, but detection would choose multiclass: ")
    agreed = check_task(profile, "species", "multiclass")
    assert agreed.class_counts == detect_task(profile, "species").class_counts and agreed.warnings == ()
    assert check_task(profile, "age", "multiclass").n_classes > 20
    assert check_task(profile, "spam", "regression").task == "regression"
    assert check_task(profile, None, "clustering").task == "clustering"


def test_check_task_on_an_undetectable_target_still_works():
    profile = profile_table(pa.table({"email": pa.array([f"u{i}@x.org" for i in range(30)])}))
    assert check_task(profile, "email", "multiclass").n_classes == 30


@pytest.mark.parametrize("target, task, message", [
    ("species", "regression", r"spec\.task: regression needs a numeric target, but target 'species' is categorical "
                              r"\(string\); choose multiclass"),
    ("paid", "regression", r"is boolean \(bool\); choose binary"),
    ("species", "binary", r"spec\.task: binary needs a target with exactly 2 distinct values, but target 'species' "
                          r"has 3; choose multiclass$"),
    ("rating", "binary", r"has 5; choose multiclass or regression"),
    ("churn", "multiclass", r"spec\.task: multiclass needs a target with 3 to 1000 distinct values, but target "
                            r"'churn' has 2; choose binary$"),
    ("price", "clustering", r"spec\.task: clustering takes no target, but spec\.target is 'price'"),
    (None, "binary", r"spec\.target: a binary task needs a target column"),
    ("price", "ranking", r"spec\.task: unknown task 'ranking'"),
    ("nope", "regression", r"target 'nope' is not a column"),
])
def test_check_task_refuses_impossible_tasks(target, task, message, profile):
    with pytest.raises(ValueError, match=message):
        check_task(profile, target, task)


def test_check_task_refuses_multiclass_beyond_1000_classes():
    profile = profile_table(pa.table({"amount": pa.array(np.arange(1500) * 1.5)}))
    with pytest.raises(ValueError, match=r"has 1500; choose regression$"):
        check_task(profile, "amount", "multiclass")
