"""Streaming gzip/zip decompression with caps on output size and expansion ratio (zip-bomb guard)."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from microlearn_grpc.core._ingest_base import IngestError, IngestLimits, human_bytes

_READ = 1 << 20  # compressed bytes read per step
_OUT = 1 << 20  # decompressed bytes produced per step: a bomb never inflates in memory


def decompress_into(raw: Path, compression: str, sink: Callable[[bytes], None], *, limits: IngestLimits,
                    compressed_size: int) -> None:
    """Decompress `raw` piece by piece into `sink`, stopping as soon as a cap is passed."""
    total = 0
    for piece in (_gunzip(raw) if compression == "gzip" else _unzip(raw, limits)):
        total += len(piece)
        if total > limits.max_decompressed_bytes:
            raise IngestError("limit", f"the {compression} file expands to more than "
                                       f"{human_bytes(limits.max_decompressed_bytes)} "
                                       f"({limits.max_decompressed_bytes} bytes, the decompressed size limit) — "
                                       "possible zip bomb; upload a smaller file")
        if total > limits.ratio_check_min_bytes and total > limits.max_compression_ratio * compressed_size:
            raise IngestError("limit", f"the {compression} file expands more than {limits.max_compression_ratio:g} "
                                       f"times ({human_bytes(total)} from {human_bytes(compressed_size)} so far) — "
                                       "possible zip bomb; upload it uncompressed or split it")
        sink(piece)


def _gunzip(raw: Path) -> Iterator[bytes]:
    """Yield the content of a gzip file, members concatenated (as `gunzip` does)."""
    inflater = zlib.decompressobj(wbits=31)
    offset = 0  # compressed bytes consumed, for messages
    with open(raw, "rb") as f:
        while data := f.read(_READ):
            while data:
                if inflater.eof:  # another member follows; trailing NUL padding is tolerated like gzip(1) does
                    if not data.strip(b"\x00"):
                        offset += len(data)
                        break
                    inflater = zlib.decompressobj(wbits=31)
                try:
                    out = inflater.decompress(data, _OUT)
                    if out:
                        yield out
                    rest = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                    # All input taken but the output buffer was full: zlib may still hold output.
                    while not rest and not inflater.eof and len(out) == _OUT:
                        out = inflater.decompress(b"", _OUT)
                        if out:
                            yield out
                except zlib.error as err:
                    raise IngestError("invalid", f"not a valid gzip file: {err} (near compressed byte offset "
                                                 f"{offset})") from None
                offset += len(data) - len(rest)
                data = rest
    if not inflater.eof:
        raise IngestError("invalid", f"the gzip file is truncated: it ends after {offset} compressed bytes in the "
                                     "middle of the data; upload the complete file")


def _unzip(raw: Path, limits: IngestLimits) -> Iterator[bytes]:
    """Yield the content of the one regular file in a zip archive."""
    try:
        archive = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise IngestError("invalid", f"not a valid zip archive: {err}") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
        names = [m.filename for m in archive.infolist()]
        if "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names):
            raise IngestError("invalid", "this is an Excel workbook (.xlsx), not a zip of one data file; "
                                         "export the sheet as CSV and upload that")
        if not members:
            raise IngestError("invalid", "the zip archive contains no file; it must contain exactly one data file")
        if len(members) > 1:
            shown = ", ".join(m.filename for m in members[:5]) + (", ..." if len(members) > 5 else "")
            raise IngestError("invalid", f"the zip archive contains {len(members)} files ({shown}); it must contain "
                                         "exactly one data file — upload them one at a time")
        member = members[0]
        if member.flag_bits & 0x1:
            raise IngestError("invalid", f"'{member.filename}' in the zip archive is encrypted; upload it unencrypted")
        if member.file_size > limits.max_decompressed_bytes:
            raise IngestError("limit", f"'{member.filename}' in the zip archive is {human_bytes(member.file_size)}, "
                                       f"more than the {human_bytes(limits.max_decompressed_bytes)} "
                                       f"({limits.max_decompressed_bytes} bytes) decompressed size limit — "
                                       "possible zip bomb")
        try:
            with archive.open(member) as stream:
                # The declared sizes are not trusted: the caller counts what actually comes out.
                while piece := stream.read(_OUT):
                    yield piece
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise IngestError("invalid", f"'{member.filename}' in the zip archive is damaged: {err}") from None
        except NotImplementedError as err:
            raise IngestError("invalid", f"'{member.filename}' in the zip archive uses an unsupported compression "
                                         f"method ({err}); re-create the archive with standard deflate") from None
