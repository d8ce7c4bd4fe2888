"""SelectorService.SelectModels through gRPC against the embedded stack: task detection explained,
candidates ranked and adapted to the data, warnings, caching, and every invalid request refused."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from microlearn.v1 import common_pb2, dataset_pb2_grpc, selector_pb2, selector_pb2_grpc
from tests.conftest import TOKEN
from tests.integration.test_datasets import upload
from tests.integration.test_training import csv_bytes, messy_table

pytestmark = pytest.mark.integration
W = selector_pb2.SelectionWarningCode
AUTH = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture(scope="module")
def channel(platform):
    with grpc.insecure_channel(platform.address) as channel:
        yield channel


@pytest.fixture(scope="module")
def selector(channel):
    return selector_pb2_grpc.SelectorServiceStub(channel)


@pytest.fixture(scope="module")
def datasets(channel):
    stub = dataset_pb2_grpc.DatasetServiceStub(channel)
    tag = time.time_ns()
    rng = np.random.default_rng(0)
    imbalanced = pd.DataFrame({"x1": rng.normal(size=3000), "x2": rng.normal(size=3000),
                               "row_id": np.arange(3000), "const": 1,
                               "fraud": np.where(rng.random(3000) < 0.03, "yes", "no")})
    frames = {"cancer": load_breast_cancer(as_frame=True).frame, "iris": load_iris(as_frame=True).frame,
              "diabetes": load_diabetes(as_frame=True).frame, "messy": messy_table(), "fraud": imbalanced}
    return {key: upload(stub, f"sel-{key}-{tag}", csv_bytes(frame)).dataset for key, frame in frames.items()}


def select(stub, request):
    return stub.SelectModels(request, metadata=AUTH)


def test_binary_dataset_gets_ranked_candidates_with_explanation(selector, datasets):
    answer = select(selector, selector_pb2.SelectModelsRequest(dataset=datasets["cancer"].name,
                                                                     target="target"))
    assert answer.dataset == datasets["cancer"].name
    assert answer.task == common_pb2.TASK_TYPE_BINARY_CLASSIFICATION
    assert "2 distinct values" in answer.explanation.summary
    assert answer.explanation.row_count == 569 and answer.explanation.target_distinct_count == 2
    assert sorted(c.count for c in answer.explanation.class_distribution) == [212, 357]
    assert answer.recommended_metric == "roc_auc"
    assert answer.metric_direction == common_pb2.OPTIMIZATION_DIRECTION_MAXIMIZE
    assert answer.recommended_validation.k_fold.folds == 5  # 569 rows: k-fold
    assert len(answer.candidates) == 5
    assert [c.rank for c in answer.candidates] == [1, 2, 3, 4, 5]
    assert answer.candidates[0].estimator == "lightgbm_classifier"
    scores = [c.score for c in answer.candidates]
    assert scores == sorted(scores, reverse=True)
    families = {c.family for c in answer.candidates}
    assert len(families) >= 3, "the ranking spreads over model families"
    for candidate in answer.candidates:
        assert candidate.reason and candidate.estimated_fit_seconds > 0
        assert candidate.search_space.parameters or candidate.estimator == "gaussian_nb"
    assert all("baseline" not in c.estimator for c in answer.candidates)
    excluded = {e.estimator: e.reason for e in answer.excluded}
    assert "baseline" in excluded["baseline_classifier"]
    assert len(answer.feature_columns) == 30
    assert W.SELECTION_WARNING_CODE_FEW_ROWS in [w.code for w in answer.warnings]


def test_multiclass_and_regression(selector, datasets):
    iris = select(selector, selector_pb2.SelectModelsRequest(dataset=datasets["iris"].name, target="target"))
    assert iris.task == common_pb2.TASK_TYPE_MULTICLASS_CLASSIFICATION
    assert iris.recommended_metric == "f1_macro"
    assert common_pb2.TASK_TYPE_REGRESSION in iris.explanation.alternative_tasks
    diabetes = select(selector, selector_pb2.SelectModelsRequest(dataset=datasets["diabetes"].name,
                                                                       target="target", max_candidates=3))
    assert diabetes.task == common_pb2.TASK_TYPE_REGRESSION and diabetes.recommended_metric == "rmse"
    assert diabetes.metric_direction == common_pb2.OPTIMIZATION_DIRECTION_MINIMIZE
    assert len(diabetes.candidates) == 3
    assert all(c.estimator.endswith("regressor") or c.estimator in ("ridge", "lasso", "elastic_net", "svr",
                                                                      "linear_regression", "linear_svr")
               for c in diabetes.candidates)
    forced = select(selector, selector_pb2.SelectModelsRequest(
        dataset=datasets["iris"].name, target="target", task=common_pb2.TASK_TYPE_REGRESSION))
    assert forced.task == common_pb2.TASK_TYPE_REGRESSION


def test_imbalance_id_and_constant_columns_are_flagged(selector, datasets):
    answer = select(selector, selector_pb2.SelectModelsRequest(dataset=datasets["fraud"].name, target="fraud"))
    codes = {w.code: w for w in answer.warnings}
    imbalance = codes[W.SELECTION_WARNING_CODE_CLASS_IMBALANCE]
    assert imbalance.level == common_pb2.LOG_LEVEL_WARNING and "balance_classes" in imbalance.suggestion
    assert answer.explanation.minority_class == "yes" and answer.explanation.imbalance_ratio > 10
    assert answer.recommended_metric == "roc_auc"
    assert "row_id" in codes[W.SELECTION_WARNING_CODE_ID_COLUMNS_IGNORED].columns
    assert "const" in codes[W.SELECTION_WARNING_CODE_CONSTANT_COLUMNS_IGNORED].columns
    assert sorted(answer.feature_columns) == ["x1", "x2"]
    assert answer.warnings[0].level == common_pb2.LOG_LEVEL_WARNING, "most severe first"


def test_categoricals_favour_boosting_and_budget_excludes_slow_models(selector, datasets):
    answer = select(selector, selector_pb2.SelectModelsRequest(dataset=datasets["messy"].name, target="churn",
                                                                     max_candidates=20))
    assert answer.candidates[0].family == selector_pb2.ESTIMATOR_FAMILY_GRADIENT_BOOSTING
    assert "categorical" in answer.candidates[0].reason
    narrowed = select(selector, selector_pb2.SelectModelsRequest(
        dataset=datasets["messy"].name, target="churn", include_estimators=["svc", "estimators/knn_classifier"],
        exclude_estimators=["knn_classifier"]))
    assert [c.estimator for c in narrowed.candidates] == ["svc"]
    assert {e.estimator: e.reason for e in narrowed.excluded}["knn_classifier"] == "excluded by request"
    ignored = select(selector, selector_pb2.SelectModelsRequest(
        dataset=datasets["messy"].name, target="churn", ignore_columns=["city"]))
    assert "city" not in ignored.feature_columns and "plan" in ignored.feature_columns


def test_clustering_and_target_suggestion(selector, datasets):
    clusters = select(selector, selector_pb2.SelectModelsRequest(dataset=datasets["iris"].name,
                                                                       task=common_pb2.TASK_TYPE_CLUSTERING))
    assert clusters.task == common_pb2.TASK_TYPE_CLUSTERING and clusters.target == ""
    assert clusters.recommended_metric == "silhouette"
    assert clusters.candidates[0].estimator in ("kmeans", "minibatch_kmeans")
    suggested = select(selector, selector_pb2.SelectModelsRequest(dataset=datasets["cancer"].name))
    assert suggested.target == "target"


def test_answers_are_cached_per_dataset_version(selector, datasets, platform):
    request = selector_pb2.SelectModelsRequest(dataset=datasets["diabetes"].name, target="target", max_candidates=4)
    first = selector.SelectModels(request, metadata=AUTH)
    second = selector.SelectModels(request, metadata=AUTH)
    assert first == second


@pytest.mark.parametrize("request_fields, code, fragment", [
    ({}, grpc.StatusCode.INVALID_ARGUMENT, "dataset is required"),
    ({"dataset": "datasets/nope"}, grpc.StatusCode.NOT_FOUND, "does not exist"),
    ({"target": "missing_column"}, grpc.StatusCode.INVALID_ARGUMENT, "target: column 'missing_column'"),
    ({"target": "target", "max_candidates": 51}, grpc.StatusCode.INVALID_ARGUMENT, "max_candidates"),
    ({"target": "target", "time_budget_seconds": -1}, grpc.StatusCode.INVALID_ARGUMENT, "time_budget_seconds"),
    ({"target": "target", "include_estimators": ["nope"]}, grpc.StatusCode.INVALID_ARGUMENT, "include_estimators"),
    ({"target": "target", "ignore_columns": ["zzz"]}, grpc.StatusCode.INVALID_ARGUMENT, "ignore_columns"),
    ({"target": "target", "task": 99}, grpc.StatusCode.INVALID_ARGUMENT, "task"),
    ({"target": "target", "task": common_pb2.TASK_TYPE_CLUSTERING}, grpc.StatusCode.INVALID_ARGUMENT, "task"),
    ({"target": "mean radius", "task": common_pb2.TASK_TYPE_BINARY_CLASSIFICATION},
     grpc.StatusCode.INVALID_ARGUMENT, "task"),
])
def test_invalid_requests(selector, datasets, request_fields, code, fragment):
    fields = {"dataset": datasets["cancer"].name, **request_fields} if request_fields else {}
    with pytest.raises(grpc.RpcError) as caught:
        select(selector, selector_pb2.SelectModelsRequest(**fields))
    assert caught.value.code() == code, caught.value.details()
    assert fragment in caught.value.details()
