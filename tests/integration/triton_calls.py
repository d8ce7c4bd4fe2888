"""Runs Open Inference Protocol calls with `tritonclient.grpc`, as a user's own program would.

Executed by tests/integration/test_inference.py with the interpreter of a separate virtual
environment (tritonclient needs protobuf < 7, MicroLearn's generated code protobuf >= 7.35), so it
imports nothing from MicroLearn. Reads {"address", "token", "calls": [...]} as JSON on stdin and
prints one JSON result per call: {"ok": ...} or {"error": {"status", "message"}}.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException, triton_to_np_dtype


def _inputs(specs: list[dict]) -> list:
    inputs = []
    for spec in specs:
        tensor = triton.InferInput(spec["name"], spec["shape"], spec["datatype"])
        if spec["datatype"] == "BYTES":
            data = np.array([str(v).encode() for v in spec["values"]], dtype=np.object_)
        else:
            data = np.array(spec["values"], dtype=triton_to_np_dtype(spec["datatype"]))
        tensor.set_data_from_numpy(data.reshape(spec["shape"]))
        inputs.append(tensor)
    return inputs


def _infer(client, call: dict, headers: dict) -> dict:
    outputs = [triton.InferRequestedOutput(name) for name in call.get("outputs", [])] or None
    result = client.infer(call["model"], _inputs(call["inputs"]), model_version=call.get("version", ""),
                          outputs=outputs, request_id=call.get("id", ""), headers=headers)
    response = result.get_response()
    tensors = {}
    for output in response.outputs:
        array = result.as_numpy(output.name)
        values = [v.decode() for v in array.ravel()] if output.datatype == "BYTES" else array.ravel().tolist()
        tensors[output.name] = {"datatype": output.datatype, "shape": list(array.shape), "values": values,
                                "parameters": {k: p.string_param for k, p in output.parameters.items()}}
    return {"model_name": response.model_name, "model_version": response.model_version, "id": response.id,
            "raw_outputs": len(response.raw_output_contents), "outputs": tensors,
            "parameters": {k: p.string_param for k, p in response.parameters.items()}}


def run(call: dict, client, headers: dict):
    op = call["op"]
    if op == "live":
        return client.is_server_live(headers=headers)
    if op == "ready":
        return client.is_server_ready(headers=headers)
    if op == "server_metadata":
        return client.get_server_metadata(headers=headers, as_json=True)
    if op == "model_ready":
        return client.is_model_ready(call["model"], call.get("version", ""), headers=headers)
    if op == "model_metadata":
        return client.get_model_metadata(call["model"], call.get("version", ""), headers=headers, as_json=True)
    if op == "infer":
        return _infer(client, call, headers)
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    spec = json.load(sys.stdin)
    results = []
    with triton.InferenceServerClient(spec["address"]) as client:
        for call in spec["calls"]:
            headers = {"authorization": f"Bearer {call.get('token', spec['token'])}"}
            try:
                results.append({"ok": run(call, client, headers)})
            except InferenceServerException as exc:
                results.append({"error": {"status": exc.status(), "message": exc.message()}})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
