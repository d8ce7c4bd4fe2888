"""The upload pipeline on local files: every bad input is refused with its kind, what and where,
and leaves no temp file behind; good inputs of every format come out as the same Parquet."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from microlearn_grpc.core.ingest import (
    ConvertedTable,
    IngestError,
    IngestLimits,
    SourceFormat,
    SpooledUpload,
    UploadSpool,
    convert_to_parquet,
)

SMALL = IngestLimits(max_upload_bytes=2 << 20, max_decompressed_bytes=4 << 20, max_columns=50)


def _spool(work: Path, data: bytes, *, chunk: int, declared: SourceFormat | None, limits: IngestLimits,
           ) -> tuple[UploadSpool, SpooledUpload]:
    spool = UploadSpool(work, declared, limits)
    for start in range(0, len(data), chunk):
        spool.write(data[start:start + chunk])
    return spool, spool.finish()


def ingest(tmp_path: Path, data: bytes, *, hints: dict[str, str] | None = None, declared: SourceFormat | None = None,
           limits: IngestLimits = IngestLimits(), chunk: int = 4096) -> tuple[SpooledUpload, ConvertedTable]:
    """Spool, convert into the same work directory, and always discard (as the service does)."""
    work = tmp_path / "work"
    spool = UploadSpool(work, declared, limits)
    try:
        for start in range(0, len(data), chunk):
            spool.write(data[start:start + chunk])
        source = spool.finish()
        converted = convert_to_parquet(source, work / "dataset.parquet", column_hints=hints, limits=limits)
        return source, converted
    finally:
        spool.discard()


def refused(tmp_path: Path, data: bytes, kind: str, *words: str, **options) -> str:
    with pytest.raises(IngestError) as info:
        ingest(tmp_path, data, **options)
    message = str(info.value)
    assert info.value.kind == kind, message
    for word in words:
        assert word.lower() in message.lower(), message
    work = tmp_path / "work"
    assert not work.exists() or list(work.iterdir()) == [], "temp files left after discard()"
    return message


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _read(converted: ConvertedTable) -> pa.Table:
    return pq.read_table(converted.path)


# -- bad inputs ------------------------------------------------------------------------------


def test_empty_file(tmp_path):
    refused(tmp_path, b"", "invalid", "empty")


def test_empty_file_inside_gzip(tmp_path):
    refused(tmp_path, gzip.compress(b""), "invalid", "empty", "gzip")


def test_header_only(tmp_path):
    refused(tmp_path, b"a,b,c\n", "invalid", "header", "no data rows")


def test_ragged_row_names_line_and_counts(tmp_path):
    message = refused(tmp_path, b"a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n", "invalid", "line 4", "4 fields", "expected 3")
    assert "7,8,9,10" in message


def test_short_row_after_blank_lines_in_a_later_block(tmp_path):
    # pyarrow counts rows, not lines, and skips blank lines; the message must name the real line.
    data = b"a,b\n" + b"1,2\n" * 1_500_000 + b"\n\n" + b"3\n"
    refused(tmp_path, data, "invalid", "line 1500004", "1 fields", "expected 2", chunk=1 << 20)


def test_unterminated_quote(tmp_path):
    # pyarrow alone reads this as one row whose value runs to the end of the file.
    refused(tmp_path, b'a,b\n1,"x\n2,y\n', "invalid", "unterminated", "line 2", "byte offset 6")


def test_stray_quote_inside_unquoted_field(tmp_path):
    # pyarrow alone keeps x"y"z as text; RFC 4180 only allows quotes around a whole field.
    refused(tmp_path, b'a,b\n1,x"y"z\n', "invalid", "stray quote", "line 2", "byte offset 7")


def test_text_after_closing_quote(tmp_path):
    # pyarrow alone silently turns "x"y into xy.
    refused(tmp_path, b'a,b\n1,2\n3,"x"y\n', "invalid", "line 3", "'y' follows the closing quote")


def test_non_utf8_bytes(tmp_path):
    refused(tmp_path, b"a,b\n1,caf\xe9\n", "invalid", "UTF-8", "line 2", "byte offset 9", "0xe9")


def test_non_utf8_in_later_chunk_counts_lines_across_chunks(tmp_path):
    data = b"a,b\n" + b"1,2\n" * 10_000 + b"3,\xff\n"
    refused(tmp_path, data, "invalid", "UTF-8", "line 10002", f"byte offset {len(data) - 2}", chunk=1000)


def test_png_claiming_to_be_csv(tmp_path):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    refused(tmp_path, png, "invalid", "binary", "PNG", declared=None)
    refused(tmp_path, png, "invalid", "binary", declared=SourceFormat.CSV)


def test_nul_bytes_in_text(tmp_path):
    refused(tmp_path, b"a,b\n1,2\n3,\x00\x00\x01\x02", "invalid", "binary data (NUL byte)", "line 3",
            "byte offset 10", "does not look like a CSV file")


def test_duplicate_column_names(tmp_path):
    refused(tmp_path, b"a,b,a\n1,2,3\n", "invalid", "duplicate column name 'a' (columns 1 and 3)")


def test_empty_column_name(tmp_path):
    refused(tmp_path, b"a,,c\n1,2,3\n", "invalid", "column 2 has an empty name")


def test_pandas_index_column_without_name(tmp_path):
    refused(tmp_path, b",a\n0,1\n", "invalid", "column 1 has an empty name", "index=False")


def test_too_many_columns(tmp_path):
    data = (",".join(f"c{i}" for i in range(60)) + "\n" + ",".join("1" * 60) + "\n").encode()
    refused(tmp_path, data, "limit", "60 columns", "limit of 50", limits=SMALL)


def test_too_many_bytes_is_refused_during_write(tmp_path):
    spool = UploadSpool(tmp_path / "work", None, SMALL)
    chunk = b"1,2\n" * (1 << 16)  # 256 KiB
    spool.write(b"a,b\n")
    with pytest.raises(IngestError) as info:
        for _ in range(100):
            spool.write(chunk)
    assert info.value.kind == "limit" and "bytes" in str(info.value) and "2 MiB" in str(info.value)
    assert spool.bytes_received <= SMALL.max_upload_bytes
    spool.discard()
    assert list((tmp_path / "work").iterdir()) == []


def test_gzip_bomb_over_decompressed_cap(tmp_path):
    bomb = gzip.compress(bytes(50 << 20))  # 50 MB of zeros -> about 50 KB
    assert len(bomb) < 100_000
    refused(tmp_path, bomb, "limit", "zip bomb", "512 KiB", limits=IngestLimits(max_decompressed_bytes=512 << 10))


def test_gzip_bomb_over_ratio(tmp_path):
    bomb = gzip.compress(b"a,b\n" + b"0,0\n" * (5 << 20), 9)
    refused(tmp_path, bomb, "limit", "zip bomb", "200 times", limits=IngestLimits(ratio_check_min_bytes=1 << 20))


def test_zip_bomb(tmp_path):
    bomb = _zip({"data.csv": b"a,b\n" + b"0,0\n" * (5 << 20)})
    refused(tmp_path, bomb, "limit", "zip bomb", limits=SMALL)
    refused(tmp_path, bomb, "limit", "zip bomb", "200 times", limits=IngestLimits(ratio_check_min_bytes=1 << 20))


def test_zip_with_two_files(tmp_path):
    refused(tmp_path, _zip({"a.csv": b"a\n1\n", "b.csv": b"a\n2\n"}), "invalid", "zip", "2 files", "a.csv, b.csv",
            "exactly one")


def test_zip_with_no_file(tmp_path):
    refused(tmp_path, _zip({"folder/": b""}), "invalid", "zip", "no file")


def test_excel_workbook(tmp_path):
    refused(tmp_path, _zip({"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"<x/>"}), "invalid", "Excel", "CSV")


def test_truncated_gzip(tmp_path):
    packed = gzip.compress(b"a,b\n" + b"1,2\n" * 10_000)
    refused(tmp_path, packed[: len(packed) // 2], "invalid", "gzip", "truncated")


def test_nested_compression(tmp_path):
    refused(tmp_path, gzip.compress(gzip.compress(b"a\n1\n")), "invalid", "nested compression")


def test_invalid_parquet(tmp_path):
    refused(tmp_path, b"PAR1" + b"\x00garbage" * 50, "invalid", "not a valid Parquet file")


def test_json_array_instead_of_json_lines(tmp_path):
    refused(tmp_path, b'[{"a": 1}, {"a": 2}]', "invalid", "JSON array", "JSON lines")


def test_jsonl_line_that_is_not_json(tmp_path):
    refused(tmp_path, b'{"a": 1}\n{"a": 2}\nnot json\n', "invalid", "line 3 is not valid JSON")


def test_jsonl_field_changes_type(tmp_path):
    refused(tmp_path, b'{"a": 1}\n{"a": "x"}\n', "invalid", "field 'a'", "string at line 2", "number")


def test_jsonl_field_changes_type_in_a_later_block(tmp_path):
    data = b'{"a": 1, "b": "x"}\n' * 300_000 + b'{"a": "oops"}\n'
    refused(tmp_path, data, "invalid", "field 'a'", "string at line 300001", chunk=1 << 20)


def test_jsonl_lists_are_refused(tmp_path):
    refused(tmp_path, b'{"a": 1, "tags": [1, 2]}\n', "invalid", "'tags'", "list")


def test_hint_for_missing_column(tmp_path):
    refused(tmp_path, b"a,b\n1,2\n", "invalid", "'nope'", "no column", hints={"nope": "numeric"})


def test_hint_with_unknown_type(tmp_path):
    refused(tmp_path, b"a,b\n1,2\n", "invalid", "'a'", "unknown type", hints={"a": "float"})


def test_numeric_hint_with_text_value_names_line(tmp_path):
    data = b"a,b\n" + b"1,2\n" * 5000 + b"1,n/a2\n"
    refused(tmp_path, data, "invalid", "column 'b'", "numeric", "line 5002", "n/a2", hints={"b": "numeric"})


def test_datetime_hint_with_bad_value(tmp_path):
    refused(tmp_path, b"d\n2024-01-01\n31/01/2024\n", "invalid", "column 'd'", "line 3", "31/01/2024", "ISO 8601",
            hints={"d": "datetime"})


def test_discard_is_idempotent_and_final(tmp_path):
    spool = UploadSpool(tmp_path / "work", None, IngestLimits())
    spool.write(b"a,b\n1,2\n")
    spool.discard()
    spool.discard()
    assert list((tmp_path / "work").iterdir()) == []
    with pytest.raises(RuntimeError):
        spool.write(b"3,4\n")


# -- good inputs -----------------------------------------------------------------------------

MIXED = (b"id,age,city,joined,score,active\n"
         b"1,34,Paris,2023-01-05,1.5,true\n"
         b"2,,Lyon,2023-02-11,,false\n"
         b"3,51,,2023-03-20,2.25,true\n"
         b"4,29,\"Saint-Denis, FR\",,3.0,\n")


def test_csv_with_missing_values_strings_and_dates(tmp_path):
    source, converted = ingest(tmp_path, MIXED, chunk=7)
    assert source.format is SourceFormat.CSV and source.compression is None
    assert source.size_bytes == len(MIXED) and source.sha256 == hashlib.sha256(MIXED).hexdigest()
    table = _read(converted)
    assert (converted.row_count, converted.column_count) == (4, 6)
    assert converted.schema == table.schema
    types = {f.name: str(f.type) for f in table.schema}
    assert types == {"id": "int64", "age": "int64", "city": "string", "joined": "date32[day]", "score": "double",
                     "active": "bool"}
    assert table.column("city").to_pylist() == ["Paris", "Lyon", None, "Saint-Denis, FR"]
    assert converted.sha256 == hashlib.sha256(converted.path.read_bytes()).hexdigest()
    assert converted.size_bytes == converted.path.stat().st_size
    columns = {c["name"]: c for c in converted.profile["columns"]}
    assert columns["age"]["missing_count"] == 1 and columns["city"]["missing_count"] == 1
    assert columns["joined"]["type"] == "datetime"
    assert (columns["joined"]["min_datetime"], columns["joined"]["max_datetime"]) == ("2023-01-05", "2023-03-20")
    assert converted.profile["row_count"] == 4


def test_chunk_size_does_not_matter(tmp_path):
    data = "name,note\nJosé,\"naïve, café\"\nZoë,\"multi\nline \"\"quoted\"\"\"\n".encode()
    results = []
    for chunk in (1, 2, 3, 5, 1 << 16):
        source, converted = ingest(tmp_path / str(chunk), data, chunk=chunk)
        results.append((source.sha256, _read(converted).to_pydict()))
    assert all(r == results[0] for r in results)
    assert results[0][1] == {"name": ["José", "Zoë"], "note": ["naïve, café", 'multi\nline "quoted"']}


def test_bom_and_crlf(tmp_path):
    _, converted = ingest(tmp_path, b'\xef\xbb\xbf"a","b"\r\n1,"x"\r\n2,y\r\n')
    assert _read(converted).to_pydict() == {"a": [1, 2], "b": ["x", "y"]}


def test_gzip_csv(tmp_path):
    packed = gzip.compress(MIXED)
    spool, source = _spool(tmp_path / "w", packed, chunk=100, declared=None, limits=IngestLimits())
    try:
        assert source.compression == "gzip" and source.format is SourceFormat.CSV
        assert source.size_bytes == len(MIXED) and source.sha256 == hashlib.sha256(MIXED).hexdigest()
        assert spool.received_sha256 == hashlib.sha256(packed).hexdigest() and spool.bytes_received == len(packed)
        assert source.path.read_bytes() == MIXED
        converted = convert_to_parquet(source, tmp_path / "out.parquet")
        assert converted.row_count == 4
    finally:
        spool.discard()
    assert list((tmp_path / "w").iterdir()) == []


def test_multi_member_gzip(tmp_path):
    _, converted = ingest(tmp_path, gzip.compress(b"a,b\n1,2\n") + gzip.compress(b"3,4\n"))
    assert _read(converted).to_pydict() == {"a": [1, 3], "b": [2, 4]}


def test_zip_csv_ignores_folders_and_macos_metadata(tmp_path):
    data = _zip({"export/": b"", "__MACOSX/._data.csv": b"\x00junk", "export/data.csv": MIXED})
    source, converted = ingest(tmp_path, data)
    assert source.compression == "zip" and source.sha256 == hashlib.sha256(MIXED).hexdigest()
    assert converted.row_count == 4


def test_jsonl_with_nested_objects_missing_fields_and_drift(tmp_path):
    lines = [json.dumps({"a": i, "b": {"c": "x", "d": i % 3}}) for i in range(200_000)]  # > one 4 MiB block
    lines += [json.dumps({"a": 0.5, "e": True}), "", json.dumps({"a": None, "b": {"c": "late"}})]
    source, converted = ingest(tmp_path, ("\n".join(lines) + "\n").encode(), chunk=1 << 20)
    assert source.format is SourceFormat.JSONL
    table = _read(converted)
    assert table.schema.names == ["a", "b.c", "b.d", "e"]
    assert table.schema.field("a").type == pa.float64()  # int in the first block, 0.5 later
    assert table.num_rows == 200_002
    assert table.slice(199_999).to_pylist() == [
        {"a": 199_999.0, "b.c": "x", "b.d": 1, "e": None},
        {"a": 0.5, "b.c": None, "b.d": None, "e": True},
        {"a": None, "b.c": "late", "b.d": None, "e": None},
    ]


def test_parquet_roundtrip_with_dictionary_and_index(tmp_path):
    frame = pd.DataFrame({"x": [1.5, 2.5, None], "c": pd.Categorical(["a", "b", "a"])}, index=[10, 11, 12])
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    source, converted = ingest(tmp_path, buffer.getvalue())
    assert source.format is SourceFormat.PARQUET
    table = _read(converted)
    assert table.schema.names == ["x", "c"]  # pandas' __index_level_0__ is not data
    assert table.schema.field("c").type == pa.string()
    assert table.to_pydict() == {"x": [1.5, 2.5, None], "c": ["a", "b", "a"]}


def test_declared_format_overrides_detection(tmp_path):
    data = b"{x},y\n1,2\n"  # starts like JSON lines
    with pytest.raises(IngestError):
        ingest(tmp_path / "auto", data)
    source, converted = ingest(tmp_path / "declared", data, declared=SourceFormat.CSV)
    assert source.format is SourceFormat.CSV and _read(converted).column_names == ["{x}", "y"]


def test_column_hints(tmp_path):
    data = b"zip,amount,code,when,flag\n02134,3,7,2024-01-02,1\n00501,4.5,8,2024-02-03T10:00:00,0\n"
    hints = {"zip": "categorical", "amount": "numeric", "code": "id", "when": "datetime", "flag": "boolean"}
    _, converted = ingest(tmp_path, data, hints=hints)
    table = _read(converted)
    assert table.column("zip").to_pylist() == ["02134", "00501"]  # leading zeros kept
    assert table.schema.field("amount").type == pa.float64()
    assert table.column("code").to_pylist() == ["7", "8"]
    assert pa.types.is_timestamp(table.schema.field("when").type)
    columns = {c["name"]: c for c in converted.profile["columns"]}
    assert all(columns[name]["hinted"] and columns[name]["type"] == kind for name, kind in hints.items())


def test_column_changes_type_after_the_first_block(tmp_path):
    # 5+ MB of integers, then text, a float and values in a column that was empty so far.
    rows = 600_000
    body = b"".join(b"%d,%d,\n" % (i, i % 7) for i in range(rows))
    data = b"n,k,late\n" + body + b"abc,1.5,2024-01-01\n7,2,x\n"
    assert len(data) > 5 << 20
    _, converted = ingest(tmp_path, data, chunk=1 << 20)
    table = _read(converted)
    assert [str(t) for t in table.schema.types] == ["string", "double", "string"]
    assert table.num_rows == rows + 2
    assert table.column("n")[0].as_py() == "0" and table.column("n")[rows].as_py() == "abc"
    assert table.column("k")[rows].as_py() == 1.5 and table.column("k")[1].as_py() == 1.0
    assert table.column("late").null_count == rows
    assert converted.profile["row_count"] == rows + 2


def test_integer_column_widens_to_double_only(tmp_path):
    data = b"v\n" + b"1\n" * 3_000_000 + b"2.5\n"
    _, converted = ingest(tmp_path, data, chunk=1 << 20)
    assert converted.schema.field("v").type == pa.float64()
    assert converted.row_count == 3_000_001


def test_row_longer_than_a_block(tmp_path):
    big = b"x" * (5 << 20)
    _, converted = ingest(tmp_path, b"a,b\n1," + big + b"\n2,y\n", chunk=1 << 20)
    assert converted.row_count == 2 and _read(converted).column("b")[0].as_py() == big.decode()


def test_convert_a_file_that_did_not_come_through_the_spool(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(MIXED)
    source = SpooledUpload(path=path, format=SourceFormat.CSV, size_bytes=len(MIXED), sha256="", compression=None)
    converted = convert_to_parquet(source, tmp_path / "out.parquet", limits=IngestLimits())
    assert converted.row_count == 4


def test_profile_is_json_safe(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=1000), "y": rng.choice(["a", "b"], 1000)})
    frame.loc[::7, "x"] = np.nan
    _, converted = ingest(tmp_path, frame.to_csv(index=False).encode())
    json.dumps(converted.profile, allow_nan=False)
