"""The marketplace repository on SQLAlchemy."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, or_, select
from sqlalchemy.orm import Session

from ..models import (
    MarketplaceEntry,
    check_text,
)
from ..values import ensure_utc, utcnow
from . import base
from .common import (
    add_entity,
    check_writable,
    contains,
    expire_loaded,
    group_by_columns,
    insert_for,
    loads_entities,
    translate_errors,
)
from .rows import (
    artifact_type_filter,
    lookup_key,
    marketplace_rows,
)
from .statements import (
    MARKETPLACE_ORDER,
)

MARKETPLACE = MarketplaceEntry.__table__

__all__ = ["SqlAlchemyMarketplaceRepository"]


@translate_errors
class SqlAlchemyMarketplaceRepository(base.MarketplaceRepository):
    """Marketplace entries in a SQL database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, entry: MarketplaceEntry) -> MarketplaceEntry:  # noqa: D102
        return add_entity(self._session, entry)

    def get(self, id: str) -> MarketplaceEntry | None:  # noqa: D102
        return self._session.get(MarketplaceEntry, lookup_key("id", id))

    def _ordered(self, stmt: Select[Any]) -> builtins.list[MarketplaceEntry]:
        stmt = stmt.order_by(*MARKETPLACE_ORDER)
        return builtins.list(self._session.scalars(stmt))

    @loads_entities
    def list(self, type: str | None = None) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        stmt = select(MarketplaceEntry)
        if type is not None:
            stmt = stmt.where(MarketplaceEntry.type == artifact_type_filter(type))
        return self._ordered(stmt)

    @loads_entities
    def search(self, text: str) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        check_text("text", text)
        stmt = select(MarketplaceEntry)
        if text:
            stmt = stmt.where(or_(contains(MarketplaceEntry.name, text), contains(MarketplaceEntry.description, text)))
        return self._ordered(stmt)

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = marketplace_rows(rows, utcnow())
        check_writable(self._session)
        if not prepared:
            return 0
        self._session.flush()
        insert = insert_for(self._session)
        changed = 0
        with self._session.begin_nested():
            for columns, group in group_by_columns(prepared).items():
                stmt = insert(MARKETPLACE)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["id"], set_={c: stmt.excluded[c] for c in columns if c != "id"}
                )
                result = self._session.execute(stmt.execution_options(preserve_rowcount=True), group)
                changed += max(result.rowcount, 0)
        expire_loaded(self._session, MarketplaceEntry)
        return changed

    def purge_older_than(self, age: timedelta, now: datetime | None = None) -> int:  # noqa: D102
        cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - age
        check_writable(self._session)
        self._session.flush()
        stmt = delete(MarketplaceEntry).where(MarketplaceEntry.cached_at < cutoff)
        result = self._session.execute(stmt.execution_options(synchronize_session="fetch"))
        return max(result.rowcount, 0)
