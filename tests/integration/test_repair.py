"""The parts of ``repair``: reading past damaged pages, and the revision the rows are
copied at. The command end to end: tests/e2e/test_corruption.py."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from skillmeat_cache import migrate
from skillmeat_cache.repair import COPIED_TABLES, COPY_AT
from skillmeat_cache.salvage import move_aside, open_for_salvage, read_table


def _columns(path: Path) -> dict[str, list[tuple[str, str, int]]]:
    with sqlite3.connect(path) as conn:
        return {t: [(r[1], r[2], r[3]) for r in conn.execute(f"PRAGMA table_info({t})")] for t in COPIED_TABLES}


def test_the_copied_tables_have_at_the_copy_revision_the_columns_they_have_at_head(tmp_path: Path) -> None:
    """Rows are copied at COPY_AT and migrated on: a later column would be lost."""
    at_copy, at_head = tmp_path / "copy.db", tmp_path / "head.db"
    migrate(str(at_copy), COPY_AT)
    migrate(str(at_head))
    assert _columns(at_copy) == _columns(at_head)


def test_a_table_is_read_past_its_damaged_pages(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(f"r{i:05}", "x" * 300) for i in range(2000)])
        leaves = sorted(p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = 't' AND pagetype = 'leaf'"))
    with open(db, "r+b") as f:
        for page in (leaves[10], leaves[40]):
            f.seek((page - 1) * 4096)
            f.write(random.Random(3).randbytes(4096))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            conn.execute("SELECT * FROM t").fetchall()
            raise AssertionError("the scan should fail on the damaged page")
        except sqlite3.DatabaseError:
            pass
    conn = open_for_salvage(db)
    read = read_table(conn, "t")
    conn.close()
    ids = [r["id"] for r in read.rows]
    assert read.error and read.error.startswith("SQLITE_CORRUPT")
    assert read.columns == ["id", "body"]
    assert ids == sorted(set(ids))  # rowid order, no row twice
    assert ids[0] == "r00000" and ids[-1] == "r01999"  # past both damaged pages
    assert 2000 - 2 * 20 <= len(ids) < 2000  # two pages of rows (13 a page) lost, no more


def test_a_file_is_moved_aside_with_its_wal_and_shm(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    for name, content in (("cache.db", b"main"), ("cache.db-wal", b"wal"), ("cache.db-shm", b"shm")):
        (tmp_path / name).write_bytes(content)
    first = move_aside(db, "corrupt")
    db.write_bytes(b"again")
    second = move_aside(db, "corrupt")
    assert not db.exists()
    assert first.read_bytes() == b"main" and Path(f"{first}-wal").read_bytes() == b"wal"
    assert Path(f"{first}-shm").read_bytes() == b"shm"
    assert second.read_bytes() == b"again" and not Path(f"{second}-wal").exists()
    assert first.name.startswith("cache.db.corrupt-") and first.name.endswith("Z")
    assert second.name == first.name + "-1" or second.name > first.name
