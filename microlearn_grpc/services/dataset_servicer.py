"""DatasetService over gRPC: protobuf ↔ domain translation only."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from microlearn.v1 import common_pb2, dataset_pb2, dataset_pb2_grpc
from microlearn_grpc import errors
from microlearn_grpc.services.datasets import DatasetService, UploadRequest
from microlearn_grpc.services.enums import TASK_TYPES
from microlearn_grpc.services.grpc_errors import translate_errors
from microlearn_grpc.storage.datasets_repo import DatasetRecord

_COLUMN_TYPES = {
    "numeric": common_pb2.COLUMN_TYPE_NUMERIC, "categorical": common_pb2.COLUMN_TYPE_CATEGORICAL,
    "boolean": common_pb2.COLUMN_TYPE_BOOLEAN, "datetime": common_pb2.COLUMN_TYPE_DATETIME,
    "text": common_pb2.COLUMN_TYPE_TEXT, "id": common_pb2.COLUMN_TYPE_ID,
}
_COLUMN_NAMES = {v: k for k, v in _COLUMN_TYPES.items()}
_FORMATS = {"csv": dataset_pb2.DATA_FORMAT_CSV, "parquet": dataset_pb2.DATA_FORMAT_PARQUET,
            "jsonl": dataset_pb2.DATA_FORMAT_JSONL}
_FORMAT_NAMES = {v: k for k, v in _FORMATS.items()}


def _timestamp(value) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def profile_to_proto(profile: dict) -> dataset_pb2.DatasetProfile:
    message = dataset_pb2.DatasetProfile(
        row_count=profile["row_count"], column_count=profile["column_count"],
        duplicate_row_count=profile.get("duplicate_row_count", 0))
    for column in profile["columns"]:
        out = message.columns.add(
            name=column["name"], type=_COLUMN_TYPES.get(column["type"], common_pb2.COLUMN_TYPE_UNSPECIFIED),
            physical_type=column.get("physical_type", ""), missing_count=column.get("missing_count", 0),
            distinct_count=column.get("distinct_count", 0), distinct_count_exact=column.get("distinct_count_exact", False),
            min_datetime=column.get("min_datetime") or "", max_datetime=column.get("max_datetime") or "",
            hinted=column.get("hinted", False))
        if column.get("numeric"):
            out.numeric.CopyFrom(json_format.ParseDict(
                {k: v for k, v in column["numeric"].items() if v is not None}, dataset_pb2.NumericSummary()))
        for top in column.get("top_values", []):
            out.top_values.add(value=str(top["value"]), count=top["count"])
    for suggestion in profile.get("target_suggestions", []):
        message.target_suggestions.add(column=suggestion["column"], task=TASK_TYPES.get(suggestion["task"], 0),
                                       reason=suggestion.get("reason", ""), score=suggestion.get("score", 0.0))
    return message


def dataset_to_proto(record: DatasetRecord) -> dataset_pb2.Dataset:
    message = dataset_pb2.Dataset(
        name=record.resource_name, id=record.id, display_name=record.display_name, version=record.version,
        source_format=_FORMATS.get(record.source_format, dataset_pb2.DATA_FORMAT_UNSPECIFIED),
        source_size_bytes=record.source_size_bytes, source_sha256=record.source_sha256, size_bytes=record.size_bytes,
        sha256=record.sha256, row_count=record.row_count, column_count=record.column_count,
        parent=f"datasets/{record.parent_id}" if record.parent_id else "", recipe=record.recipe,
        description=record.description, labels=record.labels, create_time=_timestamp(record.created_at),
        column_hints=[dataset_pb2.ColumnHint(column=c, type=_COLUMN_TYPES[t]) for c, t in record.column_hints.items()])
    if record.profile is not None:
        message.profile.CopyFrom(profile_to_proto(record.profile))
    return message


def _upload_request(metadata: dataset_pb2.UploadDatasetMetadata) -> UploadRequest:
    hints = {}
    for hint in metadata.column_hints:
        if hint.type not in _COLUMN_NAMES:
            raise errors.InvalidArgument(f"column_hints: column {hint.column!r} needs a type other than UNSPECIFIED")
        if hint.column in hints:
            raise errors.InvalidArgument(f"column_hints: column {hint.column!r} is hinted twice")
        hints[hint.column] = _COLUMN_NAMES[hint.type]
    return UploadRequest(
        display_name=metadata.display_name, format=_FORMAT_NAMES.get(metadata.format),
        column_hints=hints, description=metadata.description, labels=dict(metadata.labels),
        expected_size_bytes=metadata.expected_size_bytes, expected_sha256=metadata.expected_sha256)


class DatasetServicer(dataset_pb2_grpc.DatasetServiceServicer):
    def __init__(self, service: DatasetService) -> None:
        self._service = service

    @translate_errors
    async def UploadDataset(self, request_iterator: AsyncIterator[dataset_pb2.UploadDatasetRequest], context):
        iterator = request_iterator.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            raise errors.InvalidArgument("empty upload stream: send `metadata` first, then the file as `chunk`s") from None
        if first.WhichOneof("payload") != "metadata":
            raise errors.InvalidArgument("the first message of an upload must carry `metadata` (display_name, format)")

        async def chunks() -> AsyncIterator[bytes]:
            async for message in iterator:
                if message.WhichOneof("payload") != "chunk":
                    raise errors.InvalidArgument("`metadata` may only be sent once, as the first message")
                yield message.chunk

        record, deduplicated = await self._service.upload(_upload_request(first.metadata), chunks())
        return dataset_pb2.UploadDatasetResponse(dataset=dataset_to_proto(record), deduplicated=deduplicated)

    @translate_errors
    async def GetDataset(self, request, context):
        return dataset_pb2.GetDatasetResponse(dataset=dataset_to_proto(await self._service.resolve(request.name)))

    @translate_errors
    async def ListDatasets(self, request, context):
        page = await self._service.list(page_size=request.page_size, page_token=request.page_token,
                                        prefix=request.display_name_prefix, latest_only=request.latest_only)
        return dataset_pb2.ListDatasetsResponse(datasets=[dataset_to_proto(r) for r in page.items],
                                                next_page_token=page.next_page_token, total_size=page.total_size)

    @translate_errors
    async def ListDatasetVersions(self, request, context):
        if not request.display_name:
            raise errors.InvalidArgument("display_name is required")
        page = await self._service.list(page_size=request.page_size, page_token=request.page_token,
                                        display_name=request.display_name)
        if page.total_size == 0:
            raise errors.NotFound(f"no dataset named {request.display_name!r}")
        return dataset_pb2.ListDatasetVersionsResponse(datasets=[dataset_to_proto(r) for r in page.items],
                                                       next_page_token=page.next_page_token, total_size=page.total_size)

    @translate_errors
    async def SampleDatasetRows(self, request, context):
        sample = await self._service.sample(request.name, row_count=request.row_count,
                                            random=request.mode == dataset_pb2.SAMPLE_MODE_RANDOM,
                                            seed=request.seed, columns=list(request.columns))
        rows = []
        for row in sample.rows:
            struct = struct_pb2.Struct()
            struct.update(row)
            rows.append(struct)
        return dataset_pb2.SampleDatasetRowsResponse(columns=sample.columns, rows=rows)

    @translate_errors
    async def DeleteDataset(self, request, context):
        record = await self._service.delete(request.name, force=request.force)
        return dataset_pb2.DeleteDatasetResponse(name=record.resource_name)

    @translate_errors
    async def PrepareDataset(self, request, context):
        records = await self._service.prepare(request.name, request.recipe,
                                              output_display_name=request.output_display_name,
                                              validate_only=request.validate_only)
        return dataset_pb2.PrepareDatasetResponse(datasets=[dataset_to_proto(r) for r in records])
