"""Streaming JSON lines and Parquet reading, with located errors and one schema for all batches.

JSON lines are cut into blocks at line ends by this module (a JSON line cannot hold a raw
line break), so every block is parsed on its own and its first line number is known.
Types: the first block's inferred schema is tried for the whole file; when a later block
brings a new field or needs a wider type (`null -> number`, `int -> double`, `date ->
string`), one inference pass unifies the per-block schemas and the writer restarts with
that schema given to every block. A field that is a number on one line and a string on
another is refused with both line kinds named: guessing which one is meant would
silently change data.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from microlearn_grpc.core._columns import HintApplier, normalize_batch, validate_columns
from microlearn_grpc.core._ingest_base import IngestError, IngestLimits, MiB, Restart, human_bytes

_BLOCK = 4 * MiB
_MAX_LINE = 256 * MiB
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")
_CHANGED = re.compile(r"Column\(([^)]*)\) changed from (\w+) to (\w+)")
_TWICE = re.compile(r"Column\(([^)]*)\) was specified twice in row (\d+)")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "object", list: "array"}.get(type(value), type(value).__name__)


class JsonlSource:
    """Yields the record batches of one JSON lines file, hints applied, or raises a located IngestError."""

    no_rows_message = "the file has no data rows (no JSON objects)"

    def __init__(self, path: Path, hints: dict[str, str], limits: IngestLimits) -> None:
        self.path = Path(path)
        self._hints = hints
        self._limits = limits
        self._schema: pa.Schema | None = None  # unified over all blocks, once inference ran
        self._hinter = HintApplier(hints, self.locate)

    def _blocks(self) -> Iterator[tuple[bytes, int]]:
        """(block, line number of its first line); blocks end at a line end."""
        line, carry = 1, b""
        with open(self.path, "rb") as f:
            while True:
                data = f.read(_BLOCK)
                if not data:
                    if carry.strip():
                        yield carry, line
                    return
                buffer = carry + data
                cut = buffer.rfind(b"\n")
                if cut < 0:
                    if len(buffer) > _MAX_LINE:
                        raise IngestError("limit", f"line {line} is longer than {human_bytes(_MAX_LINE)}")
                    carry = buffer
                    continue
                block, carry = buffer[:cut + 1], buffer[cut + 1:]
                yield block, line
                line += block.count(b"\n")

    @staticmethod
    def _parse(block: bytes, schema: pa.Schema | None) -> pa.Table:
        options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
        return pajson.read_json(io.BytesIO(block), read_options=pajson.ReadOptions(block_size=len(block) + 1),
                                parse_options=options)

    def batches(self) -> Iterator[pa.RecordBatch]:
        schema = self._schema
        rows = 0
        for block, first_line in self._blocks():
            try:
                table = self._parse(block, schema)
            except pa.ArrowInvalid as err:
                _check_syntax(block, first_line)
                if self._schema is None:
                    self._infer()
                    raise Restart("a field changes type after the first block") from None
                raise self._conflict_from(str(err), block, first_line) from None
            if schema is None:
                schema = table.schema
                self._check_columns(table)
            elif len(table.schema) != len(schema):  # a field that earlier blocks did not have
                if self._schema is None:
                    self._infer()
                    raise Restart("a new field appears after the first block")
                raise IngestError("invalid", f"near line {first_line}: the fields changed while reading")
            table = normalize_batch(table, lambda name, line=first_line: f" (in the lines from {line} on)")
            if table.num_rows == 0:
                continue
            table = self._hinter.apply(table, rows)
            rows += table.num_rows
            yield from table.to_batches()

    def _check_columns(self, table: pa.Table) -> None:
        names = normalize_batch(table.schema.empty_table()).column_names
        validate_columns(names, self._hints, self._limits, what="field", where=" in the JSON objects")

    def _infer(self) -> None:
        unified: pa.Schema | None = None
        for block, first_line in self._blocks():
            try:
                schema = self._parse(block, None).schema
            except pa.ArrowInvalid as err:
                _check_syntax(block, first_line)
                raise self._conflict_from(str(err), block, first_line) from None
            unified = schema if unified is None else self._unify(unified, schema, block, first_line)
        self._schema = unified

    def _unify(self, a: pa.Schema, b: pa.Schema, block: bytes, first_line: int) -> pa.Schema:
        fields = {f.name: f for f in a}
        for field in b:
            if field.name not in fields:
                fields[field.name] = field
                continue
            old = fields[field.name]
            try:
                fields[field.name] = pa.unify_schemas([pa.schema([old]), pa.schema([field])],
                                                      promote_options="permissive").field(0)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                pair = {_json_kind(old.type), _json_kind(field.type)}
                if pair <= {"string", "date"}:  # ISO-looking strings in one block, other text in another
                    fields[field.name] = pa.field(field.name, pa.string())
                else:
                    raise self._conflict(field.name, _json_kind(old.type), block, first_line) from None
        return pa.schema(list(fields.values()))

    def _conflict_from(self, message: str, block: bytes, first_line: int) -> IngestError:
        changed = _CHANGED.search(message)
        if changed and changed.group(1):
            return self._conflict(changed.group(1).strip("/").replace("/", "."), None, block, first_line)
        twice = _TWICE.search(message)
        if twice:
            field = twice.group(1).strip("/").replace("/", ".")
            line = _line_of_row(block, first_line, int(twice.group(2)))
            return IngestError("invalid", f"field '{field}' appears twice in the object at line {line}; "
                                          "each field may appear once per line")
        return IngestError("invalid", f"could not read the JSON lines from line {first_line} on: {message}")

    @staticmethod
    def _conflict(field: str, expected: str | None, block: bytes, first_line: int) -> IngestError:
        """Find the first line of `block` where `field` has another JSON type than before."""
        seen = expected
        for number, text in enumerate(block.split(b"\n"), start=first_line):
            if not text.strip():
                continue
            value: object = json.loads(text)
            for part in field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            kind = _kind(value)
            if kind == "null":
                continue
            if seen is None:
                seen = kind
            elif kind != seen and not (seen == "date" and kind == "string"):
                return IngestError("invalid", f"field '{field}' is a {kind} at line {number} but a {seen} on "
                                              "earlier lines; a field must have the same JSON type on every line "
                                              "(null is fine for a missing value)")
        return IngestError("invalid", f"field '{field}' changes type near line {first_line}; a field must have the "
                                      "same JSON type on every line")

    def locate(self, row: int) -> str:
        index = -1
        with open(self.path, "rb") as f:
            for number, text in enumerate(f, start=1):
                if text.strip():
                    index += 1
                    if index == row:
                        return f"line {number}"
        return f"row {row + 1}"


def _json_kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "number"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "date"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_struct(t):
        return "object"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "array"
    if pa.types.is_string(t):
        return "string"
    return str(t)


def _line_of_row(block: bytes, first_line: int, row: int) -> int:
    """The line number of the `row`-th (0-based) non-blank line of `block`."""
    index = -1
    for number, text in enumerate(block.split(b"\n"), start=first_line):
        if text.strip():
            index += 1
            if index == row:
                return number
    return first_line


def _check_syntax(block: bytes, first_line: int) -> None:
    """Raise a located error for the first line of `block` that is not one JSON object."""
    for number, text in enumerate(block.split(b"\n"), start=first_line):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise IngestError("invalid", f"line {number} is not valid JSON: {err.msg} at column {err.colno}; "
                                         "each line must hold one JSON object") from None
        if not isinstance(value, dict):
            raise IngestError("invalid", f"line {number} is a JSON {_kind(value)}, not an object; each line must "
                                         "hold one JSON object like {\"column\": value, ...}")


class ParquetSource:
    """Yields the record batches of one Parquet file, normalized and hints applied."""

    no_rows_message = "the file has no data rows"

    def __init__(self, path: Path, hints: dict[str, str], limits: IngestLimits) -> None:
        self.path = Path(path)
        try:
            with pq.ParquetFile(self.path) as f:
                schema = f.schema_arrow
        except (pa.ArrowException, OSError, ValueError) as err:
            raise IngestError("invalid", f"not a valid Parquet file: {err}") from None
        self._keep = [n for n in schema.names if not _PANDAS_INDEX.fullmatch(n)]
        names = normalize_batch(schema.empty_table().select(self._keep)).column_names
        validate_columns(names, hints, limits)
        self._hinter = HintApplier(hints, lambda row: f"row {row + 1}")

    def batches(self) -> Iterator[pa.RecordBatch]:
        rows = 0
        try:
            with pq.ParquetFile(self.path) as f:
                for batch in f.iter_batches(batch_size=65_536, columns=self._keep):
                    table = normalize_batch(batch)
                    if table.num_rows == 0:
                        continue
                    table = self._hinter.apply(table, rows)
                    rows += table.num_rows
                    yield from table.to_batches()
        except (pa.ArrowException, OSError) as err:
            if isinstance(err, pa.ArrowNotImplementedError):
                raise IngestError("invalid", f"the Parquet file uses a feature that is not supported: {err}") from None
            raise IngestError("invalid", f"not a valid Parquet file: {err} (after {rows} rows)") from None
