"""Adapters: metadata repository (asyncpg), artifact store, event bus, tracker."""
