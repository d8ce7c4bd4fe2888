"""Open Inference Protocol (KServe V2) use cases over the deployments DeployService serves.

A V2 model is a deployment: the model name is the deployment's name and a model version is one
of the registered versions it routes to (`3`, `NAME@3` or `registeredModels/NAME/versions/3`).
Inference goes through `DeployService.predict` — the same route table, loaded models, input
checks and prediction log as Predict — only the tensors are read and written here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from importlib import metadata as package_metadata

from microlearn_grpc import errors
from microlearn_grpc.serving import tensors
from microlearn_grpc.serving.router import Route, RouteTable, version_number
from microlearn_grpc.services.deploy import MAX_REQUEST_ID, DeployService, PredictInput, deployment_id_of

SERVER_NAME = "microlearn"
MAX_OUTPUTS = 16


@dataclasses.dataclass(frozen=True)
class InferRequest:
    model_name: str
    model_version: str
    request_id: str
    inputs: tensors.TensorInput
    outputs: Sequence[str]


@dataclasses.dataclass(frozen=True)
class InferResult:
    model_name: str
    model_version: str
    request_id: str
    outputs: list[tensors.OutputTensor]
    raw: bool                           # answer in raw_output_contents (the request sent raw inputs)
    parameters: dict[str, str]


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: list[str]
    platform: str
    inputs: list[tensors.TensorSpec]
    outputs: list[tensors.TensorSpec]


def server_version() -> str:
    try:
        return package_metadata.version("microlearn")
    except package_metadata.PackageNotFoundError:
        return "0+unknown"


class InferenceService:
    def __init__(self, deploy: DeployService) -> None:
        self._deploy = deploy

    def start(self) -> None:
        """Start the serving side (idempotent: DeployService may have started it already)."""
        self._deploy.start()

    @staticmethod
    def live() -> bool:
        return True

    def ready(self) -> bool:
        return self._deploy.serving_ready

    @staticmethod
    def server_metadata() -> tuple[str, str, list[str]]:
        return SERVER_NAME, server_version(), []

    async def model_ready(self, name: str, version: str) -> bool:
        """Whether ModelInfer would be answered now; a probe, so an unknown model is just not ready."""
        deployment = deployment_id_of(name, "name")
        table = self._deploy.loaded_table(deployment)
        if table is None:
            return False
        if not version:
            return True
        try:
            table.find(version)
        except errors.InvalidArgument:
            return False
        return True

    async def model_metadata(self, name: str, version: str) -> ModelMetadata:
        table = await self._deploy.route_table(name, "name")
        route = table.find(version) if version else table.primary
        model = route.model
        return ModelMetadata(
            name=table.deployment.name, versions=_versions(table), platform=f"microlearn_{model.record.estimator}",
            inputs=tensors.input_specs(model.schema),
            outputs=tensors.output_specs(model.task, len(model.class_labels)))

    async def infer(self, request: InferRequest) -> InferResult:
        if len(request.request_id) > MAX_REQUEST_ID:
            raise errors.InvalidArgument(f"id: at most {MAX_REQUEST_ID} characters")
        if len(request.outputs) > MAX_OUTPUTS:
            raise errors.InvalidArgument(f"outputs: at most {MAX_OUTPUTS}")
        table = await self._deploy.route_table(request.model_name, "model_name")
        # Every target of a deployment solves one task, so the primary tells which outputs exist.
        primary = table.primary.model
        names = tensors.check_outputs(list(request.outputs), primary.task, len(primary.class_labels))
        out = await self._deploy.predict(PredictInput(
            deployment=table.deployment.name, request_id=request.request_id, tensors=request.inputs,
            model_version=request.model_version, exclude_probabilities="probabilities" not in names))
        model = out.route.model
        parameters = {"request_id": out.request_id, "registered_version": out.route.version,
                      "model": model.record.resource_name}
        if out.warnings:
            parameters["warnings"] = "; ".join(out.warnings)
        return InferResult(
            model_name=table.deployment.name, model_version=str(version_number(out.route)),
            request_id=request.request_id, raw=bool(request.inputs.raw), parameters=parameters,
            outputs=tensors.encode(out.prediction, model.task, model.class_labels, names))


def _versions(table: RouteTable) -> list[str]:
    numbers = [str(version_number(r)) for r in table.routes]
    # Bare numbers are ambiguous when two registered models share one; then name each NAME@N.
    return numbers if len(set(numbers)) == len(numbers) else [_short(r) for r in table.routes]


def _short(route: Route) -> str:
    name = route.version.split("/")[1]
    return f"{name}@{version_number(route)}"
