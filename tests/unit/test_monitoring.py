"""monitoring/: the Grafana dashboard reads only series MicroLearn exports, and Prometheus and
Grafana are wired to them in docker-compose.yml (token file, provisioning mounts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from microlearn_grpc.metrics import ServerMetrics
from workers.metrics import QueueDepth, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "microlearn.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",), "summary": ("", "_count", "_sum")}


def exported_series() -> set[str]:
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry

    from gateway._metrics import instrument

    gateway = CollectorRegistry()
    instrument(FastAPI(), gateway)
    families = [*ServerMetrics().registry.collect(), *WorkerMetrics("redis://127.0.0.1:1/0", "q").registry.collect(),
                *QueueDepth("redis://127.0.0.1:1/0", "q").describe(), *gateway.collect()]
    return {f.name + suffix for f in families for suffix in SUFFIXES.get(f.type, ("",))}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])] + [
        v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]


def test_dashboard_reads_only_exported_series():
    exported = exported_series()
    used = {name for expr in dashboard_exprs()
            for name in re.findall(r"\b(?:grpc_server|microlearn|process|http)_[a-z_]+", expr)}
    assert used, "the dashboard has no queries"
    assert not used - exported, f"the dashboard queries series nothing exports: {sorted(used - exported)}"
    for wanted in ("grpc_server_handled_total", "grpc_server_handling_seconds_bucket", "microlearn_predictions_total",
                   "microlearn_prediction_latency_seconds_bucket", "microlearn_prediction_errors_total",
                   "microlearn_queue_depth", "microlearn_job_duration_seconds_bucket", "http_requests_total"):
        assert wanted in used, f"no panel shows {wanted}"


def test_dashboard_panels_have_unique_ids_and_a_datasource():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p.get("datasource") for p in dashboard["panels"] if p["type"] != "row")
    datasource = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == dashboard["templating"]["list"][0]["current"]["value"]


def test_compose_wires_prometheus_token_and_grafana_provisioning():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    prometheus = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    token_files = {job["authorization"]["credentials_file"] for job in prometheus["scrape_configs"]
                   if job["job_name"].startswith("microlearn-")}
    assert len(token_files) == 1
    assert token_files.pop() in " ".join(services["prometheus"]["command"])
    assert services["prometheus"]["environment"]["MICROLEARN_TOKEN"].startswith("${MICROLEARN_TOKEN:?")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"] if v.startswith("./")}
    assert mounts["/etc/grafana/provisioning"] == "./monitoring/grafana/provisioning"
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/microlearn.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert (ROOT / mounts[path]).resolve() == DASHBOARD.parent.resolve()
    assert compose["x-microlearn-env"]["MICROLEARN_METRICS_PORT"] == "9100"
