"""The model registry in PostgreSQL: registered models, their numbered versions, and aliases with
the history RollbackAlias walks back through.

Each write that reads before it writes (registering the next version, moving an alias) locks the
registered model's row first, so concurrent calls serialize per name. Refusals the database
enforces (a version an alias points at, an alias a deployment follows) surface as
`errors.FailedPrecondition` naming what holds it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import asyncpg

from microlearn_grpc import errors


@dataclasses.dataclass(frozen=True)
class AliasRecord:
    registered_model: str
    alias: str
    version: int
    updated_at: dt.datetime
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # {version, set_at, unset_at}


@dataclasses.dataclass(frozen=True)
class VersionRecord:
    registered_model: str
    version: int
    model_id: str
    description: str
    labels: dict[str, str]
    created_at: dt.datetime
    aliases: list[str]

    @property
    def resource_name(self) -> str:
        return version_name(self.registered_model, self.version)


@dataclasses.dataclass(frozen=True)
class RegisteredModelRecord:
    name: str
    description: str
    task: str
    latest_version: int
    version_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    aliases: list[AliasRecord]


def version_name(registered_model: str, version: int) -> str:
    return f"registeredModels/{registered_model}/versions/{version}"


_VERSION_SELECT = """
SELECT v.registered_model, v.version, v.model_id, v.description, v.labels, v.created_at,
       COALESCE((SELECT array_agg(a.alias ORDER BY a.alias) FROM model_aliases a
                 WHERE a.registered_model = v.registered_model AND a.version = v.version), '{}') AS aliases
FROM model_versions v"""


# In the transaction that moves an alias, so a serving process's snapshot sees the move and the
# UPDATING state together (and its READY, written after the swap, is never overwritten by a late one).
_MARK_FOLLOWERS = """
UPDATE deployments d SET state = 'UPDATING', state_message = 'loading the new target of ' || $1 || '@' || $2
WHERE EXISTS (SELECT 1 FROM deployment_targets t WHERE t.deployment = d.name
              AND t.registered_model = $1 AND t.alias = $2)"""


def _version(row: asyncpg.Record) -> VersionRecord:
    return VersionRecord(**{**dict(row), "aliases": list(row["aliases"])})


class RegistryRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- registered models -------------------------------------------------------------------------

    async def get_registered(self, name: str) -> RegisteredModelRecord | None:
        found = await self._registered_where("r.name = $1", [name], limit=1, offset=0)
        return found[0] if found else None

    async def list_registered(self, *, prefix: str, page_size: int, offset: int,
                              ) -> tuple[list[RegisteredModelRecord], int]:
        args: list[Any] = [prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"]
        total = await self._pool.fetchval("SELECT count(*) FROM registered_models r WHERE r.name LIKE $1", *args)
        return await self._registered_where("r.name LIKE $1", args, limit=page_size, offset=offset), int(total)

    async def _registered_where(self, where: str, args: list[Any], *, limit: int, offset: int,
                                ) -> list[RegisteredModelRecord]:
        rows = await self._pool.fetch(
            f"SELECT r.name, r.description, r.task, r.latest_version, r.created_at, r.updated_at,"
            f" (SELECT count(*) FROM model_versions v WHERE v.registered_model = r.name) AS version_count"
            f" FROM registered_models r WHERE {where} ORDER BY r.name"
            f" LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}", *args, limit, offset)
        aliases = await self._aliases([r["name"] for r in rows])
        return [RegisteredModelRecord(**{**dict(r), "version_count": int(r["version_count"])},
                                      aliases=aliases.get(r["name"], [])) for r in rows]

    async def _aliases(self, names: list[str], alias: str | None = None) -> dict[str, list[AliasRecord]]:
        rows = await self._pool.fetch(
            "SELECT registered_model, alias, version, updated_at FROM model_aliases"
            " WHERE registered_model = ANY($1::text[]) AND ($2::text IS NULL OR alias = $2)"
            " ORDER BY registered_model, alias", names, alias)
        history = await self._pool.fetch(
            "SELECT registered_model, alias, version, set_at, unset_at FROM model_alias_history"
            " WHERE registered_model = ANY($1::text[]) AND ($2::text IS NULL OR alias = $2)"
            " ORDER BY id DESC", names, alias)
        past: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for h in history:
            past.setdefault((h["registered_model"], h["alias"]), []).append(
                {"version": h["version"], "set_at": h["set_at"], "unset_at": h["unset_at"]})
        out: dict[str, list[AliasRecord]] = {}
        for r in rows:
            out.setdefault(r["registered_model"], []).append(
                AliasRecord(**dict(r), history=past.get((r["registered_model"], r["alias"]), [])))
        return out

    # -- versions --------------------------------------------------------------------------------

    async def register(self, name: str, *, model_id: str, task: str, description: str, labels: dict[str, str],
                       aliases: list[str]) -> tuple[VersionRecord, bool]:
        """Add `model_id` as the next version of `name` (created on first use) and point `aliases`
        at it. Returns (version, already_registered)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO registered_models (name, description, task) VALUES ($1, $2, $3)"
                               " ON CONFLICT (name) DO NOTHING", name, description, task)
            current = await conn.fetchrow("SELECT task, latest_version FROM registered_models WHERE name = $1"
                                          " FOR UPDATE", name)
            if current["task"] != task:
                raise errors.FailedPrecondition(
                    f"model: registered model {name!r} holds {current['task']} models; this one is {task}")
            existing = await conn.fetchval("SELECT version FROM model_versions WHERE registered_model = $1"
                                           " AND model_id = $2", name, model_id)
            if existing is not None:
                return await self._get_version(conn, name, existing), True
            version = current["latest_version"] + 1
            await conn.execute("INSERT INTO model_versions (registered_model, version, model_id, description, labels)"
                               " VALUES ($1, $2, $3, $4, $5)", name, version, model_id, description, labels)
            await conn.execute("UPDATE registered_models SET latest_version = $2, updated_at = now() WHERE name = $1",
                               name, version)
            for alias in aliases:
                await self._move_alias(conn, name, alias, version)
            return await self._get_version(conn, name, version), False

    async def _get_version(self, conn: Any, name: str, version: int) -> VersionRecord:
        row = await conn.fetchrow(f"{_VERSION_SELECT} WHERE v.registered_model = $1 AND v.version = $2",
                                  name, version)
        return _version(row)

    async def get_version(self, name: str, version: int) -> VersionRecord | None:
        row = await self._pool.fetchrow(f"{_VERSION_SELECT} WHERE v.registered_model = $1 AND v.version = $2",
                                        name, version)
        return _version(row) if row else None

    async def list_versions(self, name: str, *, page_size: int, offset: int) -> tuple[list[VersionRecord], int]:
        total = await self._pool.fetchval("SELECT count(*) FROM model_versions WHERE registered_model = $1", name)
        rows = await self._pool.fetch(f"{_VERSION_SELECT} WHERE v.registered_model = $1"
                                      " ORDER BY v.version DESC LIMIT $2 OFFSET $3", name, page_size, offset)
        return [_version(r) for r in rows], int(total)

    async def delete_version(self, name: str, version: int) -> VersionRecord | None:
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetchrow(f"{_VERSION_SELECT} WHERE v.registered_model = $1 AND v.version = $2"
                                        " FOR UPDATE OF v", name, version)
            if found is None:
                return None
            record = _version(found)
            if record.aliases:
                raise errors.FailedPrecondition(
                    f"{record.resource_name} is the target of alias(es) {', '.join(record.aliases)}; "
                    "move or delete them first")
            users = await conn.fetch("SELECT DISTINCT deployment FROM deployment_targets"
                                     " WHERE registered_model = $1 AND version = $2 ORDER BY deployment",
                                     name, version)
            if users:
                raise errors.FailedPrecondition(
                    f"{record.resource_name} is served by deployment(s) "
                    f"{', '.join('deployments/' + u['deployment'] for u in users)}; change their traffic first")
            await conn.execute("DELETE FROM model_versions WHERE registered_model = $1 AND version = $2",
                               name, version)
            await conn.execute("UPDATE registered_models SET updated_at = now() WHERE name = $1", name)
            return record

    # -- aliases ---------------------------------------------------------------------------------

    async def get_alias(self, name: str, alias: str) -> AliasRecord | None:
        found = (await self._aliases([name], alias)).get(name, [])
        return found[0] if found else None

    async def set_alias(self, name: str, alias: str, version: int) -> tuple[AliasRecord, int | None]:
        """Point `alias` at `version`; returns the alias and the version it left (None if new)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM registered_models WHERE name = $1 FOR UPDATE", name)
            previous = await self._move_alias(conn, name, alias, version)
        record = await self.get_alias(name, alias)
        assert record is not None
        return record, previous

    @staticmethod
    async def _move_alias(conn: Any, name: str, alias: str, version: int) -> int | None:
        current = await conn.fetchrow("SELECT version, updated_at FROM model_aliases"
                                      " WHERE registered_model = $1 AND alias = $2 FOR UPDATE", name, alias)
        if current is None:
            await conn.execute("INSERT INTO model_aliases (registered_model, alias, version) VALUES ($1, $2, $3)",
                               name, alias, version)
            await conn.execute("UPDATE registered_models SET updated_at = now() WHERE name = $1", name)
            return None
        if current["version"] == version:
            return version
        await conn.execute("INSERT INTO model_alias_history (registered_model, alias, version, set_at)"
                           " VALUES ($1, $2, $3, $4)", name, alias, current["version"], current["updated_at"])
        await conn.execute("UPDATE model_aliases SET version = $3, updated_at = now()"
                           " WHERE registered_model = $1 AND alias = $2", name, alias, version)
        await conn.execute("UPDATE registered_models SET updated_at = now() WHERE name = $1", name)
        await conn.execute(_MARK_FOLLOWERS, name, alias)
        return int(current["version"])

    async def rollback_alias(self, name: str, alias: str) -> tuple[AliasRecord, int]:
        """Move `alias` back to its newest history entry (which is consumed); returns the alias and
        the version it left."""
        async with self._pool.acquire() as conn, conn.transaction():
            current = await conn.fetchrow("SELECT version FROM model_aliases WHERE registered_model = $1"
                                          " AND alias = $2 FOR UPDATE", name, alias)
            if current is None:
                raise errors.NotFound(f"alias registeredModels/{name}/aliases/{alias} does not exist")
            entry = await conn.fetchrow("SELECT id, version, set_at FROM model_alias_history"
                                        " WHERE registered_model = $1 AND alias = $2 ORDER BY id DESC LIMIT 1",
                                        name, alias)
            if entry is None:
                raise errors.FailedPrecondition(f"alias {name}@{alias} has no earlier target to roll back to")
            await conn.execute("DELETE FROM model_alias_history WHERE id = $1", entry["id"])
            await conn.execute("UPDATE model_aliases SET version = $3, updated_at = now()"
                               " WHERE registered_model = $1 AND alias = $2", name, alias, entry["version"])
            await conn.execute(_MARK_FOLLOWERS, name, alias)
            await conn.execute("UPDATE registered_models SET updated_at = now() WHERE name = $1", name)
        record = await self.get_alias(name, alias)
        assert record is not None
        return record, int(current["version"])

    async def delete_alias(self, name: str, alias: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            users = await conn.fetch("SELECT DISTINCT deployment FROM deployment_targets"
                                     " WHERE registered_model = $1 AND alias = $2 ORDER BY deployment", name, alias)
            if users:
                raise errors.FailedPrecondition(
                    f"alias {name}@{alias} is followed by deployment(s) "
                    f"{', '.join('deployments/' + u['deployment'] for u in users)}; change their traffic first")
            try:
                deleted = await conn.fetchval("DELETE FROM model_aliases WHERE registered_model = $1 AND alias = $2"
                                              " RETURNING alias", name, alias)
            except asyncpg.ForeignKeyViolationError:  # a deployment started following it meanwhile
                raise errors.Aborted(f"alias {name}@{alias} changed during the call; retry") from None
            return deleted is not None
