"""The `microlearn` command: platform commands (up, serve, worker) plus the client commands.

Heavy modules are imported inside commands so `microlearn --help` and the client commands start fast.
"""

from __future__ import annotations

import os
import sys

# pyarrow's allocator (mimalloc) keeps freed pages for a while by default, which doubled the
# server's peak RSS during a large upload (bench/upload_throughput.py); returning them after 10 ms
# costs a few percent of conversion speed. Must be set before pyarrow is first imported.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "10")
os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="MicroLearn: upload a dataset; find, track, deploy and monitor the best model.\n\n"
         "Start the platform with `microlearn up`, then use the client commands (e.g. `microlearn datasets`). "
         "Clients read MICROLEARN_ADDRESS (default 127.0.0.1:50051) and MICROLEARN_TOKEN.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def up(
    data_dir: Path = typer.Option(Path(".microlearn"), "--data-dir", envvar="MICROLEARN_DATA_DIR",
                                  help="Where the embedded PostgreSQL/Redis data, artifacts and logs live."),
    grpc_port: int = typer.Option(50051, "--grpc-port", help="gRPC port; 0 picks a free one."),
    http_port: int = typer.Option(8080, "--http-port", help="REST gateway port; 0 picks a free one."),
    host: str = typer.Option("127.0.0.1", "--host", envvar="MICROLEARN_GRPC_HOST", help="Address to bind."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Number of worker processes."),
    servers: int = typer.Option(1, "--servers", min=1, max=64, help=(
        "Number of gRPC server processes sharing the port (the kernel spreads connections over them); "
        "more than one lets predictions use more than one core.")),
    insecure_local: bool = typer.Option(False, "--insecure-local",
                                        help="Serve without a token (only allowed on a loopback address)."),
) -> None:
    """Start the whole platform: embedded PostgreSQL + Redis (unless MICROLEARN_DATABASE_URL /
    MICROLEARN_REDIS_URL point elsewhere), the gRPC services, the workers and the REST gateway.

    Prints `grpc: HOST:PORT`, `http: URL`, `token: TOKEN` and `ready`; Ctrl-C stops everything cleanly. A second
    `up` with the same --data-dir finds the data (and token) of the first.

    Example: microlearn up --data-dir ~/.microlearn --grpc-port 0
    """
    from microlearn_grpc.config import ConfigError
    from microlearn_grpc.launcher import LaunchError, run_up

    try:
        code = run_up(data_dir=data_dir, grpc_port=grpc_port, http_port=http_port, host=host, workers=workers,
                      insecure_local=insecure_local, servers=servers)
    except (ConfigError, LaunchError) as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@app.command()
def serve(
    service: Optional[list[str]] = typer.Option(None, "--service", "-s",
                                                help="Service to host (repeatable): dataset, selector, trainer, hpo, deploy, inference. Default: all."),
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default MICROLEARN_GRPC_HOST or 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default MICROLEARN_GRPC_PORT or 50051)."),
    insecure_local: bool = typer.Option(False, "--insecure-local", help="Serve without a token (loopback only)."),
) -> None:
    """Run gRPC services in this process against the configured PostgreSQL/Redis/artifact store.

    Needs MICROLEARN_DATABASE_URL, MICROLEARN_REDIS_URL and MICROLEARN_TOKEN (or --insecure-local).

    Example: microlearn serve --service dataset --service trainer --port 50052
    """
    import asyncio
    import logging

    from microlearn_grpc.config import ConfigError, load_settings
    from microlearn_grpc.server import SERVICES, serve as run_serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bad = [s for s in service or [] if s not in SERVICES]
    if bad:
        _fail(f"unknown service {', '.join(bad)}; choose from {', '.join(SERVICES)}")
    try:
        settings = load_settings(grpc_host=host, grpc_port=port, insecure_local=insecure_local or None)
        asyncio.run(run_serve(settings, service or None))
    except (ConfigError, OSError) as exc:
        _fail(str(exc))


@app.command()
def worker(
    concurrency: Optional[int] = typer.Option(
        None, "--concurrency", help="Fits run at once, MAX_PARALLEL_JOBS (default MICROLEARN_WORKER_CONCURRENCY or 2)."),
    gpus: Optional[str] = typer.Option(
        None, "--gpus", help="GPUs to use: 'auto' (detect with nvidia-smi, the default; MICROLEARN_GPUS), "
                             "'none' for CPU only, or device indexes such as '0,1'. Each concurrent job gets "
                             "its own GPU; jobs beyond the GPU count, and estimators without GPU support, use the CPU."),
    threads_per_job: Optional[int] = typer.Option(
        None, "--threads-per-job", min=1, help="CPU threads one fit may use (default: cores / concurrency)."),
    job_timeout: Optional[int] = typer.Option(
        None, "--job-timeout", min=1, help="Seconds before a job is failed as timed out, unless its spec sets "
                                           "timeout_seconds (default MICROLEARN_JOB_TIMEOUT_SECONDS or 86400)."),
    burst: bool = typer.Option(False, "--burst", help="Exit when the queue is empty (for scripts and tests)."),
) -> None:
    """Run an arq worker that executes jobs from the queue (training, trials, batch predictions).

    Start as many as you like, on any host that reaches PostgreSQL, Redis and the artifact store
    (and shares MICROLEARN_MODEL_SIGNING_KEY). Each fit runs in its own child process; the worker
    heartbeats every MICROLEARN_HEARTBEAT_SECONDS, and a reconciler on every worker re-queues jobs
    whose worker stopped heartbeating for MICROLEARN_JOB_LEASE_SECONDS.

    Example: MICROLEARN_DATABASE_URL=... MICROLEARN_REDIS_URL=... microlearn worker --concurrency 4 --gpus auto
    """
    import logging

    from arq.worker import run_worker

    from microlearn_grpc.config import ConfigError, load_settings
    from microlearn_grpc.devices import parse_gpu_list
    from workers.settings import WorkerSettings, redis_settings, worker_options

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(worker_concurrency=concurrency, gpus=gpus, threads_per_job=threads_per_job,
                                 job_timeout_seconds=job_timeout)
        settings.require_backends()
        parse_gpu_list(settings.gpus)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    run_worker(WorkerSettings, redis_settings=redis_settings(settings.redis_url), **worker_options(settings, burst=burst))


@app.command()
def gateway(
    grpc_address: Optional[str] = typer.Option(None, "--grpc-address", envvar="MICROLEARN_ADDRESS",
                                               help="The gRPC server to translate to (default 127.0.0.1:50051)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind the HTTP server to."),
    port: Optional[int] = typer.Option(None, "--port", help="HTTP port (default MICROLEARN_HTTP_PORT or 8080; 0 = free)."),
) -> None:
    """Run the REST gateway: JSON over HTTP in front of the gRPC services, OpenAPI docs at /docs.

    Callers send the same bearer token as gRPC clients (`Authorization: Bearer TOKEN`); the gRPC
    server checks it. `/healthz` needs no token.

    Example: microlearn gateway --grpc-address 127.0.0.1:50051 --port 8080
    """
    from gateway.app import run_gateway
    from microlearn_grpc.config import ConfigError, load_settings

    try:
        settings = load_settings(http_port=port)
    except ConfigError as exc:
        _fail(str(exc))
    run_gateway(grpc_address or "127.0.0.1:50051", host, settings.http_port,
                max_upload_bytes=settings.max_upload_bytes, metrics_settings=settings)


def _mount_client_commands() -> None:
    from microlearn.cli import datasets_app, estimators_app, jobs_app, models_app, train

    app.add_typer(datasets_app, name="datasets", help="Upload, inspect, clean and delete datasets.")
    app.add_typer(estimators_app, name="estimators", help="List the estimators the platform can train.")
    app.command("train")(train)
    app.add_typer(jobs_app, name="jobs", help="Follow, list, inspect and cancel jobs.")
    app.add_typer(models_app, name="models", help="List, inspect, download and delete trained models.")
    from microlearn.cli import deploy_app, predict

    app.add_typer(deploy_app, name="deploy", help="Serve models: create, list, promote, roll back, delete deployments.")
    app.command("predict")(predict)
    from microlearn._cli_automl import automl, select, studies_app

    app.command("automl")(automl)
    app.command("select")(select)
    app.add_typer(studies_app, name="studies", help="Follow, list, inspect and stop hyperparameter studies.")
    from microlearn._cli_pipeline import pipelines_app, run

    app.command("run")(run)
    app.add_typer(pipelines_app, name="pipelines", help="Follow, list, inspect and cancel YAML pipelines.")


def main() -> None:
    _mount_client_commands()
    app(prog_name="microlearn")


if __name__ == "__main__":
    sys.exit(main())
