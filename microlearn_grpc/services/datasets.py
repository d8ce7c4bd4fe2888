"""Dataset use cases: upload, resolve, list, sample, delete and prepare by recipe.

Blocking work (spooling, conversion, profiling, Parquet reads) runs in threads so the event loop
keeps serving other requests; every path cleans its temporary files and stores an artifact and
its row together or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import decimal
import hashlib
import logging
import math
import time
import re
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from microlearn_grpc import errors
from microlearn_grpc.core import ingest, recipes
from microlearn_grpc.core.profile import profile_table
from microlearn_grpc.storage.artifacts import ArtifactCorrupted, ArtifactNotFound, ArtifactStore
from microlearn_grpc.storage.datasets_repo import (
    DatasetRecord,
    DatasetRepository,
    NewDataset,
    decode_page_token,
    encode_page_token,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HINT_TYPES = ("numeric", "categorical", "boolean", "datetime", "text", "id")
FORMATS = {"csv": ingest.SourceFormat.CSV, "parquet": ingest.SourceFormat.PARQUET, "jsonl": ingest.SourceFormat.JSONL}
MAX_SAMPLE_ROWS = 10_000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


@dataclasses.dataclass(frozen=True)
class UploadRequest:
    display_name: str
    format: str | None = None  # csv | parquet | jsonl | None (detect)
    column_hints: dict[str, str] = dataclasses.field(default_factory=dict)
    description: str = ""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    expected_size_bytes: int = 0
    expected_sha256: str = ""


@dataclasses.dataclass(frozen=True)
class Page:
    items: list[DatasetRecord]
    next_page_token: str
    total_size: int


@dataclasses.dataclass(frozen=True)
class Sample:
    columns: list[str]
    rows: list[dict[str, Any]]


def validate_display_name(name: str, field: str = "display_name") -> str:
    if not name:
        raise errors.InvalidArgument(f"{field} is required")
    if not NAME_PATTERN.match(name):
        raise errors.InvalidArgument(
            f"{field} {name!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit (no '/', '\\', '@', spaces or '..')")
    if ".." in name:
        raise errors.InvalidArgument(f"{field} {name!r} must not contain '..'")
    return name


def _json_safe(value: Any) -> Any:
    """A value as JSON can carry it: NaN → null, ±inf → string, datetimes → ISO 8601."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _artifact_key(sha256: str) -> str:
    return f"datasets/sha256/{sha256}.parquet"


async def _blocking(fn: Callable[..., T], *args: Any, executor: ThreadPoolExecutor | None = None) -> T:
    """Run `fn` in a thread; if the caller is cancelled, wait for the thread before re-raising so
    cleanup never races a thread that is still writing files."""
    return await _settle(asyncio.get_running_loop().run_in_executor(executor, fn, *args))


async def _settle(future: asyncio.Future, *, quiet: bool = False) -> Any:
    """Await a thread's future even through cancellation of the caller, so no thread outlives the
    request that started it (it writes files the request's cleanup removes)."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
        except BaseException:  # noqa: BLE001 - read from the future below
            pass
    if quiet:
        return None
    if cancelled:
        raise asyncio.CancelledError()
    return future.result()


class DatasetService:
    def __init__(self, repo: DatasetRepository, pool: asyncpg.Pool, artifacts: ArtifactStore, *, work_dir: Path,
                 limits: ingest.IngestLimits, max_concurrent_uploads: int = 4) -> None:
        self._repo = repo
        self._pool = pool
        self._artifacts = artifacts
        self._work_dir = work_dir
        self._limits = limits
        self._convert_slots = asyncio.Semaphore(max_concurrent_uploads)
        # Conversions get threads of their own: a live conversion blocks on bytes that spool
        # writes (on the default executor) deliver, so sharing one pool could deadlock.
        self._converters = ThreadPoolExecutor(max_concurrent_uploads, thread_name_prefix="microlearn-convert")
        self._verified: dict[str, tuple[int, float]] = {}  # local path → (size, mtime) whose sha256 was checked

    @property
    def repository(self) -> DatasetRepository:
        return self._repo

    def close(self) -> None:
        self._converters.shutdown(wait=True, cancel_futures=True)

    def sweep_stale_work(self, max_age_seconds: float = 3600) -> int:
        """Delete temp files a crashed process left in the work dir (uploads in progress touch
        theirs continuously, so anything untouched for an hour is dead). Returns how many."""
        removed = 0
        cutoff = time.time() - max_age_seconds
        for sub in ("uploads", "prepare"):
            for path in sorted((self._work_dir / sub).rglob("*"), reverse=True) if (self._work_dir / sub).exists() else []:
                with contextlib.suppress(OSError):
                    if path.is_file() and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                    elif path.is_dir() and not any(path.iterdir()):
                        path.rmdir()
        if removed:
            log.info("removed %d stale temp file(s) from %s", removed, self._work_dir)
        return removed

    # ---------------------------------------------------------------- resolve / read
    async def resolve(self, ref: str, *, with_profile: bool = True, field: str = "name") -> DatasetRecord:
        """Find a version by `datasets/{id}`, id, `NAME` (latest) or `NAME@VERSION`."""
        ref = (ref or "").strip()
        if not ref:
            raise errors.InvalidArgument(f"{field} is required: give datasets/ID, an id, NAME or NAME@VERSION")
        if ref.startswith("datasets/"):
            record = await self._repo.get(ref.removeprefix("datasets/"), with_profile=with_profile)
            if record is None:
                raise errors.NotFound(f"dataset {ref} does not exist")
            return record
        if "@" in ref:
            name, _, raw_version = ref.rpartition("@")
            if not raw_version.isdigit() or int(raw_version) < 1:
                raise errors.InvalidArgument(f"{field} {ref!r}: the version after '@' must be a positive integer")
            record = await self._repo.get_version(name, int(raw_version), with_profile=with_profile)
            if record is None:
                latest = await self._repo.get_version(name, None, with_profile=False)
                hint = f" (latest is {name}@{latest.version})" if latest else ""
                raise errors.NotFound(f"dataset {name!r} has no version {raw_version}{hint}")
            return record
        record = await self._repo.get(ref, with_profile=with_profile)
        if record is None:
            record = await self._repo.get_version(ref, None, with_profile=with_profile)
        if record is None:
            raise errors.NotFound(f"no dataset named {ref!r} (and no dataset has that id)")
        return record

    async def list(self, *, page_size: int, page_token: str, prefix: str = "", latest_only: bool = False,
                   display_name: str | None = None) -> Page:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise errors.InvalidArgument(f"page_size must be between 0 and {MAX_PAGE_SIZE}, got {page_size}")
        after = None
        if page_token:
            try:
                after = decode_page_token(page_token)
            except Exception:
                raise errors.InvalidArgument("page_token is not valid: pass next_page_token from a previous response") from None
        size = page_size or DEFAULT_PAGE_SIZE
        items, total = await self._repo.list(page_size=size + 1, after=after, prefix=prefix,
                                             display_name=display_name, latest_only=latest_only)
        token = encode_page_token(items[size - 1].created_at, items[size - 1].id) if len(items) > size else ""
        return Page(items=items[:size], next_page_token=token, total_size=total)

    async def local_parquet(self, record: DatasetRecord) -> Path:
        """A verified local copy of the version's Parquet file (in place for a local store)."""
        path = self._artifacts.local_path(record.artifact_key)
        try:
            if path is not None:
                if not path.exists():
                    raise ArtifactNotFound(record.artifact_key)
                stat = path.stat()
                if self._verified.get(str(path)) != (stat.st_size, stat.st_mtime):
                    if await _blocking(_sha256_file, path) != record.sha256:
                        raise ArtifactCorrupted(record.artifact_key)
                    self._verified[str(path)] = (stat.st_size, stat.st_mtime)
                return path
            cached = self._work_dir / "cache" / f"{record.sha256}.parquet"
            if not cached.exists():
                cached.parent.mkdir(parents=True, exist_ok=True)
                await self._artifacts.get_to_file(record.artifact_key, cached, expected_sha256=record.sha256)
            return cached
        except ArtifactNotFound:
            raise errors.DataLoss(f"the stored data of dataset {record.display_name}@{record.version} is missing "
                                  f"({record.artifact_key})") from None
        except ArtifactCorrupted:
            raise errors.DataLoss(f"the stored data of dataset {record.display_name}@{record.version} failed its "
                                  "SHA-256 check; it will not be read") from None

    async def sample(self, ref: str, *, row_count: int, random: bool, seed: int, columns: list[str]) -> Sample:
        if row_count < 0 or row_count > MAX_SAMPLE_ROWS:
            raise errors.InvalidArgument(f"row_count must be between 1 and {MAX_SAMPLE_ROWS}, got {row_count}")
        record = await self.resolve(ref, with_profile=False)
        path = await self.local_parquet(record)
        return await _blocking(_read_sample, path, row_count or 10, random, seed, columns)

    # ---------------------------------------------------------------- upload
    async def upload(self, request: UploadRequest, chunks: AsyncIterator[bytes]) -> tuple[DatasetRecord, bool]:
        """Spool, validate, convert, profile and store one upload; returns (version, deduplicated)."""
        validate_display_name(request.display_name)
        hints = self._check_hints(request.column_hints)
        declared = None
        if request.format:
            declared = FORMATS.get(request.format)
            if declared is None:
                raise errors.InvalidArgument(f"format {request.format!r} is not supported: use csv, parquet or jsonl")
        if request.expected_size_bytes < 0:
            raise errors.InvalidArgument("expected_size_bytes must not be negative")
        if request.expected_size_bytes > self._limits.max_upload_bytes:
            raise errors.ResourceExhausted(
                f"the upload announces {request.expected_size_bytes} bytes, over the limit of "
                f"{self._limits.max_upload_bytes} bytes (MICROLEARN_MAX_UPLOAD_BYTES)")
        expected_sha = request.expected_sha256.lower()
        if expected_sha and not re.fullmatch(r"[0-9a-f]{64}", expected_sha):
            raise errors.InvalidArgument("expected_sha256 must be 64 hex characters")

        upload_dir = self._work_dir / "uploads"
        upload_dir.mkdir(parents=True, exist_ok=True)
        spool = ingest.UploadSpool(upload_dir, declared, self._limits)
        parquet = upload_dir / f"{uuid.uuid4().hex}.parquet"
        live: asyncio.Future | None = None  # conversion running while the bytes still arrive
        holds_slot = False
        started = time.perf_counter()
        try:
            received = 0
            async for chunk in chunks:
                received += len(chunk)
                await _blocking(spool.write, chunk)
                if live is None:
                    source = spool.live_source()
                    if source is not None and not self._convert_slots.locked():
                        await self._convert_slots.acquire()
                        holds_slot = True
                        live = asyncio.get_running_loop().run_in_executor(self._converters, self._convert, source,
                                                                          parquet, hints)
                elif live.done() and not spool.quoted_newlines_so_far and isinstance(live.exception(), ingest.IngestError):
                    raise live.exception()  # a real problem in the rows read so far: reject now, not after the rest
            if request.expected_size_bytes and received != request.expected_size_bytes:
                raise errors.InvalidArgument(
                    f"upload cut off: received {received} of the {request.expected_size_bytes} bytes announced in "
                    "expected_size_bytes; nothing was stored")
            spooled = await _blocking(spool.finish)
            if expected_sha and spool.received_sha256 != expected_sha:
                raise errors.InvalidArgument("the uploaded bytes do not match expected_sha256 (corrupted in transit?); "
                                             "nothing was stored")
            spooled_at = time.perf_counter()
            latest = await self._repo.get_version(request.display_name, None, with_profile=True)
            if latest is not None and latest.source_sha256 == spooled.sha256 and latest.column_hints == hints:
                return latest, True
            table = None
            if live is not None:
                # The live conversion assumed no line breaks inside quoted fields; if the file has
                # some, its result (or error) does not count and the file is converted again.
                try:
                    table = await _settle(live)
                except ingest.IngestError:
                    if not spooled.text_stats.quoted_newlines:
                        raise
                if spooled.text_stats.quoted_newlines:
                    table = None
            if table is None:
                async with contextlib.AsyncExitStack() as stack:
                    if not holds_slot:
                        await stack.enter_async_context(self._convert_slots)
                    table = await _blocking(self._convert, spooled, parquet, hints, executor=self._converters)
            spool.discard()  # free the disk before the artifact copy
            converted_at = time.perf_counter()
            new = NewDataset(
                id=f"ds-{uuid.uuid4().hex[:16]}", display_name=request.display_name,
                source_format=spooled.format.name.lower(), source_size_bytes=spooled.size_bytes,
                source_sha256=spooled.sha256, artifact_key=_artifact_key(table.sha256), size_bytes=table.size_bytes,
                sha256=table.sha256, row_count=table.row_count, column_count=table.column_count, profile=table.profile,
                column_hints=hints, description=request.description, labels=dict(request.labels))
            record = await self._store(new, parquet)
            done = time.perf_counter()
            log.info("upload %s@%d: %d bytes received+checked in %.2fs (%s), then converted+profiled in %.2fs, "
                     "stored in %.2fs", record.display_name, record.version, received, spooled_at - started,
                     "converting meanwhile" if live is not None else "converted after", converted_at - spooled_at,
                     done - converted_at)
            return record, False
        except ingest.IngestError as exc:
            raise (errors.ResourceExhausted if exc.kind == "limit" else errors.InvalidArgument)(str(exc)) from None
        finally:
            spool.discard()  # also stops a live conversion still waiting for bytes
            if live is not None:
                await _settle(live, quiet=True)
            if holds_slot:
                self._convert_slots.release()
            parquet.unlink(missing_ok=True)

    def _convert(self, source: ingest.SpooledUpload | ingest.LiveUpload, parquet: Path,
                 hints: dict[str, str]) -> ingest.ConvertedTable:
        return ingest.convert_to_parquet(source, parquet, column_hints=hints, limits=self._limits)

    def _check_hints(self, hints: dict[str, str]) -> dict[str, str]:
        for column, kind in hints.items():
            if not column:
                raise errors.InvalidArgument("column_hints: a hint has an empty column name")
            if kind not in HINT_TYPES:
                raise errors.InvalidArgument(f"column_hints: type of column {column!r} must be one of {', '.join(HINT_TYPES)}")
        return dict(hints)

    async def _store(self, new: NewDataset, parquet: Path) -> DatasetRecord:
        """Put the artifact (if new) and insert the row under a lock on the artifact key, so a
        concurrent delete of another version sharing the bytes cannot remove them in between."""
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", new.artifact_key)
            created = False
            try:
                if not await self._artifacts.exists(new.artifact_key):
                    await self._artifacts.put_file(new.artifact_key, parquet)
                    created = True
                return await self._repo.insert(new, conn=conn)
            except BaseException:
                if created:
                    with contextlib.suppress(Exception):
                        await self._artifacts.delete(new.artifact_key)
                raise
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", new.artifact_key)

    # ---------------------------------------------------------------- delete
    async def delete(self, ref: str, *, force: bool) -> DatasetRecord:
        ref = (ref or "").strip()
        if ref and not ref.startswith("datasets/") and "@" not in ref and await self._repo.get(ref, with_profile=False) is None:
            raise errors.InvalidArgument(
                f"name a single version to delete: {ref}@VERSION or its id (a bare name is refused so the wrong "
                "version is never deleted)")
        record = await self.resolve(ref, with_profile=False)
        if not force:
            referrers = await self._repo.references(record.id)
            if referrers:
                total = await self._repo.count_references(record.id)
                more = f" and {total - len(referrers)} more" if total > len(referrers) else ""
                raise errors.FailedPrecondition(
                    f"dataset {record.display_name}@{record.version} is used by {', '.join(referrers)}{more}; "
                    "delete those first or pass force=true")
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", record.artifact_key)
            try:
                deleted, others = await self._repo.delete(record.id, conn=conn)
                if deleted is None:
                    raise errors.NotFound(f"dataset {record.resource_name} was deleted concurrently")
                if others == 0:
                    await self._artifacts.delete(record.artifact_key)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", record.artifact_key)
        return record

    # ---------------------------------------------------------------- prepare
    async def prepare(self, ref: str, recipe_text: str, *, output_display_name: str = "",
                      validate_only: bool = False) -> list[DatasetRecord]:
        if not recipe_text.strip():
            raise errors.InvalidArgument("recipe is required: YAML or JSON with a `steps` list")
        try:
            recipe = recipes.parse_recipe(recipe_text)
        except recipes.RecipeError as exc:
            raise errors.InvalidArgument(f"invalid recipe: {exc}") from None
        output = validate_display_name(output_display_name, "output_display_name") if output_display_name else ""
        source = await self.resolve(ref, with_profile=False)
        output = output or source.display_name
        path = await self.local_parquet(source)
        import pyarrow.parquet as pq

        schema = await _blocking(pq.read_schema, path)
        try:
            recipes.validate_recipe(recipe, schema)
        except recipes.RecipeError as exc:
            raise errors.InvalidArgument(f"invalid recipe for {source.display_name}@{source.version}: {exc}") from None
        if validate_only:
            return []
        names = {"": output, "train": f"{output}-train", "test": f"{output}-test"}
        for name in names.values():
            validate_display_name(name, "output_display_name")
        work = self._work_dir / "prepare" / uuid.uuid4().hex
        work.mkdir(parents=True)
        try:
            async with self._convert_slots:
                results = await _blocking(_run_recipe, recipe, path, work, source.column_hints)
            stored = []
            for suffix, described in results:
                new = _derived(source, names[suffix], described, recipe=recipe.to_json(),
                               description=f"prepared from {source.display_name}@{source.version}")
                stored.append(await self._store(new, described[0]))
            return stored
        except recipes.RecipeError as exc:
            raise errors.InvalidArgument(f"recipe failed on {source.display_name}@{source.version}: {exc}") from None
        finally:
            for file in work.glob("*"):
                file.unlink(missing_ok=True)
            work.rmdir()


    async def store_derived(self, file: Path, *, display_name: str, parent: DatasetRecord,
                            description: str) -> DatasetRecord:
        """Store a Parquet file the platform wrote from `parent` (a batch prediction's output) as the
        next version of `display_name`, profiled like any dataset."""
        validate_display_name(display_name, "output_display_name")
        described = await _blocking(_describe_parquet, file)
        return await self._store(_derived(parent, display_name, described, description=description), file)


def _derived(source: DatasetRecord, display_name: str, described: tuple, *, description: str,
             recipe: str = "") -> NewDataset:
    """The row of a dataset made from `source`; `described` is (file, rows, columns, profile, size, sha)."""
    _, rows, cols, profile, size, sha = described
    return NewDataset(
        id=f"ds-{uuid.uuid4().hex[:16]}", display_name=display_name, source_format="parquet", source_size_bytes=size,
        source_sha256=sha, artifact_key=_artifact_key(sha), size_bytes=size, sha256=sha, row_count=rows,
        column_count=cols, profile=profile,
        column_hints={k: v for k, v in source.column_hints.items() if k in {c["name"] for c in profile["columns"]}},
        parent_id=source.id, recipe=recipe, description=description)


def _describe_parquet(file: Path) -> tuple:
    import pyarrow.parquet as pq

    table = pq.read_table(file)
    return (file, table.num_rows, table.num_columns, profile_table(table, {}), file.stat().st_size,
            _sha256_file(file))


def _run_recipe(recipe: recipes.Recipe, path: Path, work: Path, hints: dict[str, str]) -> list[tuple[str, tuple]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    results = []
    for suffix, out in recipes.apply_recipe(recipe, table):
        if out.num_rows == 0:
            raise recipes.RecipeError(f"the recipe leaves no rows{' in the ' + suffix + ' split' if suffix else ''}")
        file = work / f"{suffix or 'all'}.parquet"
        pq.write_table(out, file, compression="zstd")
        profile = profile_table(out, {k: v for k, v in hints.items() if k in out.column_names})
        results.append((suffix, (file, out.num_rows, out.num_columns, profile, file.stat().st_size, _sha256_file(file))))
    return results


def _read_sample(path: Path, n: int, random: bool, seed: int, columns: list[str]) -> Sample:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise errors.InvalidArgument(f"columns not in the dataset: {', '.join(unknown)} (it has: {', '.join(names)})")
    cols = list(columns) or names
    total = parquet.metadata.num_rows
    if not random or n >= total:
        batches = []
        remaining = min(n, total)
        for batch in parquet.iter_batches(batch_size=min(max(remaining, 1), 65536), columns=cols):
            batches.append(batch.slice(0, remaining))
            remaining -= min(remaining, batch.num_rows)
            if remaining <= 0:
                break
        table = pa.Table.from_batches(batches) if batches else None
    else:
        rng = np.random.default_rng(seed)
        wanted = np.sort(rng.choice(total, size=n, replace=False))
        pieces, start = [], 0
        for group in range(parquet.num_row_groups):
            stop = start + parquet.metadata.row_group(group).num_rows
            local = wanted[(wanted >= start) & (wanted < stop)] - start
            if len(local):
                pieces.append(parquet.read_row_group(group, columns=cols).take(pa.array(local)))
            start = stop
        table = pa.concat_tables(pieces)
    rows = [] if table is None else [_json_safe(row) for row in table.to_pylist()]
    return Sample(columns=cols, rows=rows)
