"""Read-only connections, refused writes by the database itself.

A read-only unit of work takes its connection with :func:`read_only_options`: the mark
``READ_ONLY_OPTION`` and, on PostgreSQL, the way it runs. The database then refuses every
write on it, whatever sent it (the ORM, a Core construct, SQL text, ``exec_driver_sql``),
at no extra round trip:

- SQLite: ``PRAGMA query_only`` is switched on before a marked transaction's ``BEGIN``
  and off before an unmarked one's, only when it changes (a local call, no I/O; the pool
  record remembers the state). :func:`set_query_only` is called by the engine's BEGIN hook.
- PostgreSQL: our engines' sessions start with ``default_transaction_read_only = on``
  (a connect-time option) and every transaction psycopg begins says what it is:
  ``BEGIN READ WRITE`` (the connections' ``read_only = False``, set once at connect, no
  round trip) or ``BEGIN ... READ ONLY`` for a read-only unit at a stricter isolation level
  (``postgresql_readonly``). A read-only unit at READ COMMITTED runs in autocommit, where
  each statement is its own implicit transaction at the session default: read-only.
  The container gives those units a second engine whose connections are in autocommit
  from the start (:func:`~skillmeat_cache.engine.create_read_engine`), so a unit of work
  does not switch its connection to autocommit and back (~12 of the ~40 µs a unit of
  work cost around its query; docs/performance.md, W6).
  A server in hot standby refuses ``BEGIN READ WRITE``, so there psycopg keeps its plain
  ``BEGIN`` (writes are refused anyway: ``DatabaseReadOnlyError``).

The refusal (SQLite ``SQLITE_READONLY``, PostgreSQL ``25006``; by code,
:func:`~skillmeat_cache.db_errors.is_read_only_refusal`) on a connection in that
read-only mode of ours comes out as ``ReadOnlyError``; the same codes elsewhere (a
read-only file, a standby) stay ``DatabaseReadOnlyError``.

Limits: this needs an engine from ``create_engine_for_url`` (its hooks); an engine in
AUTOCOMMIT has no transaction to mark, so there only the repositories' own check
refuses; the unit of work marks each connection it takes, so a commit or rollback must go
through ``uow.commit()`` / ``uow.rollback()`` (``uow.session.rollback()`` hands back the
marked connection and the next one is not marked).
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Engine, event

from .db_errors import is_read_only_refusal
from .errors import ReadOnlyError

__all__ = [
    "READ_ONLY_OPTION",
    "needs_connection_options",
    "install_postgresql_read_only",
    "install_refusal",
    "read_only_options",
    "reads_in_autocommit",
    "set_query_only",
]

# Connection execution option of a read-only unit of work: SQLite then starts a deferred
# BEGIN (not BEGIN IMMEDIATE) with PRAGMA query_only on.
READ_ONLY_OPTION = "skillmeat_read_only"
# Pool record info key (SQLite): PRAGMA query_only is on for this DBAPI connection.
_QUERY_ONLY = "skillmeat_query_only"
# Dialects of the PostgreSQL engines whose sessions default to read-only transactions
# (ours; an engine's own dialect, shared only with its execution-option copies).
_read_only_by_default: weakref.WeakSet[Any] = weakref.WeakSet()
# Dialects of our PostgreSQL read engines: read-only sessions, connections in autocommit.
_autocommit_reads: weakref.WeakSet[Any] = weakref.WeakSet()

_SQLITE_OPTIONS = {READ_ONLY_OPTION: True}
_PG_AUTOCOMMIT_OPTIONS = {READ_ONLY_OPTION: True, "isolation_level": "AUTOCOMMIT"}
_PG_READ_ENGINE_OPTIONS = {READ_ONLY_OPTION: True}
_PG_TRANSACTION_OPTIONS = {READ_ONLY_OPTION: True, "postgresql_readonly": True}


def read_only_options(engine: Engine) -> dict[str, Any]:
    """The execution options a read-only unit of work takes its connections with.

    PostgreSQL at READ COMMITTED (the default), on an engine whose sessions default to
    read-only: autocommit, one round trip per read, no BEGIN or ROLLBACK (each statement
    of a READ COMMITTED transaction takes its own snapshot anyway). Otherwise a
    ``READ ONLY`` transaction (its one snapshot kept at a stricter level). On a read engine
    (:func:`reads_in_autocommit`) the connections already are in autocommit: the mark alone.
    """
    if engine.dialect.name != "postgresql":
        return _SQLITE_OPTIONS
    if engine.dialect in _autocommit_reads:
        return _PG_READ_ENGINE_OPTIONS
    level = engine.get_execution_options().get("isolation_level") or engine.dialect.default_isolation_level
    if level == "READ COMMITTED" and engine.dialect in _read_only_by_default:
        return _PG_AUTOCOMMIT_OPTIONS
    return _PG_TRANSACTION_OPTIONS


def needs_connection_options(options: dict[str, Any]) -> bool:
    """Whether a read-only unit of work with ``options`` (from :func:`read_only_options`)
    must take its connection with them: not on a read engine, whose every connection
    already is what the unit needs (the mark then only tells the repositories).
    """
    return options is not _PG_READ_ENGINE_OPTIONS


def reads_in_autocommit(engine: Engine) -> bool:
    """Whether a read-only unit of work on ``engine`` (PostgreSQL) runs in autocommit: its
    sessions default to read-only transactions and its isolation level is READ COMMITTED.
    Connects once if the engine never has (the server's default level is learnt then).
    """
    if engine.dialect.name != "postgresql" or engine.dialect not in _read_only_by_default:
        return False
    if not hasattr(engine.dialect, "default_isolation_level"):
        with engine.connect():
            pass
    return read_only_options(engine) is _PG_AUTOCOMMIT_OPTIONS


def set_query_only(dbapi_connection: Any, info: dict[str, Any], read_only: bool) -> None:
    """SQLite: ``PRAGMA query_only`` as the transaction about to begin needs it, sent only
    when it changes (``info``: the pool record's, cleared with a new DBAPI connection).
    """
    if info.get(_QUERY_ONLY, False) is not read_only:
        dbapi_connection.execute("PRAGMA query_only = ON" if read_only else "PRAGMA query_only = OFF")
        info[_QUERY_ONLY] = read_only


def install_postgresql_read_only(engine: Engine, sessions_read_only: bool, *, read_engine: bool = False) -> None:
    """Refusals as ReadOnlyError (:func:`install_refusal`) and, with ``sessions_read_only``
    (the engine's options leave ``default_transaction_read_only`` to us and its isolation
    level is not AUTOCOMMIT), sessions that default to read-only transactions (a connect
    option) whose transactions psycopg begins ``READ WRITE`` (a client-side setting, no
    round trip); read-only units of work then run in autocommit. A hot standby refuses
    ``READ WRITE``: its connections keep the plain ``BEGIN``. ``read_engine``: an engine in
    AUTOCOMMIT for read-only units of work alone, with read-only sessions.
    """
    install_refusal(engine)
    if not (sessions_read_only or read_engine):
        return
    _read_only_by_default.add(engine.dialect)
    if read_engine:
        _autocommit_reads.add(engine.dialect)

    @event.listens_for(engine, "do_connect")
    def _read_only_sessions(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        cparams["options"] = f"{cparams.get('options') or ''} -c default_transaction_read_only=on".strip()

    if read_engine:  # no transactions of its own to begin READ WRITE
        return

    @event.listens_for(engine, "connect")
    def _read_write_transactions(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection.info.parameter_status("in_hot_standby") != "on":
            dbapi_connection.read_only = False


def _made_read_only(connection: Any, sqlite: bool) -> bool:
    """Whether the connection is in the read-only mode a read-only unit of work puts it in."""
    try:
        fairy = connection.connection
    except Exception:  # invalidated: not ours to judge
        return False
    if sqlite:
        return bool(fairy.info.get(_QUERY_ONLY))
    dbapi_connection = fairy.dbapi_connection
    if dbapi_connection.read_only:
        return True
    return bool(dbapi_connection.autocommit) and connection.dialect in _read_only_by_default


def install_refusal(engine: Engine) -> None:
    """The database's refusal of a write on a connection made read-only by a read-only unit
    of work comes out as ``ReadOnlyError`` (a dialect-level ``handle_error`` hook: nothing
    runs unless a statement fails).
    """
    sqlite = engine.dialect.name == "sqlite"

    def _refused(context: Any) -> BaseException | None:
        if context.connection is None or not is_read_only_refusal(context.original_exception):
            return None
        if not _made_read_only(context.connection, sqlite):
            return None
        return ReadOnlyError("this unit of work is read-only and cannot write")

    event.listen(engine, "handle_error", _refused)
