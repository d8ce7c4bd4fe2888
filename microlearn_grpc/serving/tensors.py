"""Open Inference Protocol (KServe V2) tensors in and out of a deployment's model.

Inputs come in one of two layouts:
- one tensor per feature column, named like the column, shape [rows] or [rows, 1]: BYTES (UTF-8
  text), BOOL, INT8..INT64, UINT8..UINT64 or FP16/FP32/FP64 (NaN is a missing value);
- a single 2-D tensor [rows, features] (for example Triton's `input__0`) whose columns are the
  model's features in training order.
Elements come as raw little-endian bytes (`raw_input_contents`, what tritonclient sends) or in the
typed field of the tensor's datatype (`contents`). The arrays then pass the same checks as
Predict's typed columns (`inputs.decode_arrays`), so errors and warnings read the same.

Outputs: `predictions` [rows] (BYTES labels for classifiers, FP64 values for regression, INT64
cluster ids) and, for classifiers, `probabilities` [rows, classes] (FP64, in class label order).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from microlearn_grpc import errors
from microlearn_grpc.serving.inputs import InputSchema, decode_arrays

__all__ = ["OUTPUTS", "OutputTensor", "TensorInput", "TensorSpec", "check_outputs", "decode", "encode",
           "input_specs", "output_specs"]

# datatype → (dtype of its raw little-endian elements, its typed `contents` field, how inputs reads it)
DATATYPES: dict[str, tuple[str | None, str | None, str]] = {
    "BOOL": ("|b1", "bool_contents", "bool"),
    "INT8": ("<i1", "int_contents", "int64"),
    "INT16": ("<i2", "int_contents", "int64"),
    "INT32": ("<i4", "int_contents", "int64"),
    "INT64": ("<i8", "int64_contents", "int64"),
    "UINT8": ("<u1", "uint_contents", "int64"),
    "UINT16": ("<u2", "uint_contents", "int64"),
    "UINT32": ("<u4", "uint_contents", "int64"),
    "UINT64": ("<u8", "uint64_contents", "double"),  # may not fit int64
    "FP16": ("<f2", None, "double"),                  # raw only: the protocol has no typed field for it
    "FP32": ("<f4", "fp32_contents", "double"),
    "FP64": ("<f8", "fp64_contents", "double"),
    "BYTES": (None, "bytes_contents", "string"),
}
CONTENT_FIELDS = tuple(dict.fromkeys(f for _, f, _ in DATATYPES.values() if f))
OUTPUTS = ("predictions", "probabilities")
_CANONICAL = {"bool": bool, "int64": "int64", "double": "float64"}
_LISTED = 20  # feature names quoted in a message


@dataclasses.dataclass(frozen=True)
class TensorInput:
    """The tensors of one inference request, as the servicer read them."""

    tensors: Sequence[Any]   # InferInputTensor messages: name, datatype, shape, contents
    raw: Sequence[bytes]     # raw_input_contents: empty, or one entry per tensor in order


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A tensor's metadata: name, datatype and shape (-1 for a variable dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    values: np.ndarray                   # flattened, row-major
    parameters: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def contents_field(self) -> str:
        return DATATYPES[self.datatype][1] or ""

    def raw_bytes(self) -> bytes:
        if self.datatype == "BYTES":
            encoded = [str(v).encode() for v in self.values]
            return b"".join(struct.pack("<I", len(b)) + b for b in encoded)
        return np.ascontiguousarray(self.values, dtype=DATATYPES[self.datatype][0]).tobytes()

    def typed(self) -> list:
        if self.datatype == "BYTES":
            return [str(v).encode() for v in self.values]
        return self.values.tolist()


def _bad(tensor: str, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"input tensor {tensor!r}: {message}")


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _LISTED else "")


def _split_bytes(name: str, raw: bytes, count: int) -> np.ndarray:
    """BYTES raw contents: each element a 4-byte little-endian length, then that many bytes."""
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise _bad(name, f"raw contents end after {i} BYTES elements; its shape needs {count}")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise _bad(name, f"raw contents end inside element {i} (it declares {size} bytes)")
        out[i] = _text(name, raw[offset:offset + size], i)
        offset += size
    if offset != len(raw):
        raise _bad(name, f"raw contents hold {len(raw) - offset} bytes beyond the {count} elements its shape needs")
    return out


def _text(name: str, value: bytes, index: int) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(name, f"element {index} is not UTF-8 text") from None


def _elements(tensor: Any, raw: bytes | None, count: int) -> np.ndarray:
    """The tensor's `count` elements, flattened, as bool, int64, float64 or str (object) values."""
    name, datatype = tensor.name, tensor.datatype
    dtype, field, source = DATATYPES[datatype]
    if raw is not None:
        if datatype == "BYTES":
            return _split_bytes(name, raw, count)
        width = np.dtype(dtype).itemsize
        if len(raw) != count * width:
            raise _bad(name, f"raw contents hold {len(raw)} bytes; shape {list(tensor.shape)} of {datatype} "
                             f"needs {count * width}")
        return np.frombuffer(raw, dtype=dtype).astype(_CANONICAL[source])
    contents = tensor.contents
    if field is None:
        raise _bad(name, f"{datatype} elements can only be sent in raw_input_contents")
    other = next((f for f in CONTENT_FIELDS if f != field and len(getattr(contents, f))), None)
    if other is not None:
        raise _bad(name, f"datatype {datatype} takes contents.{field}, but contents.{other} is set")
    items = getattr(contents, field)
    if len(items) != count:
        raise _bad(name, f"contents.{field} has {len(items)} elements; shape {list(tensor.shape)} needs {count}")
    if datatype == "BYTES":
        return np.array([_text(name, b, i) for i, b in enumerate(items)] or [], dtype=object)
    return np.fromiter(items, dtype=_CANONICAL[source], count=count)


def _column(datatype: str, values: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    source = DATATYPES[datatype][2]
    missing = np.isnan(values) if source == "double" else np.zeros(len(values), dtype=bool)
    return source, values, missing


def _check_header(tensor: Any, position: int) -> list[int]:
    if not tensor.name:
        raise errors.InvalidArgument(f"inputs[{position}].name: required")
    if tensor.datatype not in DATATYPES:
        raise _bad(tensor.name, f"datatype {tensor.datatype!r} is not supported; use one of {', '.join(DATATYPES)}")
    shape = list(tensor.shape)
    if not shape or any(d < 0 for d in shape):
        raise _bad(tensor.name, f"shape {shape} is not a tensor shape (give each dimension, none negative)")
    return shape


def decode(request: TensorInput, schema: InputSchema, *, max_rows: int) -> tuple[dict[str, np.ndarray], int, list[str]]:
    """An inference request's tensors → (feature arrays, row count, warnings)."""
    tensors, raw = list(request.tensors), list(request.raw)
    features = schema.names
    if not tensors:
        raise errors.InvalidArgument("inputs: no input tensors; send one per feature column "
                                     f"({_listed(features)}) or one 2-D tensor [rows, {len(features)}]")
    if raw and len(raw) != len(tensors):
        raise errors.InvalidArgument(f"raw_input_contents: {len(raw)} entries for {len(tensors)} input tensors; "
                                     "send one per tensor, in the order of inputs")
    seen: set[str] = set()
    shapes = []
    for position, tensor in enumerate(tensors):
        shapes.append(_check_header(tensor, position))
        if tensor.name in seen:
            raise _bad(tensor.name, "given twice")
        seen.add(tensor.name)
        if raw and tensor.HasField("contents"):
            raise _bad(tensor.name, "has contents although the request sends raw_input_contents; use one or the other")
    if len(tensors) == 1 and len(shapes[0]) == 2 and tensors[0].name not in features:
        return _decode_matrix(tensors[0], shapes[0], raw[0] if raw else None, schema, max_rows)
    rows = None
    for tensor, shape in zip(tensors, shapes):
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise _bad(tensor.name, f"shape {shape}: a feature column takes shape [rows] or [rows, 1]; or send a "
                                    f"single 2-D tensor [rows, {len(features)}] of the features in order "
                                    f"({_listed(features)})")
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise _bad(tensor.name, f"has {shape[0]} rows but {tensors[0].name!r} has {rows}; all input tensors "
                                    "need the same number of rows")
    _check_rows(rows or 0, max_rows)
    given = {tensor.name: _column(tensor.datatype, _elements(tensor, raw[i] if raw else None, rows or 0))
             for i, tensor in enumerate(tensors)}
    out, warnings = decode_arrays(given, schema, rows or 0)
    return out, rows or 0, warnings


def _check_rows(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise errors.InvalidArgument("inputs: no rows to predict for (the tensors' first dimension is 0)")
    if rows > max_rows:
        raise errors.InvalidArgument(f"inputs: {rows} rows; at most {max_rows} per request")


def _decode_matrix(tensor: Any, shape: list[int], raw: bytes | None, schema: InputSchema, max_rows: int,
                   ) -> tuple[dict[str, np.ndarray], int, list[str]]:
    features = schema.names
    rows, width = shape
    if width != len(features):
        raise _bad(tensor.name, f"shape {shape}: a 2-D input needs one column per feature, [rows, {len(features)}], "
                                f"in this order: {_listed(features)}")
    _check_rows(rows, max_rows)
    values = _elements(tensor, raw, math.prod(shape)).reshape(rows, width)
    given = {feature: _column(tensor.datatype, values[:, j]) for j, feature in enumerate(features)}
    try:
        out, warnings = decode_arrays(given, schema, rows)
    except errors.InvalidArgument as exc:
        raise _bad(tensor.name, str(exc)) from None
    return out, rows, warnings


# -- metadata and outputs ----------------------------------------------------------------------------

_INPUT_TYPES = {"numeric": "FP64", "boolean": "BOOL"}  # every other kind (text, categories, dates) is BYTES


def input_specs(schema: InputSchema) -> list[TensorSpec]:
    return [TensorSpec(name, _INPUT_TYPES.get(kind, "BYTES"), (-1,)) for name, kind in schema.columns]


def _prediction_type(task: str) -> str:
    return {"binary": "BYTES", "multiclass": "BYTES", "clustering": "INT64"}.get(task, "FP64")


def output_specs(task: str, classes: int) -> list[TensorSpec]:
    specs = [TensorSpec("predictions", _prediction_type(task), (-1,))]
    if task in ("binary", "multiclass"):
        specs.append(TensorSpec("probabilities", "FP64", (-1, classes)))
    return specs


def check_outputs(requested: Sequence[str], task: str, classes: int) -> tuple[str, ...]:
    """The outputs to return: those requested (each must exist, once), else all the model has."""
    available = [spec.name for spec in output_specs(task, classes)]
    if not requested:
        return tuple(available)
    for name in requested:
        if name not in available:
            raise errors.InvalidArgument(f"outputs: {name!r} is not an output of this {task} model; it returns "
                                         f"{', '.join(available)}")
    if len(set(requested)) != len(requested):
        raise errors.InvalidArgument("outputs: an output is requested twice")
    return tuple(requested)


def encode(prediction: Any, task: str, class_labels: Sequence[str], names: Sequence[str]) -> list[OutputTensor]:
    """A `models.Prediction` → the requested output tensors, in the order requested."""
    rows = len(prediction.values)
    out = []
    for name in names:
        if name == "predictions":
            datatype = _prediction_type(task)
            values = prediction.values if datatype == "BYTES" else np.asarray(
                prediction.values, dtype="int64" if datatype == "INT64" else "float64")
            out.append(OutputTensor(name, datatype, (rows,), values))
        else:
            proba = np.asarray(prediction.probabilities, dtype="float64")
            out.append(OutputTensor(name, "FP64", (rows, proba.shape[1]), proba.ravel(),
                                    {"class_labels": json.dumps(list(class_labels))}))
    return out
