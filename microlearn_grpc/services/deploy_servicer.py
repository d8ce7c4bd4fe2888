"""DeployService over gRPC: protobuf ↔ domain translation only (the use cases are in `deploy.py`
and `model_registry.py`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import grpc
from microlearn.v1 import deploy_pb2, deploy_pb2_grpc
from microlearn_grpc import errors
from microlearn_grpc.services.batch_prediction import BatchPredictionService, BatchRequest
from microlearn_grpc.services.deploy import DeployService, PredictInput, PredictOutput
from microlearn_grpc.services.enums import TASK_TYPES
from microlearn_grpc.services.grpc_errors import status_for, translate_errors
from microlearn_grpc.services.trainer_servicer import job_to_proto, model_to_proto, timestamp
from microlearn_grpc.storage.deployments_repo import DeploymentRecord
from microlearn_grpc.storage.models_repo import ModelRecord
from microlearn_grpc.storage.registry_repo import AliasRecord, RegisteredModelRecord, VersionRecord, version_name

STATES = {"CREATING": deploy_pb2.DEPLOYMENT_STATE_CREATING, "READY": deploy_pb2.DEPLOYMENT_STATE_READY,
          "UPDATING": deploy_pb2.DEPLOYMENT_STATE_UPDATING, "FAILED": deploy_pb2.DEPLOYMENT_STATE_FAILED}
STATE_NAMES = {v: k for k, v in STATES.items()}
MAX_STREAM_IN_FLIGHT = 64  # stream requests predicted concurrently; more wait (flow control)


def alias_to_proto(alias: AliasRecord) -> deploy_pb2.ModelAlias:
    return deploy_pb2.ModelAlias(
        name=f"registeredModels/{alias.registered_model}/aliases/{alias.alias}", alias=alias.alias,
        version=version_name(alias.registered_model, alias.version), update_time=timestamp(alias.updated_at),
        history=[deploy_pb2.AliasHistoryEntry(version=version_name(alias.registered_model, h["version"]),
                                              set_time=timestamp(h["set_at"]), unset_time=timestamp(h["unset_at"]))
                 for h in alias.history])


def version_to_proto(version: VersionRecord, model: ModelRecord, *, with_schema: bool = True
                     ) -> deploy_pb2.ModelVersion:
    m = model_to_proto(model, with_schema=with_schema)
    return deploy_pb2.ModelVersion(
        name=version.resource_name, registered_model=f"registeredModels/{version.registered_model}",
        version=version.version, model=model.resource_name, aliases=version.aliases,
        description=version.description, labels=version.labels, task=m.task, estimator=m.estimator,
        dataset=m.dataset, target=m.target, metrics=m.metrics, feature_schema=m.feature_schema,
        class_labels=m.class_labels, format=m.format, create_time=timestamp(version.created_at))


def registered_to_proto(record: RegisteredModelRecord) -> deploy_pb2.RegisteredModel:
    return deploy_pb2.RegisteredModel(
        name=f"registeredModels/{record.name}", description=record.description, task=TASK_TYPES[record.task],
        latest_version=record.latest_version, version_count=record.version_count,
        aliases=[alias_to_proto(a) for a in record.aliases], create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at))


def deployment_to_proto(record: DeploymentRecord, model: ModelRecord | None) -> deploy_pb2.Deployment:
    message = deploy_pb2.Deployment(
        name=record.resource_name, description=record.description, replicas=record.replicas,
        prediction_log_fraction=record.prediction_log_fraction, labels=record.labels, state=STATES[record.state],
        state_message=record.state_message, task=TASK_TYPES.get(record.task, 0), create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at), etag=record.etag,
        traffic=[deploy_pb2.TrafficTarget(
            model_version=t.reference, percent=t.percent,
            resolved_version=version_name(t.registered_model, t.resolved_version) if t.resolved_version else "",
            resolved_model=f"models/{t.model_id}" if t.model_id else "") for t in record.targets])
    if model is not None:
        message.input_schema.CopyFrom(model_to_proto(model).feature_schema)
    return message


def deployment_spec(deployment: deploy_pb2.Deployment) -> dict[str, Any]:
    return {"description": deployment.description, "replicas": deployment.replicas,
            "prediction_log_fraction": (deployment.prediction_log_fraction
                                        if deployment.HasField("prediction_log_fraction") else None),
            "labels": dict(deployment.labels),
            "traffic": [(t.model_version, t.percent) for t in deployment.traffic]}


def predict_input(request: Any, deployment: str | None = None) -> PredictInput:
    kind = request.WhichOneof("input")
    return PredictInput(deployment=deployment if deployment is not None else request.deployment,
                        request_id=request.request_id, rows=request.rows if kind == "rows" else None,
                        arrow_ipc=request.arrow_ipc if kind == "arrow_ipc" else None,
                        model_version=request.model_version, routing_key=request.routing_key,
                        exclude_probabilities=request.exclude_probabilities)


def fill_prediction(message: Any, out: PredictOutput) -> Any:
    """Fill a PredictResponse or PredictStreamResponse (same field numbers and names)."""
    model = out.route.model
    message.request_id = out.request_id
    message.model_version = out.route.version
    message.model = model.record.resource_name
    message.task = TASK_TYPES[model.task]
    values = out.prediction.values
    if model.is_classifier:
        message.labels.values.extend(values.tolist())
    elif model.task == "clustering":
        message.cluster_ids.values.extend(values.tolist())
    else:
        message.values.values.extend(values.tolist())
    if out.prediction.probabilities is not None:
        for i, label in enumerate(model.class_labels):
            message.class_probabilities.add(label=label, probabilities=out.prediction.probabilities[:, i].tolist())
    message.row_count = out.row_count
    message.latency_ms = out.latency_ms
    message.logged = out.logged
    message.warnings.extend(out.warnings)
    return message


class DeployServicer(deploy_pb2_grpc.DeployServiceServicer):
    def __init__(self, service: DeployService, batch: BatchPredictionService | None = None) -> None:
        self._service = service
        self._batch = batch
        self._registry = service.registry
        service.start()  # only processes that serve DeployService load models and poll for changes

    async def _deployment(self, record: DeploymentRecord) -> deploy_pb2.Deployment:
        return deployment_to_proto(record, await self._service.primary_model(record))

    @translate_errors
    async def CreateDeployment(self, request, context):
        if not request.HasField("deployment"):
            raise errors.InvalidArgument("deployment is required: at least its traffic")
        record = await self._service.create(request.deployment_id, deployment_spec(request.deployment),
                                            validate_only=request.validate_only)
        if record is None:
            return deploy_pb2.CreateDeploymentResponse()
        return deploy_pb2.CreateDeploymentResponse(deployment=await self._deployment(record))

    @translate_errors
    async def GetDeployment(self, request, context):
        return deploy_pb2.GetDeploymentResponse(deployment=await self._deployment(await self._service.get(request.name)))

    @translate_errors
    async def ListDeployments(self, request, context):
        bad = [s for s in request.states if s not in STATE_NAMES]
        if bad:
            raise errors.InvalidArgument(f"states: {bad[0]} is not a known DeploymentState")
        page = await self._service.list(page_size=request.page_size, page_token=request.page_token,
                                        registered_model=request.registered_model,
                                        states=[STATE_NAMES[s] for s in request.states], labels=dict(request.labels))
        return deploy_pb2.ListDeploymentsResponse(deployments=[await self._deployment(d) for d in page.items],
                                                  next_page_token=page.next_page_token, total_size=page.total_size)

    @translate_errors
    async def UpdateDeployment(self, request, context):
        if not request.HasField("deployment"):
            raise errors.InvalidArgument("deployment is required: its name and the new values")
        mask = [p.removeprefix("deployment.") for p in request.update_mask.paths]
        record = await self._service.update(request.deployment.name, deployment_spec(request.deployment), mask,
                                            etag=request.deployment.etag, validate_only=request.validate_only)
        return deploy_pb2.UpdateDeploymentResponse(deployment=await self._deployment(record))

    @translate_errors
    async def DeleteDeployment(self, request, context):
        return deploy_pb2.DeleteDeploymentResponse(name=await self._service.delete(request.name, request.etag))

    @translate_errors
    async def RegisterModelVersion(self, request, context):
        version, model, already = await self._registry.register(
            request.registered_model, request.model, description=request.description, labels=dict(request.labels),
            aliases=list(request.aliases))
        return deploy_pb2.RegisterModelVersionResponse(model_version=version_to_proto(version, model),
                                                       already_registered=already)

    @translate_errors
    async def GetModelVersion(self, request, context):
        version, model = await self._registry.get_version(request.name)
        return deploy_pb2.GetModelVersionResponse(model_version=version_to_proto(version, model))

    @translate_errors
    async def ListModelVersions(self, request, context):
        page = await self._registry.list_versions(request.registered_model, page_size=request.page_size,
                                                  page_token=request.page_token)
        return deploy_pb2.ListModelVersionsResponse(
            model_versions=[version_to_proto(v, m, with_schema=False) for v, m in page.items],
            next_page_token=page.next_page_token, total_size=page.total_size)

    @translate_errors
    async def DeleteModelVersion(self, request, context):
        deleted = await self._registry.delete_version(request.name)
        return deploy_pb2.DeleteModelVersionResponse(name=deleted.resource_name)

    @translate_errors
    async def ListRegisteredModels(self, request, context):
        page = await self._registry.list_registered(page_size=request.page_size, page_token=request.page_token,
                                                    name_prefix=request.name_prefix)
        return deploy_pb2.ListRegisteredModelsResponse(
            registered_models=[registered_to_proto(r) for r in page.items], next_page_token=page.next_page_token,
            total_size=page.total_size)

    @translate_errors
    async def SetAlias(self, request, context):
        alias, previous = await self._registry.set_alias(request.model_version, request.alias)
        return deploy_pb2.SetAliasResponse(
            alias=alias_to_proto(alias),
            previous_version=version_name(alias.registered_model, previous) if previous else "")

    @translate_errors
    async def RollbackAlias(self, request, context):
        alias, left = await self._registry.rollback_alias(request.name)
        return deploy_pb2.RollbackAliasResponse(alias=alias_to_proto(alias),
                                                rolled_back_version=version_name(alias.registered_model, left))

    @translate_errors
    async def DeleteAlias(self, request, context):
        return deploy_pb2.DeleteAliasResponse(name=await self._registry.delete_alias(request.name))

    @translate_errors
    async def Predict(self, request, context):
        started = time.perf_counter()
        out = await self._service.predict(predict_input(request), started)
        return fill_prediction(deploy_pb2.PredictResponse(), out)

    async def PredictStream(self, request_iterator, context):
        """Each request is predicted as its own task (bounded), answered as it finishes; a failed
        request gets `error` and the stream goes on."""
        responses: asyncio.Queue = asyncio.Queue()
        slots = asyncio.Semaphore(MAX_STREAM_IN_FLIGHT)
        done = object()

        async def one(request, deployment: str) -> None:
            started = time.perf_counter()
            try:
                out = await self._service.predict(predict_input(request, deployment), started)
                await responses.put(fill_prediction(deploy_pb2.PredictStreamResponse(), out))
            except errors.DomainError as exc:
                await responses.put(deploy_pb2.PredictStreamResponse(
                    request_id=request.request_id,
                    error=deploy_pb2.PredictError(code=status_for(exc).value[0], message=str(exc))))
            except Exception as exc:  # noqa: BLE001 - one bad request must not end the stream
                await responses.put(deploy_pb2.PredictStreamResponse(
                    request_id=request.request_id, error=deploy_pb2.PredictError(
                        code=grpc.StatusCode.INTERNAL.value[0], message=f"internal error ({type(exc).__name__})")))
            finally:
                slots.release()

        async def read() -> None:
            deployment = ""
            tasks = set()
            try:
                async for request in request_iterator:
                    deployment = request.deployment or deployment
                    await slots.acquire()
                    task = asyncio.ensure_future(one(request, deployment))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if tasks:
                    await asyncio.gather(*tasks)
            finally:
                await responses.put(done)

        reader = asyncio.ensure_future(read())
        try:
            while (item := await responses.get()) is not done:
                yield item
            await reader  # surfaces a broken request stream
        finally:
            reader.cancel()

    @translate_errors
    async def SubmitFeedback(self, request, context):
        entries = []
        for entry in request.entries:
            kind = entry.WhichOneof("actual")
            entries.append({"request_id": entry.request_id, "row_index": entry.row_index,
                            "value": entry.value if kind == "value" else None,
                            "label": entry.label if kind == "label" else None,
                            "observe_time": entry.observe_time.ToDatetime(tzinfo=dt.timezone.utc)
                            if entry.HasField("observe_time") else None})
        accepted, rejected = await self._service.feedback(request.deployment, entries)
        return deploy_pb2.SubmitFeedbackResponse(
            accepted_count=accepted, rejected=[deploy_pb2.FeedbackRejection(index=i, reason=r) for i, r in rejected])

    @translate_errors
    async def StartBatchPrediction(self, request, context):
        if self._batch is None:
            raise errors.Unimplemented("DeployService.StartBatchPrediction is not served by this process")
        started = await self._batch.start(BatchRequest(
            deployment=request.deployment, input_dataset=request.input_dataset,
            output_display_name=request.output_display_name, passthrough_columns=tuple(request.passthrough_columns),
            model_version=request.model_version, exclude_probabilities=request.exclude_probabilities,
            labels=dict(request.labels), request_id=request.request_id))
        return deploy_pb2.StartBatchPredictionResponse(job=job_to_proto(started.job),
                                                       output_display_name=started.output_display_name,
                                                       model_version=started.model_version)
