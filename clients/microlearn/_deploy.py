"""Serving in the SDK: registering models, deployments, aliases and `predict`, as mixins that
`Client` and `AsyncClient` inherit, plus the DataFrame ↔ request conversions they share.

Small frames travel as typed columns; frames above `ARROW_MIN_ROWS` rows as Arrow IPC bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from microlearn.v1 import common_pb2, deploy_pb2, deploy_pb2_grpc

if TYPE_CHECKING:
    import pandas

__all__ = ["Prediction"]

ARROW_MIN_ROWS = 1000
READY_STATES = (deploy_pb2.DEPLOYMENT_STATE_READY, deploy_pb2.DEPLOYMENT_STATE_FAILED)


@dataclasses.dataclass(frozen=True, slots=True)
class Prediction:
    """What `predict` returns: one prediction per row (`predictions`: class labels, numbers or
    cluster ids), class `probabilities` (a DataFrame, one column per class) for classifiers, the
    `model_version` that answered, the server-side `latency_ms`, and `warnings` (missing or
    extra columns, unseen categories). `request_id` is what `SubmitFeedback` refers to."""

    request_id: str
    model_version: str
    model: str
    task: str
    predictions: list[Any]
    probabilities: pandas.DataFrame | None
    latency_ms: float
    logged: bool
    warnings: list[str]

    @classmethod
    def from_response(cls, response: Any) -> Prediction:
        from microlearn import _convert

        kind = response.WhichOneof("predictions")
        values = list(getattr(response, kind).values) if kind else []
        probabilities = None
        if response.class_probabilities:
            import pandas as pd

            probabilities = pd.DataFrame({c.label: list(c.probabilities) for c in response.class_probabilities})
        return cls(request_id=response.request_id, model_version=response.model_version, model=response.model,
                   task=_convert.task_name(response.task), predictions=values, probabilities=probabilities,
                   latency_ms=response.latency_ms, logged=response.logged, warnings=list(response.warnings))

    def to_frame(self) -> pandas.DataFrame:
        """`prediction`, then one `probability_{label}` column per class."""
        import pandas as pd

        frame = pd.DataFrame({"prediction": self.predictions})
        if self.probabilities is not None:
            for label in self.probabilities.columns:
                frame[f"probability_{label}"] = self.probabilities[label].to_numpy()
        return frame


def columnar_rows(frame: pandas.DataFrame) -> common_pb2.ColumnarRows:
    """A DataFrame as typed columns: booleans, integers, doubles, and everything else as strings
    (datetimes as ISO 8601); missing values go in `null_mask`."""
    import pandas as pd

    rows = common_pb2.ColumnarRows()
    for name in frame.columns:
        series = frame[name]
        missing = series.isna().to_numpy()
        column = rows.columns.add(name=str(name))
        if missing.any():
            column.null_mask.extend(missing.tolist())
        dtype = series.dtype
        if pd.api.types.is_bool_dtype(dtype):
            column.bools.values.extend(series.fillna(False).astype(bool).tolist())
        elif pd.api.types.is_integer_dtype(dtype) and not missing.any():
            column.int64s.values.extend(series.astype("int64").tolist())
        elif pd.api.types.is_numeric_dtype(dtype):
            column.doubles.values.extend(series.astype("float64").fillna(0.0).tolist())
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            column.strings.values.extend("" if m else v.isoformat() for v, m in zip(series, missing))
        else:
            column.strings.values.extend("" if m else str(v) for v, m in zip(series.tolist(), missing))
    return rows


def arrow_ipc(frame: pandas.DataFrame) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def predict_request(deployment: str, frame: Any, *, request_id: str | None, model_version: str | None,
                    routing_key: str | None, probabilities: bool, arrow: bool | None) -> deploy_pb2.PredictRequest:
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    request = deploy_pb2.PredictRequest(deployment=deployment, request_id=request_id or "",
                                        model_version=model_version or "", routing_key=routing_key or "",
                                        exclude_probabilities=not probabilities)
    if arrow if arrow is not None else len(frame) >= ARROW_MIN_ROWS:
        request.arrow_ipc = arrow_ipc(frame)
    else:
        request.rows.CopyFrom(columnar_rows(frame))
    return request


def model_reference(model: Any) -> str:
    """A trained model as `models/ID` (from a Model, a job's model name or an id)."""
    name = getattr(model, "name", model)
    if not isinstance(name, str) or not name:
        raise TypeError(f"model must be a Model or a model name, not {type(model).__name__}")
    return name if name.startswith("models/") else f"models/{name}"


def deployment_message(reference: str, *, description: str, labels: Any, log_fraction: float | None,
                       replicas: int) -> deploy_pb2.Deployment:
    from microlearn import _convert

    message = deploy_pb2.Deployment(description=description, labels=_convert.string_map(labels), replicas=replicas,
                                    traffic=[deploy_pb2.TrafficTarget(model_version=reference, percent=100)])
    if log_fraction is not None:
        message.prediction_log_fraction = log_fraction
    return message


def batch_request(name: str, dataset: str, output: str, passthrough: Sequence[str], model_version: str | None,
                  probabilities: bool, labels: dict[str, str] | None,
                  request_id: str | None) -> deploy_pb2.StartBatchPredictionRequest:
    from microlearn import _convert

    return deploy_pb2.StartBatchPredictionRequest(
        deployment=name, input_dataset=dataset, output_display_name=output, passthrough_columns=list(passthrough),
        model_version=model_version or "", exclude_probabilities=not probabilities,
        labels=_convert.string_map(labels), request_id=request_id or "")


def traffic(split: dict[str, int]) -> list[deploy_pb2.TrafficTarget]:
    return [deploy_pb2.TrafficTarget(model_version=ref, percent=int(p)) for ref, p in split.items()]


class DeployMixin:
    """Serving methods of `Client` (it provides `_call`, `_channel` and `timeout`)."""

    _channel: Any

    @property
    def _deploy(self) -> deploy_pb2_grpc.DeployServiceStub:
        return deploy_pb2_grpc.DeployServiceStub(self._channel)

    def register_model(self, model: Any, name: str, *, aliases: tuple[str, ...] | list[str] = (),
                       description: str = "", labels: dict[str, str] | None = None) -> deploy_pb2.ModelVersion:
        """Register a trained model as the next version of `name` (created if new), pointing `aliases` at it."""
        from microlearn import _convert

        request = deploy_pb2.RegisterModelVersionRequest(registered_model=name, model=model_reference(model),
                                                         description=description, aliases=list(aliases),
                                                         labels=_convert.string_map(labels))
        return self._call(self._deploy.RegisterModelVersion, request).model_version  # type: ignore[attr-defined]

    def deploy(self, model: Any, *, name: str, alias: str | None = "production", registered_model: str | None = None,
               description: str = "", labels: dict[str, str] | None = None, prediction_log_fraction: float | None = None,
               wait: float | None = 60.0) -> deploy_pb2.Deployment:
        """Serve a trained model under deployment `name`.

        The model is registered as the next version of `registered_model` (default: `name`) and
        `alias` is pointed at it. The deployment follows the alias (or pins the version when
        `alias` is None); deploying again to an existing deployment that follows the alias is a
        promotion: the alias moves and live traffic follows. Waits up to `wait` seconds for READY.
        """
        from microlearn._errors import NotFound

        version = self.register_model(model, registered_model or name, aliases=[alias] if alias else [])
        reference = f"{version.registered_model.removeprefix('registeredModels/')}@{alias or version.version}"
        try:
            deployment = self.get_deployment(name)
        except NotFound:
            request = deploy_pb2.CreateDeploymentRequest(deployment_id=name, deployment=deployment_message(
                reference, description=description, labels=labels, log_fraction=prediction_log_fraction, replicas=0))
            deployment = self._call(self._deploy.CreateDeployment, request).deployment  # type: ignore[attr-defined]
        return self.wait_deployment(name, wait) if wait else deployment

    def get_deployment(self, name: str) -> deploy_pb2.Deployment:
        request = deploy_pb2.GetDeploymentRequest(name=name)
        return self._call(self._deploy.GetDeployment, request).deployment  # type: ignore[attr-defined]

    def create_deployment(self, name: str, split: dict[str, int], *, description: str = "",
                          labels: dict[str, str] | None = None,
                          prediction_log_fraction: float | None = None) -> deploy_pb2.Deployment:
        """Create a deployment splitting traffic between versions or aliases, e.g.
        `{"churn@production": 90, "churn@4": 10}`; it starts CREATING (see `wait_deployment`)."""
        message = deployment_message("", description=description, labels=labels,
                                     log_fraction=prediction_log_fraction, replicas=0)
        del message.traffic[:]
        message.traffic.extend(traffic(split))
        request = deploy_pb2.CreateDeploymentRequest(deployment_id=name, deployment=message)
        return self._call(self._deploy.CreateDeployment, request).deployment  # type: ignore[attr-defined]

    def wait_deployment(self, name: str, timeout: float = 60.0) -> deploy_pb2.Deployment:
        """Poll until the deployment is READY or FAILED (or `timeout` seconds pass); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            deployment = self.get_deployment(name)
            if deployment.state in READY_STATES or time.monotonic() > deadline:
                return deployment
            time.sleep(0.1)

    def list_deployments(self, *, registered_model: str = "") -> list[deploy_pb2.Deployment]:
        found, token = [], ""
        while True:
            request = deploy_pb2.ListDeploymentsRequest(page_size=200, page_token=token,
                                                        registered_model=registered_model)
            response = self._call(self._deploy.ListDeployments, request)  # type: ignore[attr-defined]
            found.extend(response.deployments)
            token = response.next_page_token
            if not token:
                return found

    def update_traffic(self, name: str, split: dict[str, int]) -> deploy_pb2.Deployment:
        """Set a deployment's traffic, e.g. `{"churn@production": 90, "churn@3": 10}`."""
        from google.protobuf import field_mask_pb2

        request = deploy_pb2.UpdateDeploymentRequest(
            deployment=deploy_pb2.Deployment(name=name, traffic=traffic(split)),
            update_mask=field_mask_pb2.FieldMask(paths=["traffic"]))
        return self._call(self._deploy.UpdateDeployment, request).deployment  # type: ignore[attr-defined]

    def delete_deployment(self, name: str) -> str:
        request = deploy_pb2.DeleteDeploymentRequest(name=name)
        return self._call(self._deploy.DeleteDeployment, request).name  # type: ignore[attr-defined]

    def promote(self, model_version: str, alias: str = "production") -> deploy_pb2.SetAliasResponse:
        """Point `alias` at `model_version` (`NAME@N`); deployments following it switch to it."""
        request = deploy_pb2.SetAliasRequest(model_version=model_version, alias=alias)
        return self._call(self._deploy.SetAlias, request)  # type: ignore[attr-defined]

    def rollback(self, alias: str) -> deploy_pb2.RollbackAliasResponse:
        """Move `NAME@ALIAS` back to where it pointed before its last move."""
        request = deploy_pb2.RollbackAliasRequest(name=alias)
        return self._call(self._deploy.RollbackAlias, request)  # type: ignore[attr-defined]

    def predict(self, name: str, frame: Any, *, request_id: str | None = None, model_version: str | None = None,
                routing_key: str | None = None, probabilities: bool = True, arrow: bool | None = None) -> Prediction:
        """Predict for the rows of a DataFrame (or anything `pandas.DataFrame()` takes) with a deployment."""
        request = predict_request(name, frame, request_id=request_id, model_version=model_version,
                                  routing_key=routing_key, probabilities=probabilities, arrow=arrow)
        return Prediction.from_response(self._call(self._deploy.Predict, request))  # type: ignore[attr-defined]


    def batch_predict(self, name: str, dataset: str, *, output: str = "", passthrough: Sequence[str] = (),
                      model_version: str | None = None, probabilities: bool = True,
                      labels: dict[str, str] | None = None, request_id: str | None = None) -> Any:
        """Start predicting every row of a stored dataset with deployment `name` on the workers; returns
        the Job at once. When it succeeds, `job.outputs[0]` names the new dataset (`{dataset}-predictions`
        unless `output`): the `passthrough` columns, `prediction` and a `probability_{label}` per class."""
        from microlearn._jobs import Job

        request = batch_request(name, dataset, output, passthrough, model_version, probabilities, labels, request_id)
        return Job(self, self._call(self._deploy.StartBatchPrediction, request).job)  # type: ignore[attr-defined]


class AsyncDeployMixin:
    """Serving methods of `AsyncClient`, as coroutines (see `DeployMixin` for what each does)."""

    @property
    def _deploy(self) -> deploy_pb2_grpc.DeployServiceStub:
        self._stub  # type: ignore[attr-defined]  # opens the channel on first use
        return deploy_pb2_grpc.DeployServiceStub(self._channel)  # type: ignore[attr-defined]

    async def register_model(self, model: Any, name: str, *, aliases: tuple[str, ...] | list[str] = (),
                             description: str = "", labels: dict[str, str] | None = None) -> deploy_pb2.ModelVersion:
        from microlearn import _convert

        request = deploy_pb2.RegisterModelVersionRequest(registered_model=name, model=model_reference(model),
                                                         description=description, aliases=list(aliases),
                                                         labels=_convert.string_map(labels))
        return (await self._call(self._deploy.RegisterModelVersion, request)).model_version  # type: ignore[attr-defined]

    async def deploy(self, model: Any, *, name: str, alias: str | None = "production",
                     registered_model: str | None = None, description: str = "", labels: dict[str, str] | None = None,
                     prediction_log_fraction: float | None = None, wait: float | None = 60.0) -> deploy_pb2.Deployment:
        from microlearn._errors import NotFound

        version = await self.register_model(model, registered_model or name, aliases=[alias] if alias else [])
        reference = f"{version.registered_model.removeprefix('registeredModels/')}@{alias or version.version}"
        try:
            deployment = await self.get_deployment(name)
        except NotFound:
            request = deploy_pb2.CreateDeploymentRequest(deployment_id=name, deployment=deployment_message(
                reference, description=description, labels=labels, log_fraction=prediction_log_fraction, replicas=0))
            deployment = (await self._call(self._deploy.CreateDeployment, request)).deployment  # type: ignore[attr-defined]
        return await self.wait_deployment(name, wait) if wait else deployment

    async def get_deployment(self, name: str) -> deploy_pb2.Deployment:
        request = deploy_pb2.GetDeploymentRequest(name=name)
        return (await self._call(self._deploy.GetDeployment, request)).deployment  # type: ignore[attr-defined]

    async def wait_deployment(self, name: str, timeout: float = 60.0) -> deploy_pb2.Deployment:
        deadline = time.monotonic() + timeout
        while True:
            deployment = await self.get_deployment(name)
            if deployment.state in READY_STATES or time.monotonic() > deadline:
                return deployment
            await asyncio.sleep(0.1)

    async def delete_deployment(self, name: str) -> str:
        request = deploy_pb2.DeleteDeploymentRequest(name=name)
        return (await self._call(self._deploy.DeleteDeployment, request)).name  # type: ignore[attr-defined]

    async def promote(self, model_version: str, alias: str = "production") -> deploy_pb2.SetAliasResponse:
        request = deploy_pb2.SetAliasRequest(model_version=model_version, alias=alias)
        return await self._call(self._deploy.SetAlias, request)  # type: ignore[attr-defined]

    async def rollback(self, alias: str) -> deploy_pb2.RollbackAliasResponse:
        request = deploy_pb2.RollbackAliasRequest(name=alias)
        return await self._call(self._deploy.RollbackAlias, request)  # type: ignore[attr-defined]

    async def predict(self, name: str, frame: Any, *, request_id: str | None = None, model_version: str | None = None,
                      routing_key: str | None = None, probabilities: bool = True,
                      arrow: bool | None = None) -> Prediction:
        request = predict_request(name, frame, request_id=request_id, model_version=model_version,
                                  routing_key=routing_key, probabilities=probabilities, arrow=arrow)
        return Prediction.from_response(await self._call(self._deploy.Predict, request))  # type: ignore[attr-defined]

    async def batch_predict(self, name: str, dataset: str, *, output: str = "", passthrough: Sequence[str] = (),
                            model_version: str | None = None, probabilities: bool = True,
                            labels: dict[str, str] | None = None, request_id: str | None = None) -> Any:
        from microlearn._jobs import AsyncJob

        request = batch_request(name, dataset, output, passthrough, model_version, probabilities, labels, request_id)
        return AsyncJob(self, (await self._call(self._deploy.StartBatchPrediction, request)).job)  # type: ignore[attr-defined]

