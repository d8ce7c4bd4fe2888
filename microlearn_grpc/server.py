"""The gRPC server: all five services and the Open Inference Protocol v2 (or a chosen subset),
health checking and reflection.

Services whose issue has not landed yet are registered with handlers that answer UNIMPLEMENTED,
so clients, `grpcurl list` and `buf curl --list-methods` see the whole contract from day one.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from microlearn_grpc.auth import TokenAuthInterceptor
from microlearn_grpc.bootstrap import Container
from microlearn_grpc.config import Settings
from microlearn_grpc.metrics import RpcMetricsInterceptor, endpoint_from_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    key: str          # CLI name: `microlearn serve --service KEY`
    module: str       # generated module under `python_package`
    service: str      # proto service name
    proto_package: str = "microlearn.v1"
    python_package: str = "microlearn.v1"


SERVICES: dict[str, ServiceSpec] = {
    spec.key: spec for spec in (
        ServiceSpec("dataset", "dataset", "DatasetService"),
        ServiceSpec("selector", "selector", "SelectorService"),
        ServiceSpec("trainer", "trainer", "TrainerService"),
        ServiceSpec("hpo", "hpo", "HPOService"),
        ServiceSpec("deploy", "deploy", "DeployService"),
        ServiceSpec("pipeline", "pipeline", "PipelineService"),
        # The Open Inference Protocol v2 (KServe/Triton clients), on the same port as the rest.
        ServiceSpec("inference", "grpc_predict_v2", "GRPCInferenceService", "inference", "microlearn.inference"),
    )
}


def full_name(spec: ServiceSpec) -> str:
    return f"{spec.proto_package}.{spec.service}"


def _unimplemented_servicer(spec: ServiceSpec):
    """An instance of the generated servicer whose every method answers UNIMPLEMENTED (async)."""
    pb2 = importlib.import_module(f"{spec.python_package}.{spec.module}_pb2")
    grpc_mod = importlib.import_module(f"{spec.python_package}.{spec.module}_pb2_grpc")
    base = getattr(grpc_mod, f"{spec.service}Servicer")
    methods = {}
    for method in pb2.DESCRIPTOR.services_by_name[spec.service].methods:
        message = (f"{spec.service}.{method.name} is not implemented in this MicroLearn version yet; "
                   "see README 'Status' for what is available")

        async def handler(self, request, context, _message=message):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, _message)
        methods[method.name] = handler
    return type(f"Unimplemented{spec.service}", (base,), methods)()


def _implemented(container: Container) -> dict[str, Callable[[], object]]:
    from microlearn_grpc.services.dataset_servicer import DatasetServicer
    from microlearn_grpc.services.deploy_servicer import DeployServicer
    from microlearn_grpc.services.hpo_servicer import HPOServicer
    from microlearn_grpc.services.inference_servicer import InferenceServicer
    from microlearn_grpc.services.pipeline_servicer import PipelineServicer
    from microlearn_grpc.services.selector_servicer import SelectorServicer
    from microlearn_grpc.services.trainer_servicer import TrainerServicer

    return {"dataset": lambda: DatasetServicer(container.datasets),
            "selector": lambda: SelectorServicer(container.selection),
            "trainer": lambda: TrainerServicer(container.training),
            "hpo": lambda: HPOServicer(container.studies),
            "deploy": lambda: DeployServicer(container.deploy, container.batch_predictions),
            "inference": lambda: InferenceServicer(container.inference),
            "pipeline": lambda: PipelineServicer(container.pipelines)}


def server_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.bdp_probe", 0),
        # gRPC sets SO_REUSEPORT by default, so a second server on a taken port would silently share its
        # traffic; only the processes of one `microlearn up --servers N` group share a port on purpose.
        ("grpc.so_reuseport", int(settings.server_processes > 1)),
    ]


async def start_server(settings: Settings, container: Container, services: Iterable[str] | None = None,
                       *, port: int | None = None) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Create, register and start the server; returns it, the bound port and the health servicer."""
    keys = list(services or SERVICES)
    unknown = [k for k in keys if k not in SERVICES]
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    interceptors = [] if settings.insecure_local else [TokenAuthInterceptor(settings.token or "")]
    if container.metrics is not None:  # first, so it also counts the calls the token check refuses
        interceptors.insert(0, RpcMetricsInterceptor(container.metrics))
    server = grpc.aio.server(interceptors=interceptors, options=server_options(settings),
                             maximum_concurrent_rpcs=None)
    implemented = _implemented(container)
    for key in keys:
        spec = SERVICES[key]
        servicer = implemented[key]() if key in implemented else _unimplemented_servicer(spec)
        grpc_mod = importlib.import_module(f"{spec.python_package}.{spec.module}_pb2_grpc")
        getattr(grpc_mod, f"add_{spec.service}Servicer_to_server")(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [full_name(SERVICES[k]) for k in keys]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    address = f"{settings.grpc_host}:{settings.grpc_port if port is None else port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # grpc.aio raises where the sync server returned 0
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {address}: address in use (another server on this port?) or not permitted")
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound, health_servicer


async def serve(settings: Settings, services: list[str] | None = None) -> None:
    """Run until SIGTERM/SIGINT, then drain in-flight RPCs for up to 10 s."""
    from microlearn_grpc import bootstrap

    settings.check_auth()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    container = await bootstrap.build(settings)
    endpoint = None
    try:
        server, port, health_servicer = await start_server(settings, container, services)
        print(f"grpc: {settings.grpc_host}:{port}", flush=True)
        if container.metrics is not None:
            endpoint = endpoint_from_settings(settings, container.metrics.registry)
            print(f"metrics: {endpoint.url if endpoint else 'off'}", flush=True)
        await stop.wait()
        await health_servicer.enter_graceful_shutdown()
        await server.stop(grace=10)
    finally:
        if endpoint is not None:
            endpoint.close()
        await container.close()
