"""The search index (revision 0007): ``artifact_search`` kept equal to the tables by the
database's triggers whoever writes, and the searches that read it (``search_page``,
``artifact_page(text_=...)``, the CLI's listing) giving what a plain Python search of
the same rows gives, on both engines, with SQLite's full-text index and without it.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import Engine, text

from skillmeat_cache import Artifact, Project
from skillmeat_cache.errors import ValidationError
from skillmeat_cache.listing import artifact_page, search_page
from skillmeat_cache.values import ascii_lower
from skillmeat_cache.views import artifact_listing


def _expected_index(conn: Any) -> list[tuple[Any, ...]]:
    """What artifact_search must hold, computed in Python from the tables."""
    rows = conn.execute(
        text(
            "SELECT a.id, a.project_id, p.path, a.type, a.name, a.path, m.description, m.tags"
            " FROM artifacts AS a JOIN projects AS p ON p.id = a.project_id"
            " LEFT JOIN artifact_metadata AS m ON m.artifact_id = a.id"
        )
    ).all()
    out = []
    for id_, project_id, project_path, type_, name, path, description, tags in rows:
        tags = _tags(tags)
        tags_l = "".join(f"\x1e{ascii_lower(t)}" for t in tags) + "\x1e" if tags else ""
        out.append(
            (
                id_,
                project_id,
                project_path,
                type_,
                name,
                path,
                ascii_lower(name),
                ascii_lower(description or ""),
                tags_l,
            )
        )
    return sorted(out)


def _tags(value: Any) -> list[str]:
    import json

    return list((json.loads(value) if isinstance(value, str) else value) or [])


def _stored_index(conn: Any) -> list[tuple[Any, ...]]:
    return sorted(
        tuple(r)
        for r in conn.execute(
            text(
                "SELECT artifact_id, project_id, project_path, type, name, path, name_l, description_l, tags_l"
                " FROM artifact_search"
            )
        )
    )


def _assert_index_is_exact(engine: Engine) -> None:
    with engine.connect() as conn:
        assert _stored_index(conn) == _expected_index(conn)
        if engine.dialect.name == "sqlite":
            # FTS5 compares its index with the content table; raises on any difference.
            conn.execute(text("INSERT INTO artifact_search_fts (artifact_search_fts) VALUES ('integrity-check')"))


def test_every_write_path_keeps_the_index_exact(engine: Engine, uow_factory: Any) -> None:
    with uow_factory() as uow:
        a = uow.projects.add(Project(name="a", path="/w/a"))
        b = uow.projects.add(Project(name="b", path="/w/b"))
        uow.artifacts.add(Artifact(project_id=a.id, type="skill", name="PDF-Reader"))
        uow.artifacts.upsert_many(
            [
                {"project_id": b.id, "type": "agent", "name": "Code Review Bot"},
                {"project_id": b.id, "type": "command", "name": "lint"},
            ]
        )
    _assert_index_is_exact(engine)
    with uow_factory() as uow:
        ids = {x.name: x.id for p in (a.id, b.id) for x in uow.artifacts.list_for_project(p)}
        uow.metadata.set(ids["PDF-Reader"], data={"x": 1}, description="Reads PDF Files", tags=["Docs", "pdf", "Ünï"])
        uow.metadata.set_many([{"artifact_id": ids["lint"], "description": None, "tags": ["style"]}])
    _assert_index_is_exact(engine)
    with uow_factory() as uow:
        uow.artifacts.update_many([{"id": ids["lint"], "name": "Lint-Fix", "path": ".claude/commands/lint-fix.md"}])
        uow.metadata.set(ids["PDF-Reader"], data=None, description="Now about spreadsheets", tags=[])
        uow.artifacts.upsert_many([{"project_id": b.id, "type": "agent", "name": "Code Review Bot", "source": "x"}])
    _assert_index_is_exact(engine)
    with engine.begin() as conn:  # another writer, in plain SQL: a moved project, dropped metadata
        conn.execute(text("UPDATE projects SET path = '/w/moved' WHERE id = :id"), {"id": b.id})
        conn.execute(text("DELETE FROM artifact_metadata WHERE artifact_id = :id"), {"id": ids["lint"]})
    _assert_index_is_exact(engine)
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT project_path FROM artifact_search WHERE artifact_id = :id"), {"id": ids["lint"]}
            ).scalar_one()
            == "/w/moved"
        )
    with uow_factory() as uow:
        uow.artifacts.delete(ids["PDF-Reader"])
        uow.projects.delete(b.id)  # its artifacts go by cascade, and their index rows with them
    _assert_index_is_exact(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM artifact_search")).scalar_one() == 0


# ----------------------------------------------------------------- search results

WORDS = ["review", "Review", "csv", "pdf", "lint", "re", "view", "data", 'x"q', "naïve", "Ünï", "100%", "a_b"]


def _fill(uow_factory: Any, seed: int, projects: int = 4, per_project: int = 30) -> None:
    rnd = random.Random(seed)

    def phrase(n: int) -> str:
        return " ".join(rnd.choice(WORDS) for _ in range(n))

    with uow_factory() as uow:
        for p in range(projects):
            project = uow.projects.add(Project(name=f"p{p}", path=f"/w/{rnd.choice('aBc')}{p}"))
            rows = []
            for i in range(per_project):
                name = rnd.choice([rnd.choice(WORDS), phrase(2).replace(" ", "-"), f"tool{i}"])
                rows.append(
                    {
                        "project_id": project.id,
                        "type": rnd.choice(["skill", "agent", "command"]),
                        "name": name,
                        "path": f".claude/x/{i}",
                    }
                )
            uow.artifacts.upsert_many(rows)
            keys = uow.artifacts.keys_for_project(project.id)
            uow.metadata.set_many(
                [
                    {
                        "artifact_id": id_,
                        "description": rnd.choice([None, phrase(3)]),
                        "tags": rnd.sample(WORDS, rnd.randint(0, 3)),
                    }
                    for id_ in keys.values()
                ]
            )


def _python_search(conn: Any, q: str) -> list[tuple[int, str]]:
    """The documented ranking, computed in Python over every artifact: (rank, id)."""
    rows = conn.execute(
        text(
            "SELECT a.id, a.name, p.path, a.path, m.description, m.tags FROM artifacts AS a"
            " JOIN projects AS p ON p.id = a.project_id LEFT JOIN artifact_metadata AS m ON m.artifact_id = a.id"
        )
    ).all()
    lq = ascii_lower(q)
    found = []
    for id_, name, project_path, path, description, tags in rows:
        tags = [ascii_lower(t) for t in _tags(tags)]
        n = ascii_lower(name)
        if n == lq:
            rank = 0
        elif n.startswith(lq):
            rank = 1
        elif lq in n:
            rank = 2
        elif lq in tags:
            rank = 3
        elif lq in ascii_lower(description or "") or any(lq in t for t in tags):
            rank = 4
        else:
            continue
        found.append(((rank, n, name, project_path, path), id_))
    return [(key[0], id_) for key, id_ in sorted(found)]


def _all_pages(read: Any, limit: int) -> list[dict[str, Any]]:
    items, skip = [], 0
    while True:
        page = read(skip=skip, limit=limit)
        items += page["items"]
        skip += limit
        if skip >= page["total"]:
            assert len(items) == page["total"]
            return items


def _without_index(conn: Any) -> None:
    """The database as revision 0007 leaves it where SQLite has no trigram tokenizer or
    PostgreSQL no pg_trgm, in ``conn``'s transaction (rolled back when it closes).
    """
    conn.info.pop("artifact_search_fts", None)  # what the connection learnt of the schema
    if conn.dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            conn.execute(text(f"DROP TRIGGER artifact_search_fts_{trigger}"))
        conn.execute(text("DROP TABLE artifact_search_fts"))
    else:
        conn.execute(text("DROP INDEX idx_artifact_search_trgm"))


@pytest.mark.parametrize("index", ["index", "no index"])
def test_search_pages_equal_a_python_search(engine: Engine, uow_factory: Any, index: str) -> None:
    _fill(uow_factory, seed=7)
    with engine.connect() as conn:
        if index == "no index":
            _without_index(conn)
        for q in [
            "review",
            "REVIEW",
            "re",
            "e",
            "csv",
            "view",
            'x"q',
            '"',
            "naïve",
            "ünï",
            "Ünï",
            "100%",
            "_",
            "a_b",
            "tool1",
            "zzz",
            "w re",
            " "[:0] + "pdf lint",
        ]:
            expected = _python_search(conn, q)
            for limit in (7, 1000):
                got = _all_pages(lambda skip, limit, q=q: search_page(conn, q, skip=skip, limit=limit), limit)
                assert [(i["rank"], i["id"]) for i in got] == expected, (q, limit)
        assert search_page(conn, "review", skip=10_000, limit=5) == {
            "items": [],
            "total": len(_python_search(conn, "review")),
            "skip": 10_000,
            "limit": 5,
        }


@pytest.mark.parametrize("index", ["index", "no index"])
def test_artifact_text_pages_equal_the_listing(engine: Engine, uow_factory: Any, index: str) -> None:
    _fill(uow_factory, seed=11, per_project=80)
    with engine.connect() as conn:
        if index == "no index":
            _without_index(conn)
        project = conn.execute(text("SELECT id FROM projects ORDER BY path LIMIT 1")).scalar_one()
        for q in ["review", "re", "csv", "Ünï", "zzz", "100%"]:
            everything = artifact_listing(conn, text_=q)
            lq = ascii_lower(q)
            assert everything == [  # name or description only, not tags
                a
                for a in artifact_listing(conn)
                if lq in ascii_lower(a["name"]) or lq in ascii_lower(a["description"] or "")
            ], q
            for sort in ("project", "name", "type", "updated"):
                for limit in (3, 1000):  # small pages of a common word walk the index
                    got = _all_pages(
                        lambda skip, limit, q=q, sort=sort: artifact_page(
                            conn, text_=q, sort=sort, skip=skip, limit=limit
                        ),
                        limit,
                    )
                    plain = _all_pages(
                        lambda skip, limit, sort=sort: artifact_page(conn, sort=sort, skip=skip, limit=limit), 1000
                    )
                    assert got == [a for a in plain if a["id"] in {x["id"] for x in everything}], (q, sort, limit)
            filtered = artifact_page(conn, text_=q, project=project, type="skill", skip=0, limit=1000)["items"]
            assert filtered == [a for a in everything if a["project_id"] == project and a["type"] == "skill"]


def test_a_search_refuses_control_characters_and_blank_queries(engine: Engine) -> None:
    with engine.connect() as conn:
        for bad in ("a\x1eb", "tab\there", "\x1f"):
            with pytest.raises(ValidationError, match="control character") as info:
                search_page(conn, bad, limit=10)
            assert info.value.field == "q"
            with pytest.raises(ValidationError, match="control character"):
                artifact_page(conn, text_=bad, limit=10)
        with pytest.raises(ValidationError, match="must not be empty"):
            search_page(conn, "   ", limit=10)


def test_the_search_index_is_built(engine: Engine) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names = {
                r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE name LIKE 'artifact_search%'"))
            }
            assert {
                "artifact_search_fts",
                "artifact_search_fts_insert",
                "artifact_search_fts_update",
                "artifact_search_fts_delete",
            } <= names
        else:
            indexes = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE tablename = 'artifact_search'")
            ).scalars()
            assert any("gin_trgm_ops" in d for d in indexes)
