"""Throwaway PostgreSQL databases for the test suite and the benchmarks (not shipped in
the wheel: the package has no use for them).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from skillmeat_cache.errors import DatabaseUnavailableError

__all__ = ["throwaway_postgres_database"]


@contextmanager
def throwaway_postgres_database(admin_url: str, prefix: str, options: str = "") -> Iterator[str]:
    """Create an empty database on the server of ``admin_url`` (a user who may create
    databases), yield its URL, drop it afterwards (``WITH (FORCE)``). ``options`` are extra
    ``CREATE DATABASE`` clauses (e.g. a collation). DatabaseUnavailableError, before
    anything is yielded, when the server cannot be reached or psycopg is missing.
    """
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DatabaseUnavailableError(f"psycopg is not installed ({exc})") from exc
    admin = make_url(admin_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}" {options}')
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"PostgreSQL not reachable: {str(exc).splitlines()[0]}") from exc
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
