"""Incremental checks on uploaded bytes: format sniffing, UTF-8, NUL bytes, CSV quoting.

Everything here sees the bytes once, chunk by chunk, in bounded memory, and raises an
`IngestError` naming the line and byte offset of the first problem.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import numpy as np

from microlearn_grpc.core._ingest_base import IngestError, SourceFormat

BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty archive
PARQUET_MAGIC = b"PAR1"

# Magic numbers of files people upload by mistake, so the message can say what the file is.
_FOREIGN_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls) or another OLE document"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard archive"),
    (b"\x7fELF", "an executable"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow IPC/Feather file"),
)
_SNIFF_BYTES = 64 * 1024  # give up waiting for a non-blank character after this many bytes

_COMMA, _LF, _CR, _QUOTE = 0x2C, 0x0A, 0x0D, 0x22
_OK_BEFORE_OPEN = np.array([_COMMA, _LF, _CR, _QUOTE, -1], dtype=np.int16)  # -1: start of the file
_OK_AFTER_CLOSE = np.array([_COMMA, _LF, _CR, _QUOTE], dtype=np.int16)
# Lookup tables instead of np.isin (a sort per call): index = byte + 1, so -1 (start) is index 0.
_OPEN_OK = np.zeros(257, dtype=bool)
_OPEN_OK[_OK_BEFORE_OPEN + 1] = True
_OPEN_OK_BYTE = _OPEN_OK[1:].copy()  # the same tables indexed by a byte value 0-255
_CLOSE_OK_BYTE = np.zeros(256, dtype=bool)
_CLOSE_OK_BYTE[_OK_AFTER_CLOSE] = True


def sniff(head: bytes, declared: SourceFormat | None, *, final: bool, inner: bool = False
          ) -> tuple[SourceFormat, str | None] | None:
    """Decide (format, compression) from the first bytes, or None when more bytes are needed.

    Compression is always taken from the magic bytes; a declared format wins over detection.
    `inner` is set for the content of an archive, where a second compression layer is refused.
    """
    if len(head) < 8 and not final:
        return None
    compression = "gzip" if head.startswith(GZIP_MAGIC) else "zip" if head.startswith(ZIP_MAGICS) else None
    if compression is not None:
        if inner:
            raise IngestError("invalid", f"the archive contains another {compression} archive; "
                                         "nested compression is not supported, upload the inner file")
        return declared or SourceFormat.CSV, compression  # the real format is decided on the content
    if declared is not None:
        return declared, None
    if head.startswith(PARQUET_MAGIC):
        return SourceFormat.PARQUET, None
    for magic, what in _FOREIGN_MAGICS:
        if head.startswith(magic):
            raise IngestError("invalid", f"binary data at byte offset 0: this looks like {what}, not a CSV, "
                                         "Parquet or JSON lines file")
    text = head[len(BOM):] if head.startswith(BOM) else head
    stripped = text.lstrip(b" \t\r\n")
    if not stripped and not final and len(head) < _SNIFF_BYTES:
        return None
    if stripped.startswith(b"{"):
        return SourceFormat.JSONL, None
    if stripped.startswith(b"["):
        raise IngestError("invalid", "the file looks like a JSON array; upload JSON lines instead "
                                     "(one JSON object per line, no surrounding brackets)")
    return SourceFormat.CSV, None


@dataclass(frozen=True)
class TextStats:
    """What the scan learned about a text upload that the parser needs."""

    line_count: int
    # A quoted CSV field holds a line break, so the CSV parser must track quotes across lines
    # (slower), and record numbers differ from line numbers.
    quoted_newlines: bool


class TextScanner:
    """Feeds on the text bytes of a CSV or JSON lines upload and rejects what cannot be parsed.

    Checks, in one pass: UTF-8 validity (incremental decoder, so a character split across
    chunks is fine), no NUL bytes (a binary file), and for CSV the RFC 4180 quoting rules
    (a quote opens a field only at its start and closes it only before a comma or line
    end). Because every quote it accepts is structural, the parity of the quote count
    tells exactly which line breaks sit inside quoted fields, which is what `TextStats`
    reports. Rules are strict on purpose: pyarrow silently reads `1,"x` to the end of the
    file as one value and keeps `x"y"z` or `"x"y` as mangled text; rejecting them with a
    line number is kinder than storing wrong data.
    """

    def __init__(self, fmt: SourceFormat) -> None:
        self._fmt = fmt
        self._csv = fmt is SourceFormat.CSV
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._offset = 0  # bytes fed so far
        self._lines = 0  # line breaks fed so far
        self._has_bom: bool | None = None
        # CSV quote state.
        self._quotes = 0  # quotes seen so far (only the parity matters)
        self._prev_byte = -1  # the byte before the current chunk; -1 at the start
        self._pending_close: tuple[int, int] | None = None  # closing quote at a chunk end: (offset, line)
        self._open_at: tuple[int, int] = (0, 0)  # (offset, line) of the quote that opened the current field
        self._quoted_newlines = False

    @property
    def quoted_newlines(self) -> bool:
        return self._quoted_newlines

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self._has_bom is None:
            self._has_bom = data.startswith(BOM)
        self._check_encoding(data)
        if self._csv:
            self._check_quotes(data)
        self._offset += len(data)
        self._lines += data.count(b"\n")
        self._prev_byte = data[-1]

    def finish(self) -> TextStats:
        pending = self._decoder.getstate()[0]
        try:
            self._decoder.decode(b"", True)
        except UnicodeDecodeError:
            self._raise_utf8(self._offset - len(pending), self._lines + 1, pending[:4])
        if self._csv and self._quotes % 2:
            offset, line = self._open_at
            raise IngestError("invalid", f"unterminated quoted field starting at line {line}, byte offset {offset}: "
                                         "the opening '\"' is never closed (every quote inside a quoted field "
                                         "must be doubled, like \"say \"\"hi\"\"\")")
        last_line_open = self._prev_byte not in (-1, _LF)
        return TextStats(line_count=self._lines + int(last_line_open), quoted_newlines=self._quoted_newlines)

    # -- checks ----------------------------------------------------------------------------

    def _line_at(self, data: bytes, pos: int) -> int:
        return self._lines + data.count(b"\n", 0, max(pos, 0)) + 1

    def _check_encoding(self, data: bytes) -> None:
        nul = data.find(b"\x00")
        pending = self._decoder.getstate()[0]
        bad = None
        if pending or not data.isascii():  # pure ASCII with no split sequence pending is valid UTF-8
            try:
                self._decoder.decode(data)
            except UnicodeDecodeError as err:
                bad = err.start - len(pending)  # negative: the bad sequence began in the previous chunk
        if nul >= 0 and (bad is None or nul <= bad):
            offset = self._offset + nul
            raise IngestError("invalid", f"binary data (NUL byte) at line {self._line_at(data, nul)}, byte offset "
                                         f"{offset}: this does not look like a {self._fmt.label} file")
        if bad is not None:
            sample = (pending + data)[bad + len(pending):bad + len(pending) + 4]
            self._raise_utf8(self._offset + bad, self._line_at(data, bad), sample)

    def _raise_utf8(self, offset: int, line: int, sample: bytes) -> None:
        shown = " ".join(f"0x{b:02x}" for b in sample[:4]) or "end of file"
        if offset < 16 and line == 1:
            raise IngestError("invalid", f"binary data at line 1, byte offset {offset} (bytes {shown}): this does not "
                                         f"look like a {self._fmt.label} file, which must be UTF-8 text")
        raise IngestError("invalid", f"not valid UTF-8 at line {line}, byte offset {offset}: unexpected bytes {shown}; "
                                     "the file may be in another encoding (Latin-1, Windows-1252, ...) — "
                                     "save it as UTF-8 and upload it again")

    def _check_quotes(self, data: bytes) -> None:
        # Vectorized over the quote positions of the chunk; the quotes alternate open/close, so
        # the openings are every other quote (a view, no masks). This runs on every uploaded
        # byte, so it avoids temporaries the size of the chunk where it can.
        n = len(data)
        if self._pending_close is not None:
            offset, line = self._pending_close
            self._pending_close = None
            if not _CLOSE_OK_BYTE[data[0]]:
                self._raise_after_close(offset, line, data[0])
        in_quote = bool(self._quotes % 2)
        if data.find(b'"') < 0:
            if in_quote and not self._quoted_newlines and b"\n" in data:
                self._quoted_newlines = True
            return
        arr = np.frombuffer(data, dtype=np.uint8)
        qpos = np.flatnonzero(arr == _QUOTE)
        opens = qpos[1 if in_quote else 0::2]
        closes = qpos[0 if in_quote else 1::2]

        bad_open = n
        if opens.size:
            ok = _OPEN_OK_BYTE[arr[np.maximum(opens - 1, 0)]]
            if opens[0] == 0:  # the byte before is the previous chunk's last (or the start of the file)
                ok[0] = _OPEN_OK[self._prev_byte + 1]
            if self._has_bom and self._offset == 0 and opens[0] == len(BOM):
                ok[0] = True  # a quote right after the byte order mark is at the start of the file
            if not ok.all():
                bad_open = int(opens[np.argmin(ok)])
        bad_close = n
        if closes.size:
            at_end = closes[-1] == n - 1
            inner = closes[:-1] if at_end else closes
            if inner.size:
                ok = _CLOSE_OK_BYTE[arr[inner + 1]]
                if not ok.all():
                    bad_close = int(inner[np.argmin(ok)])
        if bad_open < bad_close:
            line = self._line_at(data, bad_open)
            raise IngestError("invalid", f"stray quote at line {line}, byte offset {self._offset + bad_open}: a '\"' "
                                         "inside an unquoted field; a field that contains quotes must be quoted "
                                         "as a whole, with inner quotes doubled (x\"y becomes \"x\"\"y\")")
        if bad_close < n:
            self._raise_after_close(self._offset + bad_close, self._line_at(data, bad_close), data[bad_close + 1])
        if closes.size and closes[-1] == n - 1:
            self._pending_close = (self._offset + n - 1, self._line_at(data, n - 1))

        if not self._quoted_newlines:
            # A line break is inside quotes when an odd number of quotes (counting an open field
            # carried over from the previous chunk) comes before it.
            newlines = np.flatnonzero(arr == _LF)
            if newlines.size:
                before = np.searchsorted(qpos, newlines)
                if np.any((before + in_quote) % 2 == 1):
                    self._quoted_newlines = True
        self._quotes += int(qpos.size)
        if self._quotes % 2:
            last_open = int(opens[-1])
            self._open_at = (self._offset + last_open, self._line_at(data, last_open))

    @staticmethod
    def _raise_after_close(offset: int, line: int, byte: int) -> None:
        shown = repr(chr(byte)) if 32 <= byte < 127 else f"byte 0x{byte:02x}"
        raise IngestError("invalid", f"bad quoting at line {line}, byte offset {offset}: {shown} follows the closing "
                                     "quote of a field; after a closing '\"' only a comma or the end of the line may "
                                     "follow (a quote inside a quoted field must be doubled)")


def scan_file(path, fmt: SourceFormat) -> TextStats:
    """Scan a whole local file (for a source that did not come through an `UploadSpool`)."""
    scanner = TextScanner(fmt)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            scanner.feed(chunk)
    return scanner.finish()
