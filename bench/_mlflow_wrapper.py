"""The MLflow pyfunc that serves a MicroLearn model artifact for the `mlflow models serve` baseline
(bench/serving_throughput.py): the same artifact, verified and loaded the same way, answering with
the same `predict_proba` the in-process measurement times."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc


class MicroLearnModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from microlearn._models import load_artifact

        self.model = load_artifact(Path(context.artifacts["model"]), context.model_config["sha256"])

    def predict(self, context, model_input, params=None):
        return self.model.predict_proba(model_input)
