"""Streaming CSV reading on pyarrow, with located errors and column types that hold for every block.

Schema drift. `pyarrow.csv.open_csv` infers column types from the first block only, so a
column that is all integers for the first few MiB and then has `abc` (or `1.5`, or is
empty at first and then has values) fails in a later block with no row number. Reading
is optimistic: most files are consistent and are read once, at full speed. On the first
such conversion error the source makes one extra pass reading every column as text and,
per block, checks vectorized casts (`int64 -> double -> string`, `date -> timestamp ->
string`, `null -> first type that fits`) to find, for every column, the narrowest type
that fits all blocks; then it asks the writer to restart with those types pinned
(`Restart`). If pyarrow's converter and `pyarrow.compute.cast` ever disagree on a value,
the failing column is widened to string and the read restarts again — each restart widens
a column for good, so this ends. Pinning also keeps a later restart (larger blocks) from
inferring differently.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from microlearn_grpc.core._columns import STRING_HINTS, HintApplier, validate_columns
from microlearn_grpc.core._ingest_base import IngestError, IngestLimits, MiB, Restart, SourceFormat, human_bytes
from microlearn_grpc.core._tail import read_up_to
from microlearn_grpc.core._text_scan import TextStats, scan_file

BLOCK_SIZE = 1 * MiB
_MAX_BLOCK_SIZE = 256 * MiB  # a single row may not be longer than this
_HEADER_MAX = 16 * MiB
_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (.+?): invalid value '(.*)'", re.S)


def read_header(path: Path, opener: Callable[[], BinaryIO] | None = None) -> list[str]:
    """The column names, read with the `csv` module (quotes, embedded commas) from the first record."""
    size = 64 * 1024
    while True:
        with (opener() if opener else open(path, "rb")) as f:
            raw = read_up_to(f, size + 1)
        complete = len(raw) <= size
        header = _first_record(raw[:size], complete)
        if header is not None:
            return header
        if size >= _HEADER_MAX:
            raise IngestError("limit", f"the header row is longer than {human_bytes(_HEADER_MAX)}")
        size *= 4


def _first_record(raw: bytes, complete: bool) -> list[str] | None:
    """The first non-blank record of `raw`, or None when it may continue past `raw`."""
    text = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")
    lines = io.StringIO(text, newline="").readlines()
    consumed = 0

    def feed() -> Iterator[str]:
        nonlocal consumed
        for line in lines:
            consumed += 1
            yield line

    try:
        for record in csv.reader(feed(), strict=False):
            if record:  # blank lines before the header are skipped, as pyarrow does
                if not complete and consumed == len(lines) and not lines[-1].endswith(("\n", "\r")):
                    return None
                return record
    except csv.Error as err:
        if not complete:
            return None
        raise IngestError("invalid", f"cannot read the header row (line 1): {err}") from None
    if not complete:
        return None
    raise IngestError("invalid", "the file has no header row: it contains only blank lines")


class CsvSource:
    """Yields the record batches of one CSV file, hints applied, or raises a located IngestError."""

    no_rows_message = "the file has a header but no data rows"

    def __init__(self, path: Path, stats: TextStats | None, hints: dict[str, str], limits: IngestLimits,
                 opener: Callable[[], BinaryIO] | None = None) -> None:
        self.path = Path(path)
        # `opener` reads a file still being uploaded (see _tail.py); errors are located in the
        # part already on disk, which always holds the failing row.
        self._opener = opener
        self.stats = stats if stats is not None else scan_file(self.path, SourceFormat.CSV)
        self.names = read_header(self.path, opener)
        validate_columns(self.names, hints, limits, where=" in the header row")
        if len(self.names) == 1 and (";" in self.names[0] or "\t" in self.names[0]):
            separator = "semicolons" if ";" in self.names[0] else "tabs"
            raise IngestError("invalid", f"the header row has one column, '{self.names[0][:60]}', which contains "
                                         f"{separator}: only comma-separated files are supported; save the file "
                                         "with commas as the separator")
        # Hinted columns are read as text: string hints keep leading zeros and such exactly as
        # written, numeric/datetime hints are converted batch by batch so a bad value has a row.
        self._forced = {name: pa.string() for name, kind in hints.items() if kind != "boolean"}
        self._pinned: dict[str, pa.DataType] = {}
        self._inferred = False
        self._block_size = BLOCK_SIZE
        self._bad_row: tuple[int | None, int, int, str] | None = None
        self._hinter = HintApplier({n: k for n, k in hints.items() if k not in STRING_HINTS}, self.locate)

    # -- reading ---------------------------------------------------------------------------

    def _open(self, column_types: dict[str, pa.DataType]) -> pacsv.CSVStreamingReader:
        self._bad_row = None
        return pacsv.open_csv(
            self._opener() if self._opener is not None else self.path,
            read_options=pacsv.ReadOptions(block_size=self._block_size, use_threads=True),
            parse_options=pacsv.ParseOptions(newlines_in_values=self.stats.quoted_newlines,
                                             invalid_row_handler=self._on_invalid_row),
            convert_options=pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=True))

    def _on_invalid_row(self, row: pacsv.InvalidRow) -> str:
        if self._bad_row is None:
            self._bad_row = (row.number, row.expected_columns, row.actual_columns, row.text)
        return "error"

    def batches(self) -> Iterator[pa.RecordBatch]:
        rows = 0
        schema = None
        try:
            reader = self._open({**self._pinned, **self._forced})
            schema = reader.schema
            if schema.names != self.names:
                raise IngestError("invalid", f"the header row could not be read consistently (found columns "
                                             f"{schema.names[:10]}, expected {self.names[:10]})")
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                table = self._hinter.apply(pa.Table.from_batches([batch]), rows)
                rows += batch.num_rows
                yield from table.to_batches()
        except pa.ArrowInvalid as err:
            self._fail(err, schema)

    def _fail(self, err: pa.ArrowInvalid, schema: pa.Schema | None) -> None:
        message = str(err)
        if self._bad_row is not None:
            raise self._ragged_error() from None
        conversion = _CONVERSION.search(message)
        if conversion and schema is not None:
            name = self.names[int(conversion.group(1))]
            if not self._inferred:
                self._inferred = True
                self._pinned = self._infer_types(schema)
                if str(self._pinned[name]) == conversion.group(2):  # pyarrow rejects what a cast accepted
                    self._pinned[name] = pa.string()
            else:
                self._pinned[name] = pa.string()
            raise Restart(f"column '{name}' changes type after the first block")
        if "straddl" in message:  # one row does not fit in a block
            if self._block_size < _MAX_BLOCK_SIZE:
                self._block_size *= 8
                if not self._inferred and schema is not None:
                    self._pinned = {f.name: f.type for f in schema}
                raise Restart("a row is longer than a block")
            raise IngestError("limit", f"a CSV row is longer than {human_bytes(_MAX_BLOCK_SIZE)}")
        if "Empty CSV file" in message:
            raise IngestError("invalid", "the file is empty") from None
        raise IngestError("invalid", f"could not parse the CSV file: {message}") from None

    def _infer_types(self, first: pa.Schema) -> dict[str, pa.DataType]:
        """One pass with every column as text: the narrowest type per column that fits every block."""
        types = {f.name: f.type for f in first}
        open_columns = {n for n, t in types.items() if n not in self._forced and not _is_string(t)}
        try:
            for batch in self._open({n: pa.string() for n in self.names}):
                for name in list(open_columns):
                    widened = _widen(batch.column(name), types[name])
                    types[name] = widened
                    if _is_string(widened):
                        open_columns.discard(name)
        except pa.ArrowInvalid as err:
            if self._bad_row is not None:
                raise self._ragged_error() from None
            raise IngestError("invalid", f"could not parse the CSV file: {err}") from None
        return types

    # -- locating --------------------------------------------------------------------------

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(first line, fields) of every data record, read with the `csv` module: slow, for errors only."""
        with open(self.path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, strict=False)
            for record in reader:
                if record:
                    break
            previous = reader.line_num
            for record in reader:
                start, previous = previous + 1, reader.line_num
                if record:  # pyarrow skips blank lines too
                    yield start, record

    def locate(self, row: int) -> str:
        """Words for a 0-based data row: its line number, found by reading up to it."""
        try:
            for index, (line, _) in enumerate(self._records()):
                if index == row:
                    return f"line {line}"
        except csv.Error:
            pass
        return f"data row {row + 1}"

    def _ragged_error(self) -> IngestError:
        assert self._bad_row is not None
        number, expected, actual, text = self._bad_row
        where = None
        try:
            for line, record in self._records():
                if len(record) != expected:
                    where, actual = f"line {line}", len(record)
                    break
        except csv.Error:
            pass
        if where is None:
            where = f"CSV row {number} (counting the header as row 1)" if number else "a row"
        snippet = text if len(text) <= 80 else text[:77] + "..."
        advice = ("a value that contains a comma must be quoted" if actual > expected
                  else "a value is missing or the line was cut short")
        return IngestError("invalid", f"{where} has {actual} fields, expected {expected} (the header has {expected} "
                                      f"columns): {advice}: {snippet!r}")


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _candidates(t: pa.DataType) -> list[pa.DataType]:
    """Types a column of type `t` may widen to, narrowest first; every value `t` accepts they accept too."""
    if pa.types.is_null(t):
        return [pa.int64(), pa.float64(), pa.bool_(), pa.date32(), pa.timestamp("s"), pa.timestamp("s", tz="UTC")]
    if pa.types.is_integer(t):
        return [t, pa.float64()]
    if pa.types.is_date32(t):
        return [t, pa.timestamp("s")]
    return [t]


def _widen(text: pa.Array, t: pa.DataType) -> pa.DataType:
    values = pc.drop_null(text)
    if len(values) == 0:
        return t
    trimmed = None
    for candidate in _candidates(t):
        if pa.types.is_integer(candidate) or pa.types.is_floating(candidate):
            trimmed = pc.utf8_trim_whitespace(values) if trimmed is None else trimmed
            probe = trimmed
        else:
            probe = values
        try:
            probe.cast(candidate)
            return candidate
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return pa.string()
