"""The Open Inference Protocol v2 (`inference.GRPCInferenceService`) on the platform's gRPC port:
driven by `tritonclient[grpc]` itself (raw tensors), and by the generated stubs (typed contents),
against deployments served by DeployService.

tritonclient requires protobuf < 7 while MicroLearn's generated code needs protobuf >= 7.35, so the
client runs in its own virtual environment, `tests/.venv-triton`, created on first use (pip) and
reused while its stamp matches; the test is skipped, saying why, when pip cannot install it.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest

from microlearn.inference import grpc_predict_v2_pb2 as pb
from microlearn.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from microlearn.v1 import common_pb2, dataset_pb2_grpc, deploy_pb2_grpc, trainer_pb2_grpc
from tests.conftest import TOKEN
from tests.integration.deploy_support import deploy_model, predict, serving_table, train_models
from tests.integration.test_datasets import upload
from tests.integration.test_training import AUTH, csv_bytes, spec, start, wait_state

pytestmark = pytest.mark.integration
Code = grpc.StatusCode

TRITON_SPEC = "tritonclient[grpc]"
TRITON_VENV = Path(__file__).resolve().parents[1] / ".venv-triton"
SCRIPT = Path(__file__).with_name("triton_calls.py")


@pytest.fixture(scope="session")
def triton_python() -> Path:
    """The interpreter of a virtual environment with tritonclient[grpc] (created once, then reused)."""
    python = TRITON_VENV / "bin" / "python"
    want = f"{TRITON_SPEC} python{sys.version_info.major}.{sys.version_info.minor}\n"
    stamp = TRITON_VENV / ".microlearn-stamp"
    lock_path = TRITON_VENV.with_name(".venv-triton.lock")
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions must not build it at once
        if python.exists() and stamp.exists() and stamp.read_text() == want:
            return python
        shutil.rmtree(TRITON_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(TRITON_VENV)], check=True, capture_output=True, timeout=300)
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", TRITON_SPEC],
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            shutil.rmtree(TRITON_VENV, ignore_errors=True)
            pytest.skip(f"pip could not install {TRITON_SPEC} into {TRITON_VENV} (no package index reachable?): "
                        f"{(result.stderr or result.stdout)[-500:]}")
        stamp.write_text(want)
    return python


def triton(python: Path, address: str, calls: list[dict]) -> list[dict]:
    result = subprocess.run([str(python), str(SCRIPT)], input=json.dumps({"address": address, "token": TOKEN,
                                                                          "calls": calls}),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def numeric_table(rows: int = 200, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, rows), rng.normal(3, 1, rows)
    return pd.DataFrame({"a": a, "b": b, "y": 2.0 * a - b + rng.normal(0, 0.1, rows)})


@pytest.fixture(scope="module")
def env(platform, workers):
    """A binary classifier deployment (mixed column types) and a regression deployment on two numbers."""
    prefix = uuid.uuid4().hex[:6]
    with grpc.insecure_channel(platform.address) as channel:
        deploy = deploy_pb2_grpc.DeployServiceStub(channel)
        trainer = trainer_pb2_grpc.TrainerServiceStub(channel)
        dataset = upload(dataset_pb2_grpc.DatasetServiceStub(channel), f"numeric-{prefix}",
                         csv_bytes(numeric_table())).dataset
        job = start(trainer, spec(dataset, estimator="linear_regression", target="y"))
        classifier = train_models(channel, 1)[0]
        job = wait_state(trainer, job.name, (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED), 240)
        assert job.state == common_pb2.JOB_STATE_SUCCEEDED, job.error
        names = {"churn": f"churn-{prefix}", "reg": f"reg-{prefix}"}
        for key, model in (("churn", classifier), ("reg", job.outputs[0])):
            deploy_model(deploy, names[key], model)
        yield {"channel": channel, "deploy": deploy, "infer": pb_grpc.GRPCInferenceServiceStub(channel), **names}


def column_inputs(frame: pd.DataFrame, types: dict[str, str]) -> list[dict]:
    return [{"name": c, "datatype": types[c], "shape": [len(frame)], "values": frame[c].tolist()} for c in types]


CHURN_TYPES = {"x1": "FP64", "x2": "FP64", "plan": "BYTES", "active": "BYTES", "signup": "BYTES"}


def test_tritonclient_round_trip_matches_predict(env, platform, triton_python):
    frame = serving_table(6, seed=21)
    expected = predict(env["deploy"], env["churn"], frame)
    expected_proba = np.array([list(c.probabilities) for c in expected.class_probabilities]).T
    numbers = numeric_table(5, seed=8)
    text_in_x1 = column_inputs(frame, {**CHURN_TYPES, "x1": "BYTES"})
    text_in_x1[0]["values"] = ["abc"] * 6  # text in the numeric column x1
    calls = [
        {"op": "live"}, {"op": "ready"}, {"op": "server_metadata"},
        {"op": "model_ready", "model": env["churn"]}, {"op": "model_ready", "model": "no-such-model"},
        {"op": "model_ready", "model": env["churn"], "version": "7"},
        {"op": "model_metadata", "model": env["churn"]},
        {"op": "infer", "model": env["churn"], "id": "req-7", "inputs": column_inputs(frame, CHURN_TYPES)},
        {"op": "infer", "model": env["churn"], "version": "1", "outputs": ["predictions"],
         "inputs": column_inputs(frame, {**CHURN_TYPES, "x2": "FP32"})},
        {"op": "infer", "model": env["reg"], "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [5, 2],
                                                         "values": numbers[["a", "b"]].to_numpy().ravel().tolist()}]},
        {"op": "infer", "model": "no-such-model", "inputs": column_inputs(frame, CHURN_TYPES)},
        {"op": "infer", "model": env["churn"], "inputs": text_in_x1},
        {"op": "infer", "model": env["reg"], "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [5, 3],
                                                         "values": [0.0] * 15}]},
        {"op": "live", "token": "wrong"},
    ]
    (live, ready, server, ready_churn, ready_missing, ready_v7, metadata, full, only_predictions, matrix,
     missing, text_in_number, bad_shape, unauthenticated) = triton(triton_python, platform.address, calls)

    assert live == {"ok": True} and ready == {"ok": True}
    assert server["ok"]["name"] == "microlearn" and server["ok"]["version"]
    assert ready_churn == {"ok": True} and ready_missing == {"ok": False} and ready_v7 == {"ok": False}
    meta = metadata["ok"]
    assert meta["name"] == env["churn"] and meta["versions"] == ["1"] and meta["platform"].startswith("microlearn_")
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["x1"] == "FP64"
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("predictions", "BYTES", ["-1"]), ("probabilities", "FP64", ["-1", "2"])]

    result = full["ok"]
    assert result["model_name"] == env["churn"] and result["model_version"] == "1" and result["id"] == "req-7"
    assert result["raw_outputs"] == 2, "tritonclient sent raw tensors, so the answer must be raw too"
    assert result["outputs"]["predictions"]["values"] == list(expected.labels.values)
    proba = result["outputs"]["probabilities"]
    assert proba["shape"] == [6, 2] and json.loads(proba["parameters"]["class_labels"]) == ["no", "yes"]
    np.testing.assert_allclose(np.array(proba["values"]).reshape(6, 2), expected_proba, rtol=1e-9)
    assert result["parameters"]["registered_version"] == f"registeredModels/{env['churn']}/versions/1"
    assert result["parameters"]["request_id"] == "req-7"

    assert list(only_predictions["ok"]["outputs"]) == ["predictions"]
    assert len(only_predictions["ok"]["outputs"]["predictions"]["values"]) == 6

    regression = matrix["ok"]["outputs"]
    assert list(regression) == ["predictions"] and regression["predictions"]["datatype"] == "FP64"
    approx = 2.0 * numbers["a"] - numbers["b"]
    np.testing.assert_allclose(regression["predictions"]["values"], approx, atol=0.5)

    assert missing["error"]["status"] == "StatusCode.NOT_FOUND" and "no-such-model" in missing["error"]["message"]
    assert text_in_number["error"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "'x1'" in text_in_number["error"]["message"]
    assert bad_shape["error"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "'input__0'" in bad_shape["error"]["message"] and "[rows, 2]" in bad_shape["error"]["message"]
    assert unauthenticated["error"]["status"] == "StatusCode.UNAUTHENTICATED"


def typed_tensor(name: str, datatype: str, values, shape=None) -> pb.ModelInferRequest.InferInputTensor:
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype,
                                                   shape=shape or [len(values)])
    field = {"FP64": "fp64_contents", "FP32": "fp32_contents", "BYTES": "bytes_contents", "INT64": "int64_contents",
             "BOOL": "bool_contents"}[datatype]
    getattr(tensor.contents, field).extend([v.encode() for v in values] if datatype == "BYTES" else values)
    return tensor


def churn_request(env, frame: pd.DataFrame, **kwargs) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(model_name=env["churn"], inputs=[
        typed_tensor("x1", "FP64", frame["x1"].tolist()), typed_tensor("x2", "FP64", frame["x2"].tolist()),
        typed_tensor("plan", "BYTES", frame["plan"].tolist()), typed_tensor("active", "BYTES", frame["active"].tolist()),
        typed_tensor("signup", "BYTES", frame["signup"].tolist())], **kwargs)


def test_typed_contents_in_typed_contents_out(env):
    frame = serving_table(4, seed=5)
    expected = predict(env["deploy"], env["churn"], frame)
    response = env["infer"].ModelInfer(churn_request(env, frame, id="typed-1"), metadata=AUTH, timeout=30)
    assert not response.raw_output_contents and response.id == "typed-1" and response.model_version == "1"
    by_name = {o.name: o for o in response.outputs}
    assert [v.decode() for v in by_name["predictions"].contents.bytes_contents] == list(expected.labels.values)
    assert list(by_name["probabilities"].shape) == [4, 2]
    assert len(by_name["probabilities"].contents.fp64_contents) == 8

    numbers = numeric_table(3, seed=4)
    matrix = typed_tensor("input__0", "FP64", numbers[["a", "b"]].to_numpy().ravel().tolist(), shape=[3, 2])
    response = env["infer"].ModelInfer(pb.ModelInferRequest(model_name=env["reg"], inputs=[matrix]), metadata=AUTH,
                                       timeout=30)
    assert len(response.outputs[0].contents.fp64_contents) == 3 and response.outputs[0].datatype == "FP64"
    # One tensor per column, a missing one (b) only warns, as Predict does.
    response = env["infer"].ModelInfer(pb.ModelInferRequest(model_name=env["reg"], inputs=[
        typed_tensor("a", "FP64", [0.5, 1.0])]), metadata=AUTH, timeout=30)
    assert "missing feature column" in response.parameters["warnings"].string_param


def infer_error(env, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        env["infer"].ModelInfer(request, metadata=AUTH, timeout=30)
    return info.value


def test_bad_requests_are_refused_naming_the_tensor(env):
    frame = serving_table(2, seed=1)
    request = churn_request(env, frame)
    request.inputs[0].contents.fp32_contents.append(1.0)
    err = infer_error(env, request)
    assert err.code() == Code.INVALID_ARGUMENT and "'x1'" in err.details() and "fp32_contents" in err.details()

    request = churn_request(env, frame)
    request.inputs[1].shape[:] = [3]
    err = infer_error(env, request)
    assert err.code() == Code.INVALID_ARGUMENT and "'x2'" in err.details()

    request = churn_request(env, frame)
    request.inputs[2].datatype = "STRING"
    err = infer_error(env, request)
    assert err.code() == Code.INVALID_ARGUMENT and "'plan'" in err.details() and "STRING" in err.details()

    raw = pb.ModelInferRequest(model_name=env["reg"], inputs=[pb.ModelInferRequest.InferInputTensor(
        name="a", datatype="FP32", shape=[2])], raw_input_contents=[b"\x00" * 7])
    err = infer_error(env, raw)
    assert err.code() == Code.INVALID_ARGUMENT and "'a'" in err.details() and "8" in err.details()

    raw.raw_input_contents[:] = [b"\x00" * 8, b"\x00" * 8]
    err = infer_error(env, raw)
    assert err.code() == Code.INVALID_ARGUMENT and "raw_input_contents" in err.details()

    request = churn_request(env, frame)
    request.outputs.add(name="scores")
    err = infer_error(env, request)
    assert err.code() == Code.INVALID_ARGUMENT and "'scores'" in err.details()

    request = churn_request(env, frame, model_version="9")
    err = infer_error(env, request)
    assert err.code() == Code.INVALID_ARGUMENT and "9" in err.details()

    err = infer_error(env, pb.ModelInferRequest(model_name=env["churn"]))
    assert err.code() == Code.INVALID_ARGUMENT and "inputs" in err.details()
    err = infer_error(env, pb.ModelInferRequest(model_name="missing-deployment", inputs=churn_request(env, frame).inputs))
    assert err.code() == Code.NOT_FOUND
    err = infer_error(env, pb.ModelInferRequest(model_name=""))
    assert err.code() == Code.INVALID_ARGUMENT and "model_name" in err.details()

    with pytest.raises(grpc.RpcError) as info:
        env["infer"].ModelMetadata(pb.ModelMetadataRequest(name="missing-deployment"), metadata=AUTH, timeout=30)
    assert info.value.code() == Code.NOT_FOUND
