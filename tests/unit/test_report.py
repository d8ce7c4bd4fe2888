"""The SDK's model reports (microlearn._report): HTML with embedded PNGs and a PNG sheet, for binary,
multiclass and regression models, from the plot data a model carries."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from microlearn import Model
from microlearn.v1 import common_pb2, trainer_pb2
from microlearn_grpc.core.metrics import diagnostics, score

TASKS = {"binary": common_pb2.TASK_TYPE_BINARY_CLASSIFICATION,
         "multiclass": common_pb2.TASK_TYPE_MULTICLASS_CLASSIFICATION,
         "regression": common_pb2.TASK_TYPE_REGRESSION}


def _model(task: str) -> Model:
    rng = np.random.default_rng(0)
    n = 200
    if task == "regression":
        y = rng.normal(size=n)
        predicted = {"y_pred": y + rng.normal(scale=0.3, size=n)}
        labels, metric = None, "rmse"
    else:
        k = 2 if task == "binary" else 3
        y = rng.integers(0, k, n)
        proba = rng.dirichlet(np.ones(k), n)
        proba[np.arange(n), y] += 1
        predicted = {"proba": proba / proba.sum(axis=1, keepdims=True)}
        labels, metric = [f"c{i}" for i in range(k)], ("roc_auc" if k == 2 else "f1_macro")
    plots = diagnostics(task, y, **predicted, class_labels=labels)
    plots["permutation_importance"] = {"metric": metric, "features": [
        {"name": "age", "mean": 0.2, "std": 0.02, "repeats": 5}, {"name": "city", "mean": 0.01, "std": 0.01,
                                                                   "repeats": 5}]}
    message = trainer_pb2.Model(name="models/mdl-1", id="mdl-1", estimator="lightgbm", task=TASKS[task],
                                metric=metric, metrics=score(task, y, **predicted, n_classes=None if labels is None
                                                             else len(labels)),
                                importance_metric=metric, training_row_count=800, target="y")
    message.feature_importance.add(feature="age", importance=0.2, importance_std=0.02, repeats=5)
    message.feature_importance.add(feature="city", importance=0.01, importance_std=0.01, repeats=5)
    message.diagnostics.update(plots)
    return Model.from_proto(message)


EXPECTED = {"binary": ["Confusion matrix", "ROC curve", "Precision-recall curve", "Calibration"],
            "multiclass": ["Confusion matrix", "ROC curve", "Precision-recall curve"],
            "regression": ["Residuals", "Residual histogram"]}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_html_report_has_each_section_as_an_embedded_png(task, tmp_path):
    from microlearn._report import write_report

    model = _model(task)
    assert model.feature_importance[0] == {"feature": "age", "importance": 0.2, "importance_std": 0.02, "repeats": 5}
    path = write_report(model, tmp_path / "report.html")
    page = path.read_text()
    sections = re.findall(r"<h2>([^<]+)</h2>", page)
    assert sections == ["Metrics", *EXPECTED[task], "Permutation importance"]
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == len(EXPECTED[task]) + 1
    assert all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    assert f"{model.metric} (score)" in page and "<td>age</td>" in page
    assert "Calibration" not in page or task == "binary"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_png_sheet(task, tmp_path):
    from microlearn._report import write_report

    path = write_report(_model(task), tmp_path / "report.png")
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 10_000


def test_other_suffixes_are_refused(tmp_path):
    from microlearn._report import write_report

    with pytest.raises(ValueError, match="html or .png"):
        write_report(_model("binary"), tmp_path / "report.pdf")
