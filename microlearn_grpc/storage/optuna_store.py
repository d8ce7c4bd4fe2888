"""Optuna's RDB storage on the platform's PostgreSQL, in the `optuna` schema (migration 0004).

Every process (server, any worker on any host) that opens a study through here sees the same trials,
so the sampler learns from all of them. One SQLAlchemy engine per process and URL; Optuna's calls are
blocking, so async callers run them in a thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_lock = threading.Lock()
_storages: dict[str, Any] = {}


def sqlalchemy_url(database_url: str) -> str:
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres", "postgresql+psycopg2"):
        raise ValueError(f"Optuna storage needs a postgresql:// URL, got scheme {scheme!r}")
    return "postgresql+psycopg2://" + rest


def optuna_storage(database_url: str) -> Any:
    """The process's RDBStorage for `database_url` (created on first use: that creates Optuna's tables)."""
    with _lock:
        storage = _storages.get(database_url)
        if storage is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            for attempt in range(3):
                try:
                    storage = optuna.storages.RDBStorage(
                        sqlalchemy_url(database_url),
                        engine_kwargs={"connect_args": {"options": "-c search_path=optuna"}, "pool_pre_ping": True,
                                       "pool_size": 2, "max_overflow": 4})
                    break
                except Exception:
                    # Workers starting together all create Optuna's tables in a new database; the
                    # losers of that race fail once, and find the tables on the next try.
                    if attempt == 2:
                        raise
                    time.sleep(0.2 * (attempt + 1))
            _storages[database_url] = storage
        return storage
