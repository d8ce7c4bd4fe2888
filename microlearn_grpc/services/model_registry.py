"""Model registry use cases: register trained models as numbered versions of a name, read and
delete versions, and move aliases (promote), roll them back and delete them.

References are parsed here, once: `registeredModels/{name}/versions/{n}`,
`registeredModels/{name}/aliases/{alias}`, `NAME@N` and `NAME@ALIAS`. Every alias move bumps the
serving generation (a database trigger), and `on_change` wakes this process's router at once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable

from microlearn_grpc import errors
from microlearn_grpc.services.training import Page, encode_offset, offset_of, page_size_of, check_labels
from microlearn_grpc.storage.models_repo import ModelRecord, ModelRepository
from microlearn_grpc.storage.registry_repo import AliasRecord, RegistryRepository, VersionRecord

REGISTERED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,62}")
MAX_DESCRIPTION = 2000
MAX_ALIASES = 20
_LONG = re.compile(r"registeredModels/([^/]+)/(versions|aliases)/([^/]+)")


@dataclasses.dataclass(frozen=True)
class VersionRef:
    """A parsed reference: exactly one of `version` and `alias` is set."""

    registered_model: str
    version: int | None = None
    alias: str | None = None

    @property
    def short(self) -> str:
        return f"{self.registered_model}@{self.alias if self.alias else self.version}"


def _bad(field: str, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"{field}: {message}")


def registered_name_of(value: str, field: str) -> str:
    name = (value or "").strip().removeprefix("registeredModels/")
    if not REGISTERED_NAME.fullmatch(name):
        raise _bad(field, f"{value!r} is not a registered model name: 1-128 letters, digits, '.', '_' and '-', "
                          "starting with a letter or digit (or registeredModels/NAME)")
    return name


def alias_of(value: str, field: str) -> str:
    if not ALIAS.fullmatch(value or ""):
        raise _bad(field, f"{value!r} is not an alias: 1-63 lowercase letters, digits, '-' and '_', "
                          "starting with a letter")
    return value


def parse_version_ref(value: str, field: str, *, allow_alias: bool = True) -> VersionRef:
    text = (value or "").strip()
    long = _LONG.fullmatch(text)
    if long:
        name, kind, tag = long.groups()
        tag = tag if kind == "aliases" else (tag if tag.isdigit() else "?")
    elif "@" in text:
        name, _, tag = text.rpartition("@")
    else:
        raise _bad(field, f"{value!r} is not a model version: use NAME@N, NAME@ALIAS, "
                          "registeredModels/NAME/versions/N or registeredModels/NAME/aliases/ALIAS")
    name = registered_name_of(name, field)
    if tag.isdigit() and int(tag) >= 1 and not (long and long.group(2) == "aliases"):
        return VersionRef(name, version=int(tag))
    if not allow_alias:
        raise _bad(field, f"{value!r} must name a version number (NAME@N), not an alias")
    return VersionRef(name, alias=alias_of(tag, field))


def alias_ref_of(value: str, field: str) -> tuple[str, str]:
    ref = parse_version_ref(value, field)
    if ref.alias is None:
        raise _bad(field, f"{value!r} names a version; give an alias as NAME@ALIAS or "
                          "registeredModels/NAME/aliases/ALIAS")
    return ref.registered_model, ref.alias


class ModelRegistry:
    def __init__(self, registry: RegistryRepository, models: ModelRepository, *,
                 on_change: Callable[[], None] = lambda: None,
                 on_registered: Callable[[ModelRecord], Awaitable[None]] | None = None) -> None:
        self._repo = registry
        self._models = models
        self._on_change = on_change
        self._on_registered = on_registered  # e.g. start the evaluation job of a newly registered model

    async def model_of(self, version: VersionRecord) -> ModelRecord:
        model = await self._models.get(version.model_id)
        if model is None:  # the foreign key makes this impossible short of manual deletes
            raise errors.DataLoss(f"{version.resource_name} refers to models/{version.model_id}, which is gone")
        return model

    async def model_by_id(self, model_id: str) -> ModelRecord | None:
        return await self._models.get(model_id)

    async def resolve(self, ref: VersionRef, field: str) -> VersionRecord:
        """The version a reference points at now."""
        number = ref.version
        if ref.alias is not None:
            alias = await self._repo.get_alias(ref.registered_model, ref.alias)
            if alias is None:
                raise errors.NotFound(f"{field}: alias {ref.short} does not exist")
            number = alias.version
        assert number is not None
        version = await self._repo.get_version(ref.registered_model, number)
        if version is None:
            raise errors.NotFound(f"{field}: model version {ref.short} does not exist")
        return version

    async def register(self, registered_model: str, model: str, *, description: str, labels: dict[str, str],
                       aliases: list[str]) -> tuple[VersionRecord, ModelRecord, bool]:
        name = registered_name_of(registered_model, "registered_model")
        model_id = (model or "").strip().removeprefix("models/")
        if not model_id or "/" in model_id:
            raise _bad("model", "give a trained model as models/ID or its id")
        if len(description) > MAX_DESCRIPTION:
            raise _bad("description", f"at most {MAX_DESCRIPTION} characters")
        check_labels(labels, "labels")
        if len(aliases) > MAX_ALIASES:
            raise _bad("aliases", f"at most {MAX_ALIASES}")
        for i, alias in enumerate(aliases):
            alias_of(alias, f"aliases[{i}]")
        record = await self._models.get(model_id)
        if record is None:
            raise errors.NotFound(f"model: models/{model_id} does not exist")
        version, already = await self._repo.register(name, model_id=model_id, task=record.task,
                                                     description=description, labels=labels,
                                                     aliases=list(dict.fromkeys(aliases)))
        if aliases:
            self._on_change()
        if not already and self._on_registered is not None:
            await self._on_registered(record)
        return version, record, already

    async def get_version(self, ref: str) -> tuple[VersionRecord, ModelRecord]:
        version = await self.resolve(parse_version_ref(ref, "name"), "name")
        return version, await self.model_of(version)

    async def list_versions(self, registered_model: str, *, page_size: int, page_token: str) -> Page:
        name = registered_name_of(registered_model, "registered_model")
        size, offset = page_size_of(page_size), offset_of(page_token)
        if await self._repo.get_registered(name) is None:
            raise errors.NotFound(f"registered model registeredModels/{name} does not exist")
        items, total = await self._repo.list_versions(name, page_size=size + 1, offset=offset)
        pairs = [(v, await self.model_of(v)) for v in items[:size]]
        return Page(pairs, encode_offset(offset + size) if len(items) > size else "", total)

    async def delete_version(self, ref: str) -> VersionRecord:
        parsed = parse_version_ref(ref, "name", allow_alias=False)
        assert parsed.version is not None
        deleted = await self._repo.delete_version(parsed.registered_model, parsed.version)
        if deleted is None:
            raise errors.NotFound(f"model version {parsed.short} does not exist")
        return deleted

    async def list_registered(self, *, page_size: int, page_token: str, name_prefix: str) -> Page:
        size, offset = page_size_of(page_size), offset_of(page_token)
        prefix = (name_prefix or "").removeprefix("registeredModels/")
        if len(prefix) > 128:
            raise _bad("name_prefix", "at most 128 characters")
        items, total = await self._repo.list_registered(prefix=prefix, page_size=size + 1, offset=offset)
        return Page(items[:size], encode_offset(offset + size) if len(items) > size else "", total)

    async def set_alias(self, model_version: str, alias: str) -> tuple[AliasRecord, int | None]:
        alias = alias_of(alias, "alias")
        target = await self.resolve(parse_version_ref(model_version, "model_version"), "model_version")
        record, previous = await self._repo.set_alias(target.registered_model, alias, target.version)
        if previous != target.version:
            self._on_change()
        return record, previous

    async def rollback_alias(self, ref: str) -> tuple[AliasRecord, int]:
        name, alias = alias_ref_of(ref, "name")
        record, left = await self._repo.rollback_alias(name, alias)
        self._on_change()
        return record, left

    async def delete_alias(self, ref: str) -> str:
        name, alias = alias_ref_of(ref, "name")
        if not await self._repo.delete_alias(name, alias):
            raise errors.NotFound(f"alias {name}@{alias} does not exist")
        self._on_change()
        return f"registeredModels/{name}/aliases/{alias}"
