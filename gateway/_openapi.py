"""OpenAPI for the gateway: JSON schemas of the protobuf messages (from their descriptors) and shared responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["SCHEMA_PREFIX", "build_openapi", "message_schema", "responses"]

SCHEMA_PREFIX = "#/components/schemas/"

_INT64 = {"type": "string", "format": "int64", "description": "64-bit integer, a decimal string in JSON."}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"}, FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: {"type": "integer"}, FieldDescriptor.TYPE_SINT32: {"type": "integer"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer"}, FieldDescriptor.TYPE_UINT32: {"type": "integer"},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer"}, FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64, FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _INT64, FieldDescriptor.TYPE_FIXED64: _INT64,
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"}, FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
}

ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "integer", "description": "The HTTP status."},
    "status": {"type": "string", "description": "The canonical gRPC code name, e.g. NOT_FOUND."},
    "message": {"type": "string", "description": "What went wrong, from the service."}}}}}
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": SCHEMA_PREFIX + "Error"}}}
_COMMON_ERRORS = {400: "Invalid argument; the message says which.", 401: "No or wrong token.",
                  501: "Not implemented by this platform version yet.", 503: "The gRPC server is unreachable."}


def _value_schema(field: FieldDescriptor, defs: dict[str, Any]) -> dict[str, Any]:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_schema(field.message_type, defs)
    return dict(_SCALARS[field.type])


def message_schema(descriptor: Descriptor, defs: dict[str, Any], *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A `$ref` to the schema of a message's canonical JSON (proto field names), adding it and its parts to `defs`.

    With `exclude`, the schema (named `Full.Name-field-...`) leaves those fields out, for a body
    whose other fields come from the URL.
    """
    if descriptor.full_name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[descriptor.full_name])
    key = "-".join((descriptor.full_name, *exclude))
    if key not in defs:
        defs[key] = {}  # placeholder, for recursive messages
        properties = {}
        for field in descriptor.fields:
            if field.name in exclude:
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                value = _value_schema(field.message_type.fields_by_name["value"], defs)
                properties[field.name] = {"type": "object", "additionalProperties": value}
            elif field.is_repeated:
                properties[field.name] = {"type": "array", "items": _value_schema(field, defs)}
            else:
                properties[field.name] = _value_schema(field, defs)
        defs[key] = {"type": "object", "title": descriptor.name, "properties": properties,
                     "additionalProperties": False}
    return {"$ref": SCHEMA_PREFIX + key}


def responses(message: type[Message], errors: dict[int, str] | None = None) -> dict[int | str, Any]:
    """A route's OpenAPI `responses`: 200 with `message` (its schema added by `build_openapi`), and errors."""
    name = message.DESCRIPTOR.full_name
    content = {"application/json": {"schema": {"$ref": SCHEMA_PREFIX + name}}}
    documented: dict[int | str, Any] = {200: {"description": f"`{name}` as JSON.", "content": content}}
    for code, text in sorted({**_COMMON_ERRORS, **(errors or {})}.items()):
        documented[code] = {"description": text, "content": _ERROR_CONTENT}
    return documented


def build_openapi(app: FastAPI, messages: tuple[type[Message], ...], *,
                  bodies: tuple[tuple[type[Message], tuple[str, ...]], ...] = ()) -> dict[str, Any]:
    """The app's OpenAPI document with the schemas of `messages` (and of `bodies`, minus URL fields).

    FastAPI's 422 responses are dropped: the gateway answers invalid parameters with 400 and the
    error body every other failure has.
    """
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                         tags=app.openapi_tags)
    defs = schema.setdefault("components", {}).setdefault("schemas", {})
    defs.pop("HTTPValidationError", None)
    defs.pop("ValidationError", None)
    for message in messages:
        message_schema(message.DESCRIPTOR, defs)
    for message, exclude in bodies:
        message_schema(message.DESCRIPTOR, defs, exclude=exclude)
    defs["Error"] = ERROR_SCHEMA
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    return schema
