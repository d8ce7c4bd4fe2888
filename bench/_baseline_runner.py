"""Fit one baseline AutoML system on a train CSV within a time budget and write test predictions.

    python bench/_baseline_runner.py SYSTEM TRAIN.csv TEST.csv TARGET TASK METRIC BUDGET OUT.csv

Run by bench/automl_quality.py inside the baselines' own virtual environment (FLAML and AutoGluon
pin versions that do not fit MicroLearn's), so each run is a fresh process, timed from the outside
like `microlearn automl`. SYSTEM: flaml, autogluon or lightgbm (default hyperparameters, no search).
TASK: binary, multiclass or regression. OUT gets `prediction` and, for classification, `proba_<class>`.
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np
import pandas as pd


def main() -> None:
    system, train_path, test_path, target, task, metric, budget, out = sys.argv[1:9]
    budget = int(budget)
    train, test = pd.read_csv(train_path), pd.read_csv(test_path)
    X, y = train.drop(columns=[target]), train[target]
    X_test = test.drop(columns=[target], errors="ignore")
    classes = None
    if system == "flaml":
        from flaml import AutoML

        automl = AutoML()
        flaml_metric = {"roc_auc": "roc_auc" if task == "binary" else "roc_auc_ovr", "accuracy": "accuracy",
                        "log_loss": "log_loss", "rmse": "rmse", "f1_macro": "macro_f1", "r2": "r2"}[metric]
        automl.fit(X, y, task="classification" if task != "regression" else "regression", time_budget=budget,
                   metric=flaml_metric, n_jobs=2, verbose=0, seed=0)
        model = automl
        classes = list(automl.classes_) if task != "regression" else None
    elif system == "autogluon":
        from autogluon.tabular import TabularPredictor

        ag_metric = {"roc_auc": "roc_auc" if task == "binary" else "roc_auc_ovo_macro", "accuracy": "accuracy",
                     "log_loss": "log_loss", "rmse": "root_mean_squared_error", "f1_macro": "f1_macro",
                     "r2": "r2"}[metric]
        problem = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}[task]
        model = TabularPredictor(label=target, problem_type=problem, eval_metric=ag_metric, verbosity=0,
                                 path=tempfile.mkdtemp(prefix="ag-")).fit(train, time_limit=budget,
                                                                          num_cpus=2, num_gpus=0)
        classes = list(model.class_labels) if task != "regression" else None
    elif system == "lightgbm":
        import lightgbm as lgb

        for frame in (X, X_test):
            for column in frame.columns:
                if frame[column].dtype == object:
                    frame[column] = frame[column].astype("category")
        X_test = X_test.astype({c: pd.CategoricalDtype(X[c].cat.categories) for c in X.columns
                                if str(X[c].dtype) == "category"})
        model = (lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier)(n_jobs=2, verbose=-1,
                                                                                  random_state=0)
        model.fit(X, y)
        classes = list(model.classes_) if task != "regression" else None
    else:
        raise SystemExit(f"unknown system {system!r}")
    result = pd.DataFrame({"prediction": np.asarray(model.predict(X_test))})
    if classes is not None:
        proba = model.predict_proba(X_test)
        proba = proba.to_numpy() if hasattr(proba, "to_numpy") else np.asarray(proba)
        for index, label in enumerate(classes):
            result[f"proba_{label}"] = proba[:, index]
    result.to_csv(out, index=False)


if __name__ == "__main__":
    main()
