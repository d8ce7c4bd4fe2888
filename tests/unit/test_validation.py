"""Row splits: sizes, stratification and its fallback, groups kept together, time order, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn_grpc.core.validation import Strategy, split

HOLDOUT = Strategy("holdout")
KFOLD = Strategy("kfold", folds=5)


def assert_partition(pairs, n_rows: int, *, kfold: bool) -> None:
    """Train and validation are disjoint, sorted and inside the table; k-fold validates every row once."""
    for train, val in pairs:
        assert train.dtype == val.dtype == np.int64
        assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
        assert not np.intersect1d(train, val).size
        assert len(val) >= 2 and np.all((0 <= val) & (val < n_rows))
        assert len(train) + len(val) == n_rows
    if kfold:
        assert np.array_equal(np.sort(np.concatenate([val for _, val in pairs])), np.arange(n_rows))


def shares(labels: np.ndarray) -> dict:
    values, counts = np.unique(labels, return_counts=True)
    return dict(zip(values.tolist(), (counts / counts.sum()).tolist()))


# -- the strategy --------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy, field", [
    (Strategy("holdout", fraction=0.0), r"spec\.validation\.holdout\.fraction"),
    (Strategy("holdout", fraction=0.51), r"spec\.validation\.holdout\.fraction"),
    (Strategy("holdout", fraction=float("nan")), r"spec\.validation\.holdout\.fraction"),
    (Strategy("kfold", folds=1), r"spec\.validation\.k_fold\.folds"),
    (Strategy("kfold", folds=21), r"spec\.validation\.k_fold\.folds"),
    (Strategy("kfold", folds=2.5), r"spec\.validation\.k_fold\.folds"),
    (Strategy("bootstrap"), "unknown method 'bootstrap'"),
    (Strategy(group_column="customer", time_column="day"), "group_column or time_column, not both"),
])
def test_check_refuses_bad_strategies_naming_the_field(strategy, field):
    with pytest.raises(ValueError, match=field):
        strategy.check()
    with pytest.raises(ValueError, match=field):
        split(100, strategy, task="regression")


def test_check_accepts_the_limits_and_ignores_the_other_method_fields():
    for strategy in [Strategy(fraction=0.5), Strategy(fraction=0.01), Strategy("kfold", folds=2),
                     Strategy("kfold", folds=20), Strategy("kfold", fraction=3.0), Strategy(folds=0)]:
        assert strategy.check() is strategy


# -- random splits -------------------------------------------------------------------------------


def test_regression_holdout_sizes_and_determinism():
    pairs, notes = split(101, HOLDOUT, task="regression", seed=7)
    assert notes == [] and len(pairs) == 1
    assert_partition(pairs, 101, kfold=False)
    assert len(pairs[0][1]) == 21  # ceil(0.2 * 101), as scikit-learn rounds
    again, _ = split(101, HOLDOUT, task="regression", seed=7)
    other, _ = split(101, HOLDOUT, task="regression", seed=8)
    assert np.array_equal(pairs[0][1], again[0][1]) and not np.array_equal(pairs[0][1], other[0][1])


def test_kfold_rotates_every_row_through_validation_once():
    pairs, notes = split(53, KFOLD, task="clustering", seed=1)
    assert notes == [] and len(pairs) == 5
    assert_partition(pairs, 53, kfold=True)
    assert sorted(len(val) for _, val in pairs) == [10, 10, 11, 11, 11]


def test_large_seeds_are_accepted():
    pairs, _ = split(20, HOLDOUT, task="regression", seed=2**40 + 3)
    assert len(pairs[0][1]) == 4


def test_classification_holdout_is_stratified():
    y = np.array(["a"] * 80 + ["b"] * 15 + ["c"] * 5)
    pairs, notes = split(100, HOLDOUT, task="multiclass", y=y, seed=3)
    assert notes == []
    assert_partition(pairs, 100, kfold=False)
    assert shares(y[pairs[0][1]]) == pytest.approx({"a": 0.8, "b": 0.15, "c": 0.05})


def test_classification_kfold_is_stratified():
    y = np.array([0] * 60 + [1] * 40)
    pairs, notes = split(100, KFOLD, task="binary", y=y, seed=3)
    assert notes == []
    assert_partition(pairs, 100, kfold=True)
    assert all(np.bincount(y[val]).tolist() == [12, 8] for _, val in pairs)


def test_stratify_is_ignored_for_regression_with_a_warning():
    pairs, notes = split(50, Strategy(stratify=True), task="regression", seed=0)
    assert len(pairs) == 1 and notes == ["spec.validation.stratify applies to classification only; ignored for a "
                                         "regression task"]


def test_holdout_falls_back_to_unstratified_when_a_class_has_one_row_and_keeps_it_for_training():
    y = np.array(["a"] * 30 + ["b"] * 19 + ["rare"])
    for seed in range(20):
        pairs, notes = split(50, HOLDOUT, task="multiclass", y=y, seed=seed)
        assert_partition(pairs, 50, kfold=False)
        assert 49 in pairs[0][0]  # the only 'rare' row is trained on
        assert set(y[pairs[0][0]]) == {"a", "b", "rare"}
    assert notes == ["the holdout is not stratified (fewer than 2 rows in class 'rare'); every class keeps a row in "
                     "the training set"]


def test_unstratified_classification_holdout_keeps_every_class_in_training():
    y = np.repeat(np.arange(10), 2)  # 10 classes of 2 rows; 4 validation rows cannot hold all 10
    pairs, notes = split(20, Strategy(stratify=False), task="multiclass", y=y, seed=5)
    assert notes == []
    assert set(y[pairs[0][0]]) == set(range(10))
    _, notes = split(20, Strategy(), task="multiclass", y=y, seed=5)
    assert notes == ["the holdout is not stratified (10 classes, 4 validation rows); every class keeps a row in the "
                     "training set"]


def test_kfold_falls_back_to_unstratified_and_says_which_classes_training_lacks():
    y = np.array([0] * 20 + [1] * 2)
    pairs, notes = split(22, KFOLD, task="binary", y=y, seed=0)
    assert_partition(pairs, 22, kfold=True)
    assert notes[0] == "the folds are not stratified (fewer than 5 rows in class 1)"
    assert len(notes) == 1 or notes[1].startswith("class 1 is missing from the training rows of")


def test_too_many_classes_for_training_rows_is_warned():
    y = np.arange(8)  # every row its own class: some are validation rows only
    pairs, notes = split(8, Strategy(fraction=0.25), task="multiclass", y=y, seed=0)
    assert len(pairs[0][1]) == 2
    assert notes[-1].startswith("classes ") and "are missing from the training rows" in notes[-1]


def test_missing_labels_are_a_class_of_their_own():
    y = np.array(["a", None] * 20, dtype=object)
    pairs, notes = split(40, HOLDOUT, task="binary", y=y, seed=0)
    assert notes == [] and list(y[pairs[0][1]]).count(None) == 4


@pytest.mark.parametrize("n_rows, strategy, message", [
    (5, HOLDOUT, r"spec\.validation\.holdout\.fraction: holding out 0\.2 of 5 rows leaves 1 validation and 4 "
                 r"training rows, fewer than 2; use more rows or a larger fraction"),
    (3, Strategy(fraction=0.5), "leaves 2 validation and 1 training rows, fewer than 2; use more rows$"),
    (9, KFOLD, r"spec\.validation\.k_fold\.folds: 5 folds of 9 rows .* use at most 4 folds or a holdout"),
    (1, Strategy("kfold", folds=2), "use at most 1 folds"),
])
def test_too_few_rows_are_refused(n_rows, strategy, message):
    with pytest.raises(ValueError, match=message):
        split(n_rows, strategy, task="regression")


def test_the_smallest_tables_that_split():
    pairs, _ = split(10, HOLDOUT, task="regression")
    assert [len(p) for p in pairs[0]] == [8, 2]
    pairs, _ = split(4, Strategy("kfold", folds=2), task="binary", y=[0, 1, 0, 1])
    assert_partition(pairs, 4, kfold=True)


def test_missing_inputs_are_caller_errors():
    with pytest.raises(TypeError, match="y is required"):
        split(10, HOLDOUT, task="binary")
    with pytest.raises(TypeError, match="no groups"):
        split(10, Strategy(group_column="g"), task="regression")
    with pytest.raises(TypeError, match="no order"):
        split(10, Strategy(time_column="t"), task="regression")
    with pytest.raises(ValueError, match=r"y has shape \(3,\), expected \(10,\)"):
        split(10, HOLDOUT, task="binary", y=[0, 1, 0])
    with pytest.raises(ValueError, match="unknown task"):
        split(10, HOLDOUT, task="ranking")


# -- groups --------------------------------------------------------------------------------------


def groups_of(n_groups: int, size: int) -> np.ndarray:
    return np.repeat([f"customer-{i}" for i in range(n_groups)], size)


def assert_groups_apart(pairs, groups) -> None:
    for train, val in pairs:
        assert not set(groups[train]) & set(groups[val])


def test_grouped_holdout_keeps_groups_on_one_side():
    groups = groups_of(20, 4)
    pairs, notes = split(80, Strategy(group_column="customer"), task="regression", groups=groups, seed=1)
    assert notes == []
    assert_partition(pairs, 80, kfold=False)
    assert_groups_apart(pairs, groups)
    assert len(pairs[0][1]) == 16


def test_grouped_holdout_prefers_draws_with_every_class_in_training_and_even_shares():
    groups = groups_of(30, 3)
    y = np.array([0] * 81 + [1] * 9)  # the positive class lives in 3 groups only
    pairs, notes = split(90, Strategy(group_column="g"), task="binary", y=y, groups=groups, seed=2)
    assert notes == []
    assert_groups_apart(pairs, groups)
    train, val = pairs[0]
    assert set(y[train]) == {0, 1}
    assert 0 < y[val].mean() < 0.25


def test_grouped_kfold_stratified_and_plain():
    groups = groups_of(25, 4)
    y = np.tile([0, 0, 1, 1], 25)
    for strategy in [Strategy("kfold", folds=5, group_column="g"), Strategy("kfold", stratify=False)]:
        pairs, notes = split(100, strategy, task="binary", y=y, groups=groups, seed=3)
        assert notes == []
        assert_partition(pairs, 100, kfold=True)
        assert_groups_apart(pairs, groups)
    again, _ = split(100, Strategy("kfold", stratify=False), task="binary", y=y, groups=groups, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(pairs, again))


def test_grouped_kfold_falls_back_to_unstratified_for_a_small_class():
    groups = groups_of(25, 4)
    y = np.zeros(100, dtype=int)
    y[:3] = 1
    pairs, notes = split(100, KFOLD, task="binary", y=y, groups=groups, seed=0)
    assert_groups_apart(pairs, groups)
    assert notes[0] == "the folds are not stratified (a class has fewer than 5 rows)"


def test_rows_without_a_group_are_groups_of_one():
    groups = np.array(["a", "a", "b", "b", None, None, None, None, "c", "c"], dtype=object)
    pairs, notes = split(10, Strategy("kfold", folds=2, group_column="g"), task="regression", groups=groups)
    assert notes == ["4 rows have no column 'g' value; each is a group of its own"]
    assert_partition(pairs, 10, kfold=True)
    assert_groups_apart(pairs, np.where(groups == None, np.arange(10).astype(str), groups))  # noqa: E711


@pytest.mark.parametrize("strategy, message", [
    (Strategy(group_column="g"), r"spec\.validation\.group_column: column 'g' has 1 distinct value; a holdout needs "
                                 "at least 2 groups"),
    (Strategy("kfold", folds=3, group_column="g"), r"has 1 distinct value; 3 folds need at least 3 groups"),
])
def test_too_few_groups_are_refused(strategy, message):
    with pytest.raises(ValueError, match=message):
        split(40, strategy, task="regression", groups=np.zeros(40))


def test_groups_too_uneven_for_the_folds_are_refused():
    groups = np.array([0] * 30 + [1, 2, 3])
    with pytest.raises(ValueError, match=r"k_fold\.folds: the 4 groups of column 'g' cannot fill 3 folds"):
        split(33, Strategy("kfold", folds=3, group_column="g"), task="regression", groups=groups)


def test_a_grouped_holdout_with_one_row_per_group_side_is_refused():
    groups = np.array([0] * 19 + [1])
    with pytest.raises(ValueError, match="2 groups of column 'g' leaves fewer than 2 validation or training rows"):
        split(20, Strategy(fraction=0.5, group_column="g"), task="regression", groups=groups)


# -- time order ----------------------------------------------------------------------------------


def test_time_holdout_validates_on_the_latest_rows():
    order = np.random.default_rng(0).permutation(50).astype(float)  # rows are not stored in time order
    pairs, notes = split(50, Strategy(time_column="day"), task="regression", order=order)
    assert notes == []
    train, val = pairs[0]
    assert len(val) == 10 and order[train].max() < order[val].min()
    assert sorted(order[val]) == list(range(40, 50))


def test_time_holdout_keeps_rows_of_one_time_together():
    order = np.repeat(np.arange(10), 7)  # 70 rows, 7 per day: 14 validation rows = exactly 2 days
    pairs, _ = split(70, Strategy(time_column="day"), task="regression", order=order)
    assert sorted(set(order[pairs[0][1]])) == [8, 9]
    order = np.repeat(np.arange(8), 5)  # 40 rows, 8 validation rows: 1.6 days rounds to 2 days
    train, val = split(40, Strategy(time_column="day"), task="regression", order=order)[0][0]
    assert set(order[val]) == {6, 7} and order[train].max() < 6


def test_time_kfold_is_an_expanding_window():
    order = np.arange(60)[::-1]
    pairs, notes = split(60, Strategy("kfold", folds=5, time_column="t"), task="regression", order=order)
    assert notes == [] and len(pairs) == 5
    for i, (train, val) in enumerate(pairs):
        assert order[train].max() < order[val].min()
        assert len(val) == 10 and len(train) == 10 * (i + 1)
    validated = np.concatenate([val for _, val in pairs])
    assert len(set(validated.tolist())) == 50  # the earliest block never validates


def test_time_order_accepts_datetimes_and_trains_on_rows_without_a_time():
    days = np.arange("2024-01-01", "2024-01-21", dtype="datetime64[D]").astype("datetime64[ns]")
    days[[3, 17]] = np.datetime64("NaT")
    pairs, notes = split(20, Strategy(time_column="day"), task="regression", order=days)
    assert notes == ["2 rows have no column 'day' value; they are used for training only"]
    train, val = pairs[0]
    assert 3 in train and 17 in train and len(val) == 4
    assert days[val].min() > max(d for d in days[train] if not np.isnat(d))


def test_time_split_ignores_stratify_with_a_warning_and_reports_lacking_classes():
    y = np.array([0] * 45 + [1] * 5)  # the positive class only occurs at the end
    pairs, notes = split(50, Strategy(time_column="t", stratify=True), task="binary", y=y, order=np.arange(50))
    assert notes == ["spec.validation.stratify is ignored with a time column: validation rows are the latest",
                     "class 1 is missing from the training rows; a model cannot learn to predict it there"]
    assert np.array_equal(pairs[0][1], np.arange(40, 50))


@pytest.mark.parametrize("order, strategy, message", [
    (np.zeros(30), Strategy(time_column="t"), "30 rows with a column 't' value, 1 distinct, cannot give"),
    (np.arange(11), Strategy("kfold", folds=5, time_column="t"), "5 time-ordered folds need 6 blocks of at least 2"),
    (np.repeat([0, 1], 15), Strategy("kfold", folds=3, time_column="t"), "30 rows with 2 distinct values are too few"),
    (np.r_[np.arange(5), np.full(5, np.nan)], Strategy(time_column="t"), "holding out 0.2 of 5 rows"),
])
def test_time_splits_that_cannot_be_made_are_refused(order, strategy, message):
    with pytest.raises(ValueError, match=message):
        split(len(order), strategy, task="regression", order=order)
