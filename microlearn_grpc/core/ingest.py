"""The streaming upload pipeline behind DatasetService.UploadDataset: spool, check, decompress,
convert to canonical Parquet and profile, in memory bounded by block sizes, never file sizes.

    spool = UploadSpool(work_dir, declared_format=None, limits=IngestLimits())
    try:
        for chunk in chunks:
            spool.write(chunk)             # size cap, format sniffing, UTF-8/NUL/quoting checks
        source = spool.finish()            # gunzip/unzip with zip-bomb caps, sha256 of the content
        table = convert_to_parquet(source, work_dir / "data.parquet", limits=limits)
    finally:
        spool.discard()                    # temp files go, whatever happened

Every rejection is an `IngestError` whose `kind` is "invalid" or "limit".
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from microlearn_grpc.core._columns import check_hint_kinds
from microlearn_grpc.core._csv_source import CsvSource
from microlearn_grpc.core._decompress import decompress_into
from microlearn_grpc.core._ingest_base import IngestError, IngestLimits, MiB, Restart, SourceFormat, human_bytes
from microlearn_grpc.core._other_sources import JsonlSource, ParquetSource
from microlearn_grpc.core._tail import TailReader, UploadAborted, _Progress
from microlearn_grpc.core._text_scan import TextScanner, TextStats, sniff
from microlearn_grpc.core.profile import StreamingProfiler

__all__ = [
    "ConvertedTable",
    "IngestError",
    "IngestLimits",
    "LiveUpload",
    "UploadAborted",
    "SourceFormat",
    "SpooledUpload",
    "TextStats",
    "UploadSpool",
    "convert_to_parquet",
]

_SCAN_CHUNK = 1 * MiB  # small writes are gathered to this size before they are checked and written
_ROW_GROUP_BYTES = 16 * MiB  # in-memory Arrow bytes gathered per Parquet row group
_ROW_GROUP_ROWS = 1 << 20


@dataclass
class SpooledUpload:
    """An upload received in full and checked: the (decompressed) bytes on local disk."""

    path: Path
    format: SourceFormat
    size_bytes: int  # of the decompressed content
    sha256: str  # hex, of the decompressed content
    compression: str | None  # "gzip", "zip" or None
    text_stats: TextStats | None = field(default=None, repr=False)  # what the scan learned (CSV/JSONL)


@dataclass
class ConvertedTable:
    """The canonical Parquet file written from an upload, with its profile."""

    path: Path
    row_count: int
    column_count: int
    schema: pa.Schema
    profile: dict
    size_bytes: int
    sha256: str  # hex, of the Parquet file


class _ContentWriter:
    """Writes the content bytes to a file: hashing, counting and (for text) checking them on the way.

    With `fmt=None` the format is sniffed from the first bytes (the content of an archive).
    """

    def __init__(self, path: Path, fmt: SourceFormat | None, declared: SourceFormat | None, *,
                 hashing: bool = True, progress: _Progress | None = None) -> None:
        self.path = path
        self.progress = progress  # tells TailReaders what is checked and on disk
        self.format = fmt
        self._declared = declared
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._sha = hashlib.sha256() if hashing else None  # None: the caller hashes the same bytes
        self.size = 0
        self._buffer = bytearray()
        self._scanner = self._make_scanner(fmt) if fmt is not None else None

    @staticmethod
    def _make_scanner(fmt: SourceFormat) -> TextScanner | None:
        return TextScanner(fmt) if fmt in (SourceFormat.CSV, SourceFormat.JSONL) else None

    def write(self, data: bytes) -> None:
        if self.format is not None and not self._buffer and len(data) >= _SCAN_CHUNK:
            self._process(data)  # a big chunk and nothing buffered: no copy
            return
        self._buffer += data
        if self.format is None:
            decided = sniff(bytes(self._buffer[:64 * 1024]), self._declared, final=False, inner=True)
            if decided is None:
                return
            self._start(decided[0])
        if len(self._buffer) >= _SCAN_CHUNK:
            self._flush()

    def _start(self, fmt: SourceFormat) -> None:
        self.format = fmt
        self._scanner = self._make_scanner(fmt)

    def _flush(self) -> None:
        if not self._buffer:
            return
        data = bytes(self._buffer)
        self._buffer.clear()
        self._process(data)

    def _process(self, data: bytes) -> None:
        if self._scanner is not None:
            self._scanner.feed(data)
        if self._sha is not None:
            self._sha.update(data)
        self.size += len(data)
        self._file.write(data)
        if self.progress is not None:
            self._file.flush()
            self.progress.advance(len(data))

    def close(self) -> TextStats | None:
        if self.format is None:
            self._start(sniff(bytes(self._buffer[:64 * 1024]), self._declared, final=True, inner=True)[0])
        self._flush()
        self._file.close()
        stats = self._scanner.finish() if self._scanner is not None else None
        if self.progress is not None:
            self.progress.finish()
        return stats

    @property
    def quoted_newlines_so_far(self) -> bool:
        return self._scanner is not None and self._scanner.quoted_newlines

    def abort(self) -> None:
        if self.progress is not None:
            self.progress.abort()
        self._file.close()

    @property
    def sha256(self) -> str | None:
        return self._sha.hexdigest() if self._sha is not None else None


class UploadSpool:
    """Receives the uploaded chunks in order and keeps them in temp files under `directory`.

    `write` rejects as early as possible: too many bytes (limit), and for uncompressed text
    invalid UTF-8, NUL bytes and broken CSV quoting, each with line and byte offset.
    `finish` decompresses gzip/zip (capped) and returns the checked content. `discard`
    removes every temp file; call it when done, on error and on cancellation (it is
    idempotent), or use the spool as a context manager.
    """

    def __init__(self, directory: Path, declared_format: SourceFormat | None = None,
                 limits: IngestLimits = IngestLimits()) -> None:
        self._directory = Path(directory)
        self._declared = declared_format
        self._limits = limits
        self._received = 0
        self._raw_sha = hashlib.sha256()
        self._head = bytearray()
        self._compression: str | None = None
        self._raw: BinaryIO | None = None  # compressed uploads: the bytes as received
        self._content: _ContentWriter | None = None
        self._paths: list[Path] = []
        self._started = False
        self._result: SpooledUpload | None = None
        self._discarded = False

    def __enter__(self) -> UploadSpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()

    @property
    def bytes_received(self) -> int:
        """Raw bytes received so far (compressed, if the upload is)."""
        return self._received

    @property
    def received_sha256(self) -> str:
        """Hex SHA-256 of the raw bytes received (what a client computes over the file it sends)."""
        return self._raw_sha.hexdigest()

    def _temp(self, suffix: str) -> Path:
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self._directory / f"upload-{uuid.uuid4().hex}{suffix}"
        self._paths.append(path)
        return path

    def write(self, chunk: bytes) -> None:
        if self._discarded or self._result is not None:
            raise RuntimeError("UploadSpool.write() after finish() or discard()")
        if not chunk:
            return
        if self._received + len(chunk) > self._limits.max_upload_bytes:
            limit = self._limits.max_upload_bytes
            raise IngestError("limit", f"the upload is larger than the limit of {human_bytes(limit)} ({limit} bytes); "
                                       f"it passed the limit at byte offset {limit}")
        self._received += len(chunk)
        self._raw_sha.update(chunk)
        if not self._started:
            self._head += chunk
            decided = sniff(bytes(self._head[:64 * 1024]), self._declared, final=False)
            if decided is None:
                return
            self._start(*decided)
            chunk, self._head = bytes(self._head), bytearray()
        if self._raw is not None:
            self._raw.write(chunk)
        else:
            assert self._content is not None
            self._content.write(chunk)

    def _start(self, fmt: SourceFormat, compression: str | None) -> None:
        self._started = True
        self._compression = compression
        if compression is None:  # the content is the raw bytes: write() already hashes them
            progress = _Progress() if fmt is SourceFormat.CSV else None
            self._content = _ContentWriter(self._temp(".part"), fmt, self._declared, hashing=False, progress=progress)
        else:
            self._raw = open(self._temp(f".{compression}.part"), "wb")  # noqa: SIM115 - closed in finish/discard

    def finish(self) -> SpooledUpload:
        """Complete the upload: decompress if needed and return the checked content."""
        if self._discarded:
            raise RuntimeError("UploadSpool.finish() after discard()")
        if self._result is not None:
            return self._result
        if self._received == 0:
            raise IngestError("invalid", "the file is empty (0 bytes were uploaded)")
        if not self._started:
            self._start(*sniff(bytes(self._head), self._declared, final=True))
            head, self._head = bytes(self._head), bytearray()
            (self._raw or self._content).write(head)  # type: ignore[union-attr]
        if self._raw is not None:
            self._raw.close()
            raw_path = self._paths[-1]
            self._content = _ContentWriter(self._temp(".part"), None, self._declared)
            assert self._compression is not None
            decompress_into(raw_path, self._compression, self._content.write, limits=self._limits,
                            compressed_size=self._received)
            raw_path.unlink(missing_ok=True)  # the content is what is kept; free the disk now
        assert self._content is not None
        stats = self._content.close()
        if self._content.size == 0:
            raise IngestError("invalid", f"the file is empty (the {self._compression} archive holds 0 bytes)")
        assert self._content.format is not None
        self._result = SpooledUpload(path=self._content.path, format=self._content.format,
                                     size_bytes=self._content.size,
                                     sha256=self._content.sha256 or self._raw_sha.hexdigest(),
                                     compression=self._compression, text_stats=stats)
        return self._result

    def live_source(self) -> LiveUpload | None:
        """The content as it arrives, for converting while the upload streams: uncompressed CSV
        only, once its format is known (None otherwise: convert after `finish`)."""
        if self._content is None or self._content.progress is None or self._discarded:
            return None
        return LiveUpload(path=self._content.path, progress=self._content.progress)

    @property
    def quoted_newlines_so_far(self) -> bool:
        """Whether a quoted field with a line break was seen in the bytes checked so far (a live
        conversion assumes none; if one shows up, convert again after `finish`)."""
        return self._content is not None and self._content.quoted_newlines_so_far

    def discard(self) -> None:
        """Close and delete every temp file this spool made. Safe to call more than once."""
        self._discarded = True
        if self._raw is not None:
            self._raw.close()
        if self._content is not None:
            self._content.abort()
        for path in self._paths:
            path.unlink(missing_ok=True)


@dataclass
class LiveUpload:
    """An uncompressed CSV upload still arriving; `convert_to_parquet` reads it through TailReaders,
    assuming no quoted line breaks (checked by the caller once the spool finished)."""

    path: Path
    progress: _Progress
    format: SourceFormat = SourceFormat.CSV

    def open(self) -> TailReader:
        return TailReader(self.path, self.progress)


def _open_source(src: SpooledUpload | LiveUpload, hints: dict[str, str], limits: IngestLimits):
    if isinstance(src, LiveUpload):
        return CsvSource(src.path, TextStats(line_count=0, quoted_newlines=False), hints, limits, opener=src.open)
    if src.format is SourceFormat.CSV:
        return CsvSource(src.path, src.text_stats, hints, limits)
    if src.format is SourceFormat.JSONL:
        return JsonlSource(src.path, hints, limits)
    return ParquetSource(src.path, hints, limits)


def convert_to_parquet(src: SpooledUpload | LiveUpload, dst: Path, *, column_hints: dict[str, str] | None = None,
                       limits: IngestLimits = IngestLimits()) -> ConvertedTable:
    """Read `src` streaming, write it to `dst` as zstd Parquet (atomically: temp name, then rename),
    profile it on the way, and return what was written. Header and hint problems are reported
    before any data is read."""
    hints = check_hint_kinds(column_hints)
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        source = _open_source(src, hints, limits)
        attempts = 0
        while True:
            try:
                row_count, schema, profile = _write(source, tmp, hints)
                break
            except Restart:
                attempts += 1
                if attempts > limits.max_columns + 8:  # each restart widens a column for good; never reached
                    raise IngestError("invalid", "the column types could not be settled") from None
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sha = hashlib.sha256()
    with open(dst, "rb") as f:
        while block := f.read(4 * MiB):
            sha.update(block)
    return ConvertedTable(path=dst, row_count=row_count, column_count=len(schema), schema=schema, profile=profile,
                          size_bytes=dst.stat().st_size, sha256=sha.hexdigest())


class _Stage:
    """Runs `work(item)` for each item on its own thread, so parsing, writing and profiling overlap
    (pyarrow, zstd and numpy release the GIL). The queue is short, so memory stays a few batches;
    the first error is raised in the caller at the next `put` or at `finish`."""

    def __init__(self, name: str, work, depth: int) -> None:
        self._work = work
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"microlearn-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None and not self._stop:
                try:
                    self._work(item)
                except BaseException as err:  # handed to the caller in put()/finish()
                    self._error = err

    def put(self, item: object) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._stop = True
        self._queue.put(None)
        self._thread.join()


def _write(source, tmp: Path, hints: dict[str, str]) -> tuple[int, pa.Schema, dict]:
    writer: pq.ParquetWriter | None = None
    profiler: StreamingProfiler | None = None
    stages: list[_Stage] = []
    pending: list[pa.RecordBatch] = []
    pending_bytes = pending_rows = rows = 0
    done = False
    try:
        for batch in source.batches():
            if writer is None:
                # Dictionary pages only for text: on numbers they cost ~25% of the write time and
                # made files bigger than zstd alone (measured on bench/upload_throughput.py data).
                text = [f.name for f in batch.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
                writer = pq.ParquetWriter(tmp, batch.schema, compression="zstd", use_dictionary=text)
                profiler = StreamingProfiler(batch.schema, hints)
                write = writer.write_table
                stages = [_Stage("write", lambda table: write(table, row_group_size=_ROW_GROUP_ROWS), depth=1),
                          _Stage("profile", profiler.update, depth=4)]
            stages[1].put(batch)
            pending.append(batch)
            pending_bytes += batch.nbytes
            pending_rows += batch.num_rows
            rows += batch.num_rows
            if pending_bytes >= _ROW_GROUP_BYTES or pending_rows >= _ROW_GROUP_ROWS:
                stages[0].put(pa.Table.from_batches(pending))
                pending, pending_bytes, pending_rows = [], 0, 0
        if writer is None or rows == 0:
            raise IngestError("invalid", source.no_rows_message)
        if pending:
            stages[0].put(pa.Table.from_batches(pending))
        for stage in stages:
            stage.finish()
        done = True
        assert profiler is not None
        return rows, writer.schema, profiler.finish()
    finally:
        if not done:
            for stage in stages:
                stage.abort()
        if writer is not None:
            writer.close()
