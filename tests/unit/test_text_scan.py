"""The vectorized CSV quote check agrees with a byte-by-byte reference on random inputs and
random chunkings (it runs on every uploaded byte, so it is written for speed, not clarity)."""

from __future__ import annotations

import random
import re

import pytest

from microlearn_grpc.core._ingest_base import IngestError, SourceFormat
from microlearn_grpc.core._text_scan import TextScanner

OK_BEFORE_OPEN = {ord(","), ord("\n"), ord("\r"), ord('"')}
OK_AFTER_CLOSE = OK_BEFORE_OPEN


def reference(data: bytes) -> tuple[int | None, bool]:
    """(offset of the first quoting error or None, whether a quoted field holds a line break)."""
    in_quote, quoted_newline = False, False
    for i, byte in enumerate(data):
        if byte == ord('"'):
            if not in_quote:
                if i > 0 and data[i - 1] not in OK_BEFORE_OPEN:
                    return i, quoted_newline
                in_quote = True
            else:
                if i + 1 < len(data) and data[i + 1] not in OK_AFTER_CLOSE:
                    return i, quoted_newline
                in_quote = False
        elif byte == ord("\n") and in_quote:
            quoted_newline = True
    if in_quote:
        return -1, quoted_newline  # unterminated
    return None, quoted_newline


def scan(data: bytes, cuts: list[int]) -> tuple[int | None, bool]:
    scanner = TextScanner(SourceFormat.CSV)
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    try:
        for piece in pieces:
            scanner.feed(piece)
        stats = scanner.finish()
    except IngestError as err:
        if "unterminated" in str(err):
            return -1, scanner.quoted_newlines
        return int(re.search(r"byte offset (\d+)", str(err)).group(1)), scanner.quoted_newlines
    return None, stats.quoted_newlines


@pytest.mark.parametrize("seed", range(300))
def test_quote_check_matches_reference(seed):
    rng = random.Random(seed)
    alphabet = [b"a", b"b", b",", b'"', b"\n", b'""', b',"x",', b"\r\n"]
    weights = [8, 4, 4, 2, 2, 1, 2, 1]
    data = b"".join(rng.choices(alphabet, weights, k=rng.randint(1, 200)))
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 6)))) if len(data) > 1 else []
    expected_error, expected_newline = reference(data)
    got_error, got_newline = scan(data, cuts)
    assert got_error == expected_error, (data, cuts)
    if expected_error is None:
        assert got_newline == expected_newline, (data, cuts)


@pytest.mark.parametrize("seed", range(300))
def test_quote_check_on_mostly_valid_csv(seed):
    rng = random.Random(seed)
    fields = [b"a", b"12", b"", b'"x"', b'"a,b"', b'"line\nbreak"', b'"say ""hi"""', b'""']
    corrupt = [b'x"y', b'"a"b', b'"open']
    rows = []
    for _ in range(rng.randint(1, 60)):
        row = [rng.choice(corrupt) if rng.random() < 0.01 else rng.choice(fields) for _ in range(rng.randint(1, 5))]
        rows.append(b",".join(row))
    data = b"\n".join(rows) + rng.choice([b"", b"\n", b"\r\n"])
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 8)))) if len(data) > 1 else []
    expected_error, expected_newline = reference(data)
    got_error, got_newline = scan(data, cuts)
    assert got_error == expected_error, (data, cuts)
    if expected_error is None:
        assert got_newline == expected_newline, (data, cuts)
