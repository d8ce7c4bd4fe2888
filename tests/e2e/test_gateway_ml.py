"""The REST gateway's selection, jobs, models and studies routes, in-process over a real gRPC server
and real workers: JSON bodies in, the RPCs' messages out, events as Server-Sent Events."""

from __future__ import annotations

import json
import time

import pytest
from sklearn.datasets import load_breast_cancer

from tests.e2e.test_gateway import assert_error, gateway, upload

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def sse(client, path: str, **params) -> list[dict]:
    events = []
    async with client.stream("GET", path, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


async def test_train_follow_compare_and_search_over_rest(platform, workers, unique_name):
    csv = load_breast_cancer(as_frame=True).frame.to_csv(index=False).encode()
    async with gateway(platform.address) as client:
        dataset = (await upload(client, unique_name, csv)).json()["dataset"]
        selected = await client.post("/v1/select-models", json={"dataset": dataset["name"], "target": "target"})
        assert selected.status_code == 200, selected.text
        assert selected.json()["task"] == "TASK_TYPE_BINARY_CLASSIFICATION"
        estimators = (await client.get("/v1/estimators", params={"task": "TASK_TYPE_REGRESSION"})).json()
        assert estimators["estimators"] and all("TASK_TYPE_REGRESSION" in e["supported_tasks"]
                                                for e in estimators["estimators"])

        names = []
        for estimator in ("logistic_regression", "gaussian_nb"):
            started = await client.post("/v1/jobs", json={"spec": {"dataset": dataset["name"], "target": "target",
                                                                   "estimator": estimator}})
            assert started.status_code == 200, started.text
            names.append(started.json()["job"]["name"])
        events = await sse(client, f"/v1/{names[0]}/events")
        states = [e["state_change"]["state"] for e in events if "state_change" in e]
        assert states[0] == "JOB_STATE_PENDING" and states[-1] == "JOB_STATE_SUCCEEDED"
        models = []
        for name in names:
            deadline = time.monotonic() + 60
            while (job := (await client.get(f"/v1/{name}")).json()["job"])["state"] != "JOB_STATE_SUCCEEDED":
                assert time.monotonic() < deadline and job["state"] in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"), job
                time.sleep(0.2)
            models.append(job["outputs"][0])
        model = (await client.get(f"/v1/{models[0]}")).json()["model"]
        assert model["estimator"] == "logistic_regression" and "roc_auc" in model["metrics"]
        table = (await client.post("/v1/models/compare", json={"models": models})).json()
        assert [r["model"] for r in table["rows"]] == models and table["metrics"][0] == "roc_auc"
        listed = (await client.get("/v1/jobs", params={"state": "JOB_STATE_SUCCEEDED", "page_size": 1000})).json()
        assert set(names) <= {j["name"] for j in listed["jobs"]}

        study = (await client.post("/v1/studies", json={"spec": {
            "dataset": dataset["name"], "target": "target", "candidates": ["logistic_regression"],
            "budget": {"max_trials": 2}}})).json()["study"]
        study_events = await sse(client, f"/v1/{study['name']}/events")
        assert study_events[-1]["state_change"]["state"] == "STUDY_STATE_SUCCEEDED"
        done = (await client.get(f"/v1/{study['name']}")).json()["study"]
        assert done["state"] == "STUDY_STATE_SUCCEEDED" and done["best_model"].startswith("models/")
        best = (await client.get(f"/v1/{study['name']}/best-trial")).json()
        assert best["final"] and best["trial"]["model"] == done["best_model"]
        trials = (await client.get(f"/v1/{study['name']}/trials", params={"order_by": "number"})).json()
        assert [t["number"] for t in trials["trials"]] == [0, 1]
        stopped = (await client.post(f"/v1/{study['name']}/stop", json={})).json()["study"]
        assert stopped["state"] == "STUDY_STATE_SUCCEEDED"
        deleted = await client.delete(f"/v1/{models[1]}")
        assert deleted.status_code == 200 and (await client.get(f"/v1/{models[1]}")).status_code == 404


async def test_rest_errors_carry_the_grpc_status(platform):
    async with gateway(platform.address) as client:
        assert_error(await client.get("/v1/jobs/job-nope"), 404, "NOT_FOUND")
        assert_error(await client.get("/v1/studies/nope"), 404, "NOT_FOUND")
        assert_error(await client.post("/v1/jobs", json={"spec": {"dataset": ""}}), 400, "INVALID_ARGUMENT",
                     "spec.dataset")
        assert_error(await client.post("/v1/jobs", json={"spec": {"no_such_field": 1}}), 400, "INVALID_ARGUMENT",
                     "invalid JSON body")
        assert_error(await client.get("/v1/jobs", params={"state": "DONE"}), 400, "INVALID_ARGUMENT", "state")
        assert_error(await client.get("/v1/jobs/job-nope/events"), 404, "NOT_FOUND")
        assert_error(await client.post("/v1/models/compare", json={"models": ["models/x"]}), 400,
                     "INVALID_ARGUMENT", "give 2-50 models")
    async with gateway(platform.address, headers={}) as anonymous:
        assert_error(await anonymous.get("/v1/jobs"), 401, "UNAUTHENTICATED")


async def test_register_deploy_and_predict_over_rest(platform, workers, unique_name):
    frame = load_breast_cancer(as_frame=True).frame
    async with gateway(platform.address) as client:
        dataset = (await upload(client, unique_name, frame.to_csv(index=False).encode())).json()["dataset"]
        job = (await client.post("/v1/jobs", json={"spec": {"dataset": dataset["name"], "target": "target",
                                                           "estimator": "logistic_regression"}})).json()["job"]
        events = await sse(client, f"/v1/{job['name']}/events")
        assert events[-1]["state_change"]["state"] == "JOB_STATE_SUCCEEDED"
        model = (await client.get(f"/v1/{job['name']}")).json()["job"]["outputs"][0]
        name = unique_name.replace("_", "-")[:40].strip("-")
        version = await client.post(f"/v1/registered-models/{name}/versions",
                                    json={"model": model, "aliases": ["production"]})
        assert version.status_code == 200, version.text
        created = await client.post("/v1/deployments", json={
            "deployment_id": name, "deployment": {"traffic": [{"model_version": f"{name}@production",
                                                                "percent": 100}]}})
        assert created.status_code == 200, created.text
        deadline = time.monotonic() + 60
        while (state := (await client.get(f"/v1/deployments/{name}")).json()["deployment"]["state"]) \
                != "DEPLOYMENT_STATE_READY":
            assert time.monotonic() < deadline and state != "DEPLOYMENT_STATE_FAILED", state
            time.sleep(0.1)
        rows = frame.drop(columns=["target"]).head(5)
        body = {"rows": {"columns": [{"name": c, "doubles": {"values": rows[c].tolist()}} for c in rows.columns]}}
        answer = await client.post(f"/v1/deployments/{name}/predict", json=body)
        assert answer.status_code == 200, answer.text
        predicted = answer.json()
        assert len(predicted["labels"]["values"]) == 5 and set(predicted["labels"]["values"]) <= {"0", "1"}
        assert len(predicted["class_probabilities"]) == 2 and predicted["model_version"]
        bad = {"rows": {"columns": [{"name": "mean radius", "strings": {"values": ["big"] * 5}}]}}
        assert_error(await client.post(f"/v1/deployments/{name}/predict", json=bad), 400, "INVALID_ARGUMENT",
                     "mean radius")
        assert_error(await client.post("/v1/deployments/nope/predict", json=body), 404, "NOT_FOUND")
        # The predict route is answered before FastAPI's routing (gateway._fast_predict): same contract.
        path = f"/v1/deployments/{name}/predict"
        assert_error(await client.post(path, content=b"{not json"), 400, "INVALID_ARGUMENT", "invalid JSON body")
        assert_error(await client.post(path, json=[1]), 400, "INVALID_ARGUMENT", "expected a JSON object")
        assert_error(await client.post(path, json={**body, "colour": 1}), 400, "INVALID_ARGUMENT", "colour")
        assert_error(await client.post(path, content=b" " * (2 << 20)), 413, "RESOURCE_EXHAUSTED", "limit")
        unauthenticated = await client.post(path, json=body, headers={"Authorization": ""})
        assert_error(unauthenticated, 401, "UNAUTHENTICATED")
        assert unauthenticated.headers["www-authenticate"] == "Bearer"
        assert (await client.delete(f"/v1/deployments/{name}")).status_code == 200
