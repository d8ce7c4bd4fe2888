"""Serving throughput and latency: MicroLearn gRPC and REST predict next to `mlflow models serve` and
in-process predict, on the same models, in the same run.

    python bench/serving_throughput.py [--seconds 10] [--clients 16] [--only grpc,rest,...]

Starts `microlearn up --workers 1 --servers N` (embedded Postgres/Redis; --servers: gRPC server processes
sharing the port, 1 by default), uploads a seeded table (8 numeric + 2
categorical features, binary target, 5,000 rows), trains two models through TrainerService:

  * lightgbm: `lightgbm_classifier`, 200 rounds, no early stopping (the issue's reference model);
  * sklearn: `logistic_regression`: the scikit-learn pipeline (imputation, scaling, one-hot encoding,
    LogisticRegression);

registers and deploys each (alias `production`), then measures, for each model:

  * in-process: the downloaded artifact's `predict_proba` on one row (a one-row DataFrame through the
    model's own scikit-learn preprocessing pipeline), one call at a time in this process; then what
    a MicroLearn serving process runs per request (the compiled NumPy transform of an already decoded
    row + the estimator's `predict_proba`): the ceiling of any server. For LightGBM also the raw
    `Booster.predict` (one thread) on an already-encoded row;
  * grpc: `DeployService.Predict` with one row of typed columns, --clients concurrent closed-loop
    clients (a load generator process on the same 2 cores), then one client alone (latency);
  * stream: `PredictStream`, one bidirectional stream per client, one row per message, closed loop;
  * rest: `POST /v1/deployments/{name}/predict` on the gateway, same row, same clients (raw keep-alive
    HTTP/1.1 connections, like `wrk`);
  * mlflow: `mlflow models serve --env-manager local` serving the same artifact as a pyfunc model
    (the wrapper calls the same `predict_proba`), `POST /invocations` with `dataframe_split` JSON;
  * bare (lightgbm only): a bare `grpc.aio` server (bench/_bare_grpc.py) answering the same request with
    a canned response, same load generator: what the RPC framework alone allows on this machine;
  * arrow (lightgbm only): one Predict of 100,000 rows as Arrow IPC, rows/s, against in-process
    `predict_proba` on the same 100,000-row DataFrame (median of --arrow-repeats);
  * alias (lightgbm only): --clients gRPC clients predicting through alias `production` while the
    alias moves to a second version: failed requests, and the time from SetAlias returning until a
    request is answered by the new version.

Prints one JSON line per measurement and a table at the end. Goals (issue 5): gRPC >= 2,000 req/s with
p50 <= 2 ms (idle machine), REST >= 1,000 req/s, Arrow >= 70% of in-process rows/s, alias switch with
0 failed requests and the new version answering within 1 s.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loadgen  # noqa: E402
from _platform import Platform, percentile, training_spec, upload_dataset  # noqa: E402

MODELS = {
    "lightgbm": ("lightgbm_classifier", {"n_estimators": 200}),
    "sklearn": ("logistic_regression", {}),
}
PHASES = ("inprocess", "grpc", "stream", "rest", "mlflow", "arrow", "alias", "bare")


def make_table(rows: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"f{i}": rng.normal(size=rows) for i in range(8)})
    frame["c0"] = rng.choice(["a", "b", "c", "d", "e"], rows)
    frame["c1"] = rng.choice([f"k{i}" for i in range(20)], rows)
    score = frame["f0"] - 0.5 * frame["f1"] + 0.3 * frame["f2"] * frame["f3"] + (frame["c0"] == "a")
    frame["label"] = np.where(score + rng.logistic(size=rows) * 0.5 > 0, "yes", "no")
    return frame


def summary(result: dict[str, Any]) -> dict[str, Any]:
    lat = result["latencies_ms"]
    return {"req_per_s": round(result["requests"] / result["seconds"], 1), "requests": result["requests"],
            "errors": result["errors"], "p50_ms": round(percentile(lat, 50), 3), "p99_ms": round(percentile(lat, 99), 3),
            **({"first_error": result["first_error"]} if result["errors"] else {})}


def run_in_process(target, *args) -> Any:
    """Run a load generator in a fresh process (its own interpreter and GIL)."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(target, *args).result()


class Bench:
    def __init__(self, args: argparse.Namespace, platform: Platform, work: Path) -> None:
        import grpc

        from microlearn import Client

        self.args = args
        self.platform = platform
        self.work = work
        self.channel = grpc.insecure_channel(platform.address, options=[("grpc.max_receive_message_length", 1 << 26),
                                                                        ("grpc.max_send_message_length", 1 << 26)])
        self.client = Client(platform.address, platform.token)
        self.results: list[dict[str, Any]] = []
        self.table = make_table(5000)
        self.row = self.table.drop(columns=["label"]).iloc[[7]].reset_index(drop=True)

    def record(self, **fields: Any) -> None:
        self.results.append(fields)
        print(json.dumps(fields), flush=True)

    # -- setup ------------------------------------------------------------------------------------

    def train_and_deploy(self) -> dict[str, dict[str, Any]]:
        from microlearn.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc

        dataset = upload_dataset(self.channel, self.platform.metadata(), "serving-bench",
                                 self.table.to_csv(index=False).encode())
        self.dataset = dataset.name
        trainer = trainer_pb2_grpc.TrainerServiceStub(self.channel)
        out = {}
        for key, (estimator, params) in MODELS.items():
            spec = training_spec(dataset.name, "label", estimator, hyperparameters=params, seed=1,
                                 max_iterations=params.get("n_estimators", 0))
            job = trainer.StartTraining(trainer_pb2.StartTrainingRequest(spec=spec), metadata=self.platform.metadata(),
                                        timeout=30).job
            job = self.client.get_job(job.name).wait(timeout=600)
            if job.state != "SUCCEEDED":
                raise RuntimeError(f"training {estimator} failed: {job.error}")
            model = job.model_name
            name = f"bench-{key}"
            self.client.deploy(model, name=name, registered_model=name,
                               prediction_log_fraction=self.args.log_fraction)
            self.client.wait_deployment(name)
            out[key] = {"model": model, "deployment": name, "estimator": estimator,
                        "trained": self.client.load_model(model)}
        assert common_pb2  # noqa: S101
        return out

    def server_cpu(self) -> float:
        """CPU seconds used so far by the gRPC server process(es)."""
        import psutil

        servers = [p for p in psutil.Process(self.platform.proc.pid).children() if "serve" in p.cmdline()]
        return sum(t.user + t.system for t in (p.cpu_times() for p in servers))

    def server_cpu_per_request(self, before: float, result: dict[str, Any]) -> dict[str, Any]:
        """The gRPC server process's CPU time per request over the run (warm-up included in both counts
        approximately: the warm-up's requests are not counted, so this slightly overstates)."""
        spent = self.server_cpu() - before
        total = result["requests"] * (1 + self.args.warmup / max(result["seconds"], 1e-9))
        return {"server_cpu_us_per_request": round(spent / max(total, 1) * 1e6)}

    # -- phases -----------------------------------------------------------------------------------

    def inprocess(self, key: str, info: dict[str, Any]) -> None:
        model = info["trained"]
        calls = 2000
        model.predict_proba(self.row)
        began = time.perf_counter()
        for _ in range(calls):
            model.predict_proba(self.row)
        per_call = (time.perf_counter() - began) / calls
        self.record(model=key, path="in-process predict_proba (1 row)", req_per_s=round(1 / per_call, 1),
                    p50_ms=round(per_call * 1000, 3))
        # What a MicroLearn serving process runs per request: the compiled transform + the estimator.
        from microlearn_grpc.serving.inputs import InputSchema, decode_table
        from microlearn_grpc.serving.models import compiled_transform

        import pyarrow as pa

        schema = InputSchema.from_feature_schema(model.manifest["feature_schema"])
        fast = compiled_transform(model, schema, info["model"])
        values, rows, _ = decode_table(pa.Table.from_pandas(self.row), schema, max_rows=1)
        began = time.perf_counter()
        for _ in range(calls):
            model.estimator.predict_proba(fast.transform(values, rows))
        per_call = (time.perf_counter() - began) / calls
        self.record(model=key, path="in-process compiled transform + predict_proba (1 decoded row)",
                    req_per_s=round(1 / per_call, 1), p50_ms=round(per_call * 1000, 3))
        if key == "lightgbm":
            booster = model.estimator._fitted()
            matrix = model.transform(self.row)
            booster.predict(matrix, num_threads=1)
            began = time.perf_counter()
            for _ in range(calls):
                booster.predict(matrix, num_threads=1)
            per_call = (time.perf_counter() - began) / calls
            self.record(model=key, path="in-process raw Booster.predict (1 encoded row)",
                        req_per_s=round(1 / per_call, 1), p50_ms=round(per_call * 1000, 3))

    def grpc(self, key: str, info: dict[str, Any]) -> None:
        from microlearn._deploy import predict_request

        request = predict_request(info["deployment"], self.row, request_id=None, model_version=None,
                                  routing_key=None, probabilities=True, arrow=False)
        for clients in (self.args.clients, 1):  # throughput, then the latency of one client alone
            server = self.server_cpu()
            result = run_in_process(_loadgen.grpc_unary, self.platform.address, self.platform.metadata(),
                                    request.SerializeToString(), clients, self.args.warmup, self.args.seconds)
            self.record(model=key, path=f"MicroLearn gRPC Predict ({clients} client{'s' * (clients > 1)})",
                        **summary(result), **self.server_cpu_per_request(server, result))

    def bare(self, key: str, info: dict[str, Any]) -> None:
        """The RPC framework's own ceiling here: a bare grpc.aio server answering the same request with
        this deployment's real response, pre-serialised (no auth, no decoding, no model, no logging)."""
        from microlearn._deploy import predict_request
        from microlearn.v1 import deploy_pb2_grpc

        request = predict_request(info["deployment"], self.row, request_id=None, model_version=None,
                                  routing_key=None, probabilities=True, arrow=False)
        answer = deploy_pb2_grpc.DeployServiceStub(self.channel).Predict(request, metadata=self.platform.metadata())
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "_bare_grpc.py"),
                                 answer.SerializeToString().hex()], stdout=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline().split(": ")[1])
            result = run_in_process(_loadgen.grpc_unary, f"127.0.0.1:{port}", [], request.SerializeToString(),
                                    self.args.clients, self.args.warmup, self.args.seconds)
            self.record(model=key, path=f"bare grpc.aio server, canned answer ({self.args.clients} clients)",
                        **summary(result))
        finally:
            proc.terminate()
            proc.wait(30)

    def stream(self, key: str, info: dict[str, Any]) -> None:
        from microlearn._deploy import predict_request
        from microlearn.v1 import deploy_pb2

        request = predict_request(info["deployment"], self.row, request_id=None, model_version=None,
                                  routing_key=None, probabilities=True, arrow=False)
        message = deploy_pb2.PredictStreamRequest(deployment=info["deployment"], rows=request.rows)
        result = run_in_process(_loadgen.grpc_stream, self.platform.address, self.platform.metadata(),
                                message.SerializeToString(), self.args.clients, self.args.warmup, self.args.seconds)
        self.record(model=key, path=f"MicroLearn gRPC PredictStream ({self.args.clients} streams)", **summary(result))

    def rest(self, key: str, info: dict[str, Any]) -> None:
        from google.protobuf import json_format

        from microlearn._deploy import predict_request

        request = predict_request(info["deployment"], self.row, request_id=None, model_version=None,
                                  routing_key=None, probabilities=True, arrow=False)
        request.ClearField("deployment")
        body = json_format.MessageToJson(request, indent=None).encode()
        http = self.platform.values["http"].split()[0].removeprefix("http://")
        host, port = http.rsplit(":", 1)
        result = run_in_process(_loadgen.http_post, host, int(port), f"/v1/deployments/{info['deployment']}/predict",
                                body, {"Authorization": f"Bearer {self.platform.token}"}, self.args.clients,
                                self.args.warmup, self.args.seconds)
        self.record(model=key, path=f"MicroLearn REST predict via gateway ({self.args.clients} clients)",
                    **summary(result))

    def mlflow(self, key: str, info: dict[str, Any]) -> None:
        import mlflow.pyfunc
        from _mlflow_wrapper import MicroLearnModel

        artifact = self.client.download_model(info["model"], self.work / f"{key}.tar")
        model_dir = self.work / f"mlflow-{key}"
        mlflow.pyfunc.save_model(str(model_dir), python_model=MicroLearnModel(), artifacts={"model": str(artifact)},
                                 model_config={"sha256": self.client.get_model(info["model"]).sha256},
                                 code_paths=[str(Path(__file__).resolve().parent / "_mlflow_wrapper.py")])
        from microlearn_grpc.embedded import free_port

        port = free_port()
        log = open(self.work / f"mlflow-{key}.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
                                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                # it execs `uvicorn` from PATH: this interpreter's
                                env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
        try:
            body = json.dumps({"dataframe_split": json.loads(self.row.to_json(orient="split", index=False))}).encode()
            deadline = time.monotonic() + 120
            while True:
                try:
                    check = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                                   headers={"Content-Type": "application/json"})
                    answer = json.loads(urllib.request.urlopen(check, timeout=5).read())
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.flush()
                        tail = Path(log.name).read_text()[-3000:]
                        raise RuntimeError(f"mlflow models serve did not start:\n{tail}") from None
                    time.sleep(0.5)
            result = run_in_process(_loadgen.http_post, "127.0.0.1", port, "/invocations", body, {},
                                    self.args.clients, self.args.warmup, self.args.seconds)
            self.record(model=key, path=f"mlflow models serve, --env-manager local ({self.args.clients} clients)",
                        sample_answer=str(answer)[:80], **summary(result))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            log.close()

    def arrow(self, key: str, info: dict[str, Any]) -> None:
        from microlearn._deploy import arrow_ipc
        from microlearn.v1 import deploy_pb2, deploy_pb2_grpc

        rows = self.args.arrow_rows
        frame = make_table(rows, seed=5).drop(columns=["label"])
        model = info["trained"]
        local = []
        for _ in range(self.args.arrow_repeats):
            began = time.perf_counter()
            model.predict_proba(frame)
            local.append(time.perf_counter() - began)
        stub = deploy_pb2_grpc.DeployServiceStub(self.channel)
        remote = []
        for _ in range(self.args.arrow_repeats):
            began = time.perf_counter()
            payload = arrow_ipc(frame)  # the client's encoding is part of the request's cost
            answer = stub.Predict(deploy_pb2.PredictRequest(deployment=info["deployment"], arrow_ipc=payload),
                                  metadata=self.platform.metadata(), timeout=120)
            remote.append(time.perf_counter() - began)
            assert answer.row_count == rows  # noqa: S101
        local_rate, remote_rate = rows / statistics.median(local), rows / statistics.median(remote)
        self.record(model=key, path=f"Arrow IPC batch of {rows:,} rows", in_process_rows_per_s=round(local_rate),
                    grpc_rows_per_s=round(remote_rate), ratio=round(remote_rate / local_rate, 3),
                    server_latency_ms=round(answer.latency_ms, 1))

    def alias(self, key: str, info: dict[str, Any]) -> None:
        from microlearn._deploy import predict_request
        from microlearn.v1 import deploy_pb2, deploy_pb2_grpc

        stub = deploy_pb2_grpc.DeployServiceStub(self.channel)
        name = info["deployment"]
        # A second version of the same registered model: the same estimator trained with another seed.
        estimator, params = MODELS[key]
        job = self.client.train(self.dataset, "label", estimator=estimator, hyperparameters=params, seed=2,
                                max_iterations=params.get("n_estimators", 0)).wait(timeout=600)
        second = self.client.register_model(job.model_name, name)
        request = predict_request(name, self.row, request_id=None, model_version=None, routing_key=None,
                                  probabilities=False, arrow=False)
        first_version = stub.Predict(request, metadata=self.platform.metadata(), timeout=10).model_version
        seconds = self.args.warmup + 6
        outcome: dict[str, Any] = {}

        def switch() -> None:
            time.sleep(self.args.warmup + 2)
            stub.SetAlias(deploy_pb2.SetAliasRequest(model_version=second.name, alias="production"),
                          metadata=self.platform.metadata(), timeout=10)
            moved = time.perf_counter()
            while time.perf_counter() - moved < 10:
                answer = stub.Predict(request, metadata=self.platform.metadata(), timeout=10)
                if answer.model_version != first_version:
                    outcome["new_version_after_s"] = round(time.perf_counter() - moved, 3)
                    outcome["new_version"] = answer.model_version
                    return

        thread = threading.Thread(target=switch)
        thread.start()
        result = run_in_process(_loadgen.grpc_unary, self.platform.address, self.platform.metadata(),
                                request.SerializeToString(), self.args.clients, self.args.warmup, seconds - self.args.warmup)
        thread.join()
        self.record(model=key, path=f"alias switch under load ({self.args.clients} gRPC clients)",
                    failed_requests=result["errors"], requests=result["requests"], first_version=first_version,
                    **outcome)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per load run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each load run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--arrow-rows", type=int, default=100_000)
    parser.add_argument("--arrow-repeats", type=int, default=5)
    parser.add_argument("--servers", type=int, default=1,
                        help="gRPC server processes (`microlearn up --servers N`; they share the port)")
    parser.add_argument("--log-fraction", type=float, default=None,
                        help="the deployments' prediction_log_fraction (default: the platform's, 1.0: log every request)")
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of lightgbm,sklearn")
    args = parser.parse_args()
    phases = [p for p in args.only.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s) {sorted(unknown)}; choose from {PHASES}")
    with tempfile.TemporaryDirectory(prefix="microlearn-serving-bench-") as tmp:
        work = Path(tmp)
        platform = Platform(work / "data", "--workers", "1", "--servers", str(args.servers))
        try:
            bench = Bench(args, platform, work)
            deployed = bench.train_and_deploy()
            wanted = [m for m in args.models.split(",") if m]
            for phase in phases:
                for key in wanted:
                    if phase in ("arrow", "alias", "bare") and key != "lightgbm":
                        continue
                    getattr(bench, phase)(key, deployed[key])
            print_table(bench.results)
        finally:
            platform.stop()


def print_table(results: list[dict[str, Any]]) -> None:
    print("\n| model | path | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for r in results:
        if "req_per_s" in r:
            print(f"| {r['model']} | {r['path']} | {r['req_per_s']:,.0f} | {r.get('p50_ms', '')} | "
                  f"{r.get('p99_ms', '')} | {r.get('errors', '')} |")
    for r in results:
        if "ratio" in r:
            print(f"\n{r['model']} {r['path']}: gRPC {r['grpc_rows_per_s']:,} rows/s vs in-process "
                  f"{r['in_process_rows_per_s']:,} rows/s = {r['ratio']:.0%} (goal >= 70%)")
        if "failed_requests" in r:
            print(f"\n{r['model']} {r['path']}: {r['failed_requests']} failed of {r['requests']:,}; new version "
                  f"answering {r.get('new_version_after_s', 'never')} s after SetAlias (goal: 0 failed, <= 1 s)")


if __name__ == "__main__":
    main()
