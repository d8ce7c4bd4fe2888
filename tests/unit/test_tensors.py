"""Open Inference Protocol tensors ↔ model inputs and outputs (serving/tensors.py), without a server."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from microlearn.inference import grpc_predict_v2_pb2 as pb
from microlearn_grpc import errors
from microlearn_grpc.serving.inputs import InputSchema
from microlearn_grpc.serving.models import Prediction
from microlearn_grpc.serving.tensors import TensorInput, check_outputs, decode, encode, input_specs, output_specs

SCHEMA = InputSchema.from_feature_schema([
    {"name": "age", "type": "numeric"}, {"name": "plan", "type": "categorical", "categories": ["basic", "pro"]},
    {"name": "active", "type": "boolean"}])
Tensor = pb.ModelInferRequest.InferInputTensor


def raw_bytes(values: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def test_raw_columns_of_every_kind_decode_like_typed_columns():
    tensors = [Tensor(name="age", datatype="FP16", shape=[3]), Tensor(name="plan", datatype="BYTES", shape=[3, 1]),
               Tensor(name="active", datatype="UINT8", shape=[3])]
    raw = [np.array([30, np.nan, 41.5], dtype="<f2").tobytes(), raw_bytes(["pro", "basic", "gold"]),
           bytes([1, 0, 1])]
    values, rows, warnings = decode(TensorInput(tensors, raw), SCHEMA, max_rows=10)
    assert rows == 3
    np.testing.assert_array_equal(values["age"], [30.0, np.nan, 41.5])
    assert list(values["plan"]) == ["pro", "basic", "gold"] and list(values["active"]) == [1.0, 0.0, 1.0]
    assert any("'gold'" in w for w in warnings)  # an unseen category warns, as in Predict


def test_typed_matrix_in_feature_order():
    matrix = Tensor(name="input__0", datatype="BYTES", shape=[2, 3])
    matrix.contents.bytes_contents.extend([b"31", b"pro", b"yes", b"", b"basic", b"no"])
    values, rows, _ = decode(TensorInput([matrix], []), SCHEMA, max_rows=10)
    assert rows == 2 and list(values["plan"]) == ["pro", "basic"] and list(values["active"]) == [1.0, 0.0]
    np.testing.assert_array_equal(values["age"], [31.0, np.nan])


@pytest.mark.parametrize("tensors, raw, fragment", [
    ([Tensor(name="plan", datatype="BYTES", shape=[2])], [raw_bytes(["pro"])], "after 1 BYTES elements"),
    ([Tensor(name="plan", datatype="BYTES", shape=[1])], [raw_bytes(["pro", "x"])], "beyond"),
    ([Tensor(name="plan", datatype="BYTES", shape=[1])], [struct.pack("<I", 2) + b"\xff\xfe"], "UTF-8"),
    ([Tensor(name="age", datatype="FP32", shape=[2])], [b"\x00" * 4], "needs 8"),
    ([Tensor(name="age", datatype="FP16", shape=[1])], [], "raw_input_contents"),
    ([Tensor(name="age", datatype="FP64", shape=[-1])], [b""], "negative"),
    ([Tensor(name="age", datatype="FP64", shape=[1]), Tensor(name="age", datatype="FP64", shape=[1])],
     [b"\x00" * 8, b"\x00" * 8], "given twice"),
    ([Tensor(name="age", datatype="FP64", shape=[1]), Tensor(name="plan", datatype="BYTES", shape=[2])],
     [b"\x00" * 8, raw_bytes(["a", "b"])], "same number of rows"),
    ([Tensor(name="x", datatype="FP64", shape=[1, 2])], [b"\x00" * 16], "[rows, 3]"),
    ([Tensor(name="age", datatype="FP64", shape=[1, 2]), Tensor(name="plan", datatype="BYTES", shape=[1])],
     [b"\x00" * 16, raw_bytes(["a"])], "[rows] or [rows, 1]"),
    ([Tensor(name="age", datatype="FP64", shape=[0])], [b""], "no rows"),
    ([Tensor(name="age", datatype="FP64", shape=[11])], [b"\x00" * 88], "at most 10"),
    ([Tensor(name="age", datatype="BYTES", shape=[1])], [raw_bytes(["old"])], "expected numbers"),
])
def test_bad_tensors_are_refused_naming_them(tensors, raw, fragment):
    with pytest.raises(errors.InvalidArgument) as info:
        decode(TensorInput(tensors, raw), SCHEMA, max_rows=10)
    assert fragment in str(info.value)


def test_outputs_raw_and_typed():
    prediction = Prediction(np.array(["no", "yes"], dtype=object), np.array([[0.75, 0.25], [0.5, 0.5]]))
    names = check_outputs([], "binary", 2)
    assert names == ("predictions", "probabilities")
    labels, proba = encode(prediction, "binary", ["no", "yes"], names)
    assert labels.raw_bytes() == raw_bytes(["no", "yes"]) and labels.typed() == [b"no", b"yes"]
    assert proba.shape == (2, 2) and proba.parameters["class_labels"] == '["no", "yes"]'
    assert np.frombuffer(proba.raw_bytes(), dtype="<f8").tolist() == [0.75, 0.25, 0.5, 0.5]
    (values,) = encode(Prediction(np.array([1.5, 2.0]), None), "regression", [], check_outputs([], "regression", 0))
    assert values.datatype == "FP64" and values.contents_field == "fp64_contents"
    with pytest.raises(errors.InvalidArgument, match="'probabilities'"):
        check_outputs(["probabilities"], "regression", 0)
    assert [s.datatype for s in input_specs(SCHEMA)] == ["FP64", "BYTES", "BOOL"]
    assert [s.shape for s in output_specs("multiclass", 3)] == [(-1,), (-1, 3)]
