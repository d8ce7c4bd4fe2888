"""Metrics per task checked against scikit-learn, undefined metrics left out, and JSON-ready plot data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as sk

from microlearn_grpc.core import metrics
from microlearn_grpc.core.metrics import DEFAULT_METRIC, METRICS, check_metric, diagnostics, direction, score


def probabilities(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from random class probabilities, so the probabilities are informative."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(k), size=n)
    y = np.array([rng.choice(k, p=row) for row in proba])
    return y, proba


def assert_json(value) -> None:
    json.dumps(value, allow_nan=False)


# -- names, defaults, directions -----------------------------------------------------------------


def test_every_task_has_its_metrics_and_a_default_among_them():
    assert set(METRICS) == {"binary", "multiclass", "regression", "clustering"}
    for task, names in METRICS.items():
        assert DEFAULT_METRIC[task] in names
        assert check_metric(task, "") == DEFAULT_METRIC[task]
        assert check_metric(task, None) == DEFAULT_METRIC[task]
        for name in names:
            assert check_metric(task, name) == name
            assert direction(name) in ("maximize", "minimize")


@pytest.mark.parametrize("name, way", [("roc_auc", "maximize"), ("log_loss", "minimize"), ("rmse", "minimize"),
                                       ("r2", "maximize"), ("mape", "minimize"), ("silhouette", "maximize"),
                                       ("davies_bouldin", "minimize"), ("calinski_harabasz", "maximize")])
def test_direction(name, way):
    assert direction(name) == way


def test_check_metric_refuses_a_metric_of_another_task_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"spec\.metric: 'rmse' is not a binary metric; use one of accuracy, "):
        check_metric("binary", "rmse")
    with pytest.raises(ValueError, match="unknown task"):
        check_metric("ranking", "")
    with pytest.raises(ValueError, match="unknown metric"):
        direction("auc")


# -- classification ------------------------------------------------------------------------------


def test_binary_scores_match_scikit_learn():
    y, proba = probabilities(300, 2)
    got = score("binary", y, proba=proba)
    predicted = proba.argmax(axis=1)
    assert set(got) == set(METRICS["binary"])
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted))
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, predicted))
    assert got["f1_macro"] == pytest.approx(sk.f1_score(y, predicted, average="macro"))
    assert got["precision_macro"] == pytest.approx(sk.precision_score(y, predicted, average="macro"))
    assert got["recall_macro"] == pytest.approx(sk.recall_score(y, predicted, average="macro"))
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, proba[:, 1]))
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, proba))
    assert all(type(v) is float for v in got.values())


def test_binary_accepts_the_positive_class_probability_alone():
    y, proba = probabilities(100, 2, seed=1)
    assert score("binary", y, proba=proba[:, 1]) == pytest.approx(score("binary", y, proba=proba))


def test_multiclass_scores_match_scikit_learn():
    y, proba = probabilities(400, 4, seed=2)
    got = score("multiclass", y, proba=proba, n_classes=4)
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, proba, labels=range(4)))
    assert got["f1_macro"] == pytest.approx(sk.f1_score(y, proba.argmax(axis=1), average="macro"))


def test_explicit_predictions_win_over_the_probabilities():
    y, proba = probabilities(50, 3, seed=3)
    predicted = np.zeros(50, dtype=int)
    assert score("multiclass", y, y_pred=predicted, proba=proba)["accuracy"] == pytest.approx(np.mean(y == 0))


def test_classes_missing_from_y_true_are_handled():
    rng = np.random.default_rng(4)
    proba = rng.dirichlet(np.ones(4), size=60)
    y = rng.choice([0, 2], size=60)  # classes 1 and 3 never occur in these rows
    got = score("multiclass", y, proba=proba, n_classes=4)
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, proba, labels=range(4)))
    expected_auc = np.mean([sk.roc_auc_score(y == c, proba[:, c]) for c in (0, 2)])
    assert got["roc_auc"] == pytest.approx(expected_auc)
    assert all(math.isfinite(v) for v in got.values())


def test_a_single_class_in_y_true_leaves_roc_auc_out():
    proba = np.array([[0.8, 0.2], [0.4, 0.6], [0.9, 0.1]])
    got = score("binary", np.zeros(3, dtype=int), proba=proba)
    assert "roc_auc" not in got
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert got["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.4, 0.9])))


def test_probabilities_of_zero_give_a_finite_log_loss():
    got = score("binary", np.array([0, 1]), proba=np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert math.isfinite(got["log_loss"]) and got["log_loss"] > 30
    assert got["accuracy"] == 0.0


def test_non_finite_probabilities_leave_the_probability_metrics_out():
    proba = np.array([[0.3, 0.7], [np.nan, np.nan], [0.6, 0.4], [0.2, 0.8]])
    got = score("binary", np.array([1, 0, 0, 1]), proba=proba)
    assert "roc_auc" not in got and "log_loss" not in got
    assert got["accuracy"] == pytest.approx(1.0)


def test_predictions_only_give_the_label_metrics():
    got = score("multiclass", [0, 1, 2, 2], y_pred=[0, 1, 1, 2])
    assert set(got) == {"accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro"}


def test_empty_rows_give_no_metrics():
    assert score("binary", np.array([], dtype=int), proba=np.zeros((0, 2))) == {}
    assert score("regression", [], y_pred=[]) == {}


@pytest.mark.parametrize("kwargs, message", [
    ({"proba": np.full((3, 3), 1 / 3), "n_classes": 2}, "3 columns but there are 2 classes"),
    ({"proba": np.full((2, 2), 0.5)}, "proba must be"),
    ({"y_pred": [0, 1, 5]}, "class codes must be"),
    ({}, "need y_pred or proba"),
])
def test_inconsistent_classification_inputs_are_refused(kwargs, message):
    kwargs.setdefault("n_classes", 3)
    with pytest.raises(ValueError, match=message):
        score("multiclass", [0, 1, 2], **kwargs)


# -- regression ----------------------------------------------------------------------------------


def test_regression_scores_match_scikit_learn():
    rng = np.random.default_rng(5)
    y = rng.normal(10, 3, 200)
    predicted = y + rng.normal(0, 1, 200)
    got = score("regression", y, y_pred=predicted)
    assert got["rmse"] == pytest.approx(math.sqrt(sk.mean_squared_error(y, predicted)))
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, predicted))
    assert got["r2"] == pytest.approx(sk.r2_score(y, predicted))
    assert got["mape"] == pytest.approx(sk.mean_absolute_percentage_error(y, predicted))


def test_mape_ignores_zero_targets_and_is_left_out_when_all_are_zero():
    got = score("regression", [0.0, 2.0, 4.0], y_pred=[5.0, 1.0, 5.0])
    assert got["mape"] == pytest.approx((0.5 + 0.25) / 2)
    assert "mape" not in score("regression", [0.0, 0.0], y_pred=[1.0, 2.0])


def test_r2_is_left_out_for_one_row_or_a_constant_target():
    assert set(score("regression", [3.0], y_pred=[2.0])) == {"rmse", "mae", "mape"}
    assert "r2" not in score("regression", [3.0, 3.0, 3.0], y_pred=[2.0, 3.0, 4.0])


def test_non_finite_predictions_never_give_nan():
    got = score("regression", [1.0, 2.0, 3.0], y_pred=[1.0, np.nan, 3.0])
    assert got == {}
    got = score("regression", [1.0, 2.0], y_pred=[1.0, 1e300])
    assert "rmse" not in got and got["mae"] == pytest.approx(5e299)


# -- clustering ----------------------------------------------------------------------------------


def blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centers = np.array([[0, 0], [5, 5], [0, 8]])
    return centers[labels] + rng.normal(0, 0.5, (n, 2)), labels


def test_clustering_scores_match_scikit_learn():
    X, labels = blobs()
    got = score("clustering", None, X=X, labels=labels)
    assert got["silhouette"] == pytest.approx(sk.silhouette_score(X, labels))
    assert got["davies_bouldin"] == pytest.approx(sk.davies_bouldin_score(X, labels))
    assert got["calinski_harabasz"] == pytest.approx(sk.calinski_harabasz_score(X, labels))


def test_noise_rows_are_left_out():
    X, labels = blobs()
    noisy = labels.copy()
    noisy[::10] = -1
    keep = noisy != -1
    got = score("clustering", None, X=X, labels=noisy)
    assert got["silhouette"] == pytest.approx(sk.silhouette_score(X[keep], labels[keep]))


@pytest.mark.parametrize("labels", [np.full(300, -1), np.zeros(300, dtype=int), np.r_[np.zeros(299), -1]])
def test_fewer_than_two_clusters_give_no_scores(labels):
    X, _ = blobs()
    assert score("clustering", None, X=X, labels=labels) == {}


def test_every_row_its_own_cluster_gives_no_scores():
    X, _ = blobs(10)
    assert score("clustering", None, X=X, labels=np.arange(10)) == {}


def test_silhouette_is_taken_on_a_seeded_sample_of_large_tables(monkeypatch):
    monkeypatch.setattr(metrics, "_SILHOUETTE_ROWS", 200)
    X, labels = blobs(1000)
    first = score("clustering", None, X=X, labels=labels, seed=1)
    assert first == score("clustering", None, X=X, labels=labels, seed=1)
    assert first["silhouette"] != score("clustering", None, X=X, labels=labels, seed=2)["silhouette"]
    assert first["davies_bouldin"] == pytest.approx(sk.davies_bouldin_score(X, labels))  # all rows


def test_sparse_matrices_are_scored():
    import scipy.sparse

    X, labels = blobs()
    got = score("clustering", None, X=scipy.sparse.csr_matrix(X), labels=labels)
    assert got == pytest.approx(score("clustering", None, X=X, labels=labels))


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task"):
        score("ranking", [1])
    with pytest.raises(ValueError, match="unknown task"):
        diagnostics("ranking", [1])


# -- diagnostics ---------------------------------------------------------------------------------


def test_binary_diagnostics():
    y, proba = probabilities(500, 2, seed=6)
    got = diagnostics("binary", y, proba=proba, class_labels=["no", "yes"], max_points=21)
    assert_json(got)
    assert set(got) == {"confusion_matrix", "roc_curve", "pr_curve", "calibration"}
    assert got["confusion_matrix"]["labels"] == ["no", "yes"]
    assert got["confusion_matrix"]["matrix"] == sk.confusion_matrix(y, proba.argmax(axis=1)).tolist()
    fpr, tpr, _ = sk.roc_curve(y, proba[:, 1])
    roc = got["roc_curve"]
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"]) <= 21
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (fpr[0], tpr[0], fpr[-1], tpr[-1])
    assert roc["thresholds"][0] == 1.0  # scikit-learn's infinite first threshold
    pr = got["pr_curve"]
    assert len(pr["precision"]) == len(pr["recall"]) == len(pr["thresholds"]) <= 21
    assert (pr["recall"][0], pr["recall"][-1], pr["precision"][-1]) == (1.0, 0.0, 1.0)
    calibration = got["calibration"]
    assert sum(calibration["count"]) == 500 and len(calibration["count"]) <= 10
    assert all(0 <= v <= 1 for v in calibration["mean_predicted"] + calibration["fraction_positive"])
    assert calibration["mean_predicted"] == sorted(calibration["mean_predicted"])


def test_short_curves_are_kept_whole():
    y = np.array([0, 1, 1, 0])
    got = diagnostics("binary", y, proba=np.array([0.1, 0.9, 0.8, 0.3]))
    fpr, tpr, thresholds = sk.roc_curve(y, [0.1, 0.9, 0.8, 0.3])
    assert got["roc_curve"] == {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": [1.0, *thresholds[1:]]}
    assert got["confusion_matrix"] == {"labels": ["0", "1"], "matrix": [[2, 0], [0, 2]]}


def test_binary_diagnostics_with_one_class_have_no_curves():
    got = diagnostics("binary", np.ones(5, dtype=int), proba=np.linspace(0.1, 0.9, 5))
    assert_json(got)
    assert "roc_curve" not in got and "pr_curve" not in got
    assert got["calibration"]["fraction_positive"] == [1.0] * 5


def test_multiclass_diagnostics_have_one_vs_rest_curves_per_present_class():
    rng = np.random.default_rng(7)
    proba = rng.dirichlet(np.ones(3), size=200)
    y = rng.choice([0, 2], size=200)  # 'b' never occurs
    got = diagnostics("multiclass", y, proba=proba, class_labels=["a", "b", "c"], max_points=15)
    assert_json(got)
    assert set(got) == {"confusion_matrix", "roc_curves", "pr_curves"}
    assert set(got["roc_curves"]) == set(got["pr_curves"]) == {"a", "c"}
    assert all(len(curve["fpr"]) <= 15 for curve in got["roc_curves"].values())
    matrix = np.array(got["confusion_matrix"]["matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 200 and matrix[1].sum() == 0


def test_classification_diagnostics_without_probabilities_have_the_confusion_matrix_only():
    got = diagnostics("multiclass", [0, 1, 2], y_pred=[0, 2, 2], class_labels=[10, 20, 30])
    assert got == {"confusion_matrix": {"labels": ["10", "20", "30"], "matrix": [[1, 0, 0], [0, 0, 1], [0, 0, 1]]}}


def test_regression_diagnostics_sample_residuals_and_histogram_all_rows():
    rng = np.random.default_rng(8)
    y = rng.normal(0, 1, 3000)
    predicted = y + rng.normal(0, 0.1, 3000)
    got = diagnostics("regression", y, y_pred=predicted, seed=3)
    assert_json(got)
    residuals = got["residuals"]
    assert len(residuals["predicted"]) == len(residuals["residual"]) == len(residuals["actual"]) == 1000
    assert np.allclose(np.array(residuals["actual"]) - residuals["predicted"], residuals["residual"])
    histogram = got["residual_histogram"]
    assert sum(histogram["counts"]) == 3000 and len(histogram["edges"]) == len(histogram["counts"]) + 1
    assert got == diagnostics("regression", y, y_pred=predicted, seed=3)
    assert got != diagnostics("regression", y, y_pred=predicted, seed=4)


def test_regression_diagnostics_drop_non_finite_rows():
    got = diagnostics("regression", [1.0, 2.0, 3.0], y_pred=[1.5, np.inf, np.nan])
    assert_json(got)
    assert got["residuals"] == {"actual": [1.0], "predicted": [1.5], "residual": [-0.5]}
    assert diagnostics("regression", [1.0], y_pred=[np.nan]) == {}


def test_clustering_has_no_diagnostics_and_max_points_is_checked():
    assert diagnostics("clustering", None) == {}
    with pytest.raises(ValueError, match="max_points"):
        diagnostics("binary", [0, 1], y_pred=[0, 1], max_points=1)
