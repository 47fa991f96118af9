"""Fake equals real: random sequences of repository operations run in lockstep on the
fake unit of work, SQLite and PostgreSQL must give identical results and exceptions.

A hypothesis state machine opens units of work (several operations each, some ending in
an exception so everything rolls back, some read-only) or runs one operation in a unit
of its own, on the three backends at once, and compares every outcome as plain values
(column tuples; timestamps set by the library to "now" compare as ``"now"``, random ids
as ``"<new id>"``) and every exception by class (and ``field`` for ValidationError).
Inputs are mostly valid, with case, accents and LIKE wildcards, and at a modest rate
invalid: bad types, blank text, NUL bytes, unpaired surrogates, naive datetimes, taken
keys, missing parents, text one byte over ``TEXT_LIMITS`` (and exactly at it).

The PostgreSQL database is created with an ICU ``en-US`` collation (where the server
offers one), which orders and lower-cases text unlike byte order, so the documented
orders and case rules are held to on a database that does not make them true by accident.

CI runs a modest number of examples. A long run::

    SKILLMEAT_HYPOTHESIS_EXAMPLES=500 python -m pytest tests/integration/test_fake_equals_real.py \
        -p no:cacheprovider --no-cov -q

``SKILLMEAT_HYPOTHESIS_STEPS`` sets the steps per example and ``SKILLMEAT_HYPOTHESIS_REPORT``
names a JSON file that receives ``{"examples": N, "steps": S, "failures": F, "outcomes":
{...}}`` (outcomes: how often each rule succeeded or raised what); ``SKILLMEAT_HYPOTHESIS_NO_SHRINK=1``
reports the first failure unshrunk (shrinking a long program can take minutes). A failure
prints the minimal program and a ``@reproduce_failure(...)`` line: put it on
``FakeEqualsReal`` to replay that exact example.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import TABLES
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from skillmeat_cache import Artifact, CacheError, MarketplaceEntry, Project, UnitOfWork, ValidationError
from skillmeat_cache.engine import create_engine_for_url
from skillmeat_cache.models import ARTIFACT_TYPES, PROJECT_STATUSES, Base, utcnow
from skillmeat_cache.repositories.base import ProjectSummary
from skillmeat_cache.testing import FakeStore

EXAMPLES = int(os.environ.get("SKILLMEAT_HYPOTHESIS_EXAMPLES", "150"))
STEPS = int(os.environ.get("SKILLMEAT_HYPOTHESIS_STEPS", "30"))
REPORT = os.environ.get("SKILLMEAT_HYPOTHESIS_REPORT")

settings.register_profile(
    "skillmeat-fake-equals-real",
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    print_blob=True,
    database=None,  # no .hypothesis/ folder; a failure prints its @reproduce_failure blob
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
SETTINGS = settings.get_profile("skillmeat-fake-equals-real")
if os.environ.get("SKILLMEAT_HYPOTHESIS_NO_SHRINK"):  # a quick look at every failure, unshrunk
    SETTINGS = settings(SETTINGS, phases=[Phase.explicit, Phase.generate])

START = utcnow()  # any timestamp from here on was made by the library: "now"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")

# -- values -------------------------------------------------------------------------

AT_LIMIT = "é" * 127 + "x"  # 255 UTF-8 bytes: the most an id, name, tag or key may have
OVER_LIMIT = "é" * 128  # 256 bytes
PATH_AT_LIMIT = "/" + "p" * 2047
PATH_OVER_LIMIT = "/" + "p" * 2048
BAD_TEXT = ["", "   ", "a\x00b", "a\ud800b", 7]


def mostly(valid: st.SearchStrategy[Any], *invalid: Any) -> st.SearchStrategy[Any]:
    """``valid`` 24 times in 25, else one of ``invalid`` (an operation has several values)."""
    if not invalid:
        return valid
    return st.integers(0, 24).flatmap(lambda i: st.sampled_from(invalid) if i == 0 else valid)


ALPHABET = "aAbBzZeEéÉäÄßKİı_%/ 日"
WORDS = ["a", "A", "b", "B", "ab", "Ab", "aB", "é", "É", "e", "E", "ä", "Ä", "z", "ß", "K", "İ", "i", "ı", "_", "%"]
WORDS += ["a_b", "a%b", "x y", "日本"]
word = st.one_of(st.sampled_from(WORDS), st.text(ALPHABET, min_size=1, max_size=4).filter(str.strip))
name = mostly(word, *BAD_TEXT, AT_LIMIT, OVER_LIMIT)
search_text = mostly(st.one_of(st.just(""), word), "a\x00", "a\ud800", 3, OVER_LIMIT)
optional_text = st.one_of(st.none(), word)
description = mostly(optional_text, "a\x00", "a\ud800", 3)

PROJECT_IDS = ["p0", "p1", "p2", "P0", AT_LIMIT]
ARTIFACT_IDS = ["a0", "a1", "a2", "a3", "A0", AT_LIMIT]
MARKET_IDS = ["m0", "m1", "m2", "M0", AT_LIMIT]
KEYS = ["k0", "K0", "k1", "é", AT_LIMIT]
project_id = mostly(st.sampled_from(PROJECT_IDS[:3] * 3 + PROJECT_IDS[3:]), *BAD_TEXT, OVER_LIMIT, "missing")
artifact_id = mostly(st.sampled_from(ARTIFACT_IDS), *BAD_TEXT, OVER_LIMIT, "missing")
market_id = mostly(st.sampled_from(MARKET_IDS), *BAD_TEXT, OVER_LIMIT)
cache_key = mostly(st.sampled_from(KEYS), *BAD_TEXT, OVER_LIMIT)
path = mostly(
    st.sampled_from(["/w/a", "/w/A", "/w/b", "/w/é", "/w/e\u0301", "/w/a b", PATH_AT_LIMIT]),
    *BAD_TEXT,
    "relative/x",
    PATH_OVER_LIMIT,
)
# None: the conventional path of the type and name. Same (type, name) at two paths is common.
artifact_path = mostly(
    st.one_of(
        st.none(),
        st.sampled_from(
            [".claude/skills/a", ".codex/skills/a", ".claude/commands/dev/x.md", ".claude/commands/ops/x.md"]
        ),
        st.sampled_from(["a b/é.md", "K/日本.md", ".claude/agents/a.md"]),
    ),
    "/abs",
    "a/../b",
    "a//b",
    *BAD_TEXT,
)
artifact_type = mostly(st.sampled_from(ARTIFACT_TYPES[:3]), "widget", None, 1)
status = mostly(st.sampled_from(PROJECT_STATUSES), "gone")
version = st.sampled_from([None, "1.0", "1.0.0", "2.0", "abc", "v1"])
tag = mostly(st.sampled_from(["py", "Py", "cli", "é", "É", "t%g", "t_g", AT_LIMIT]), *BAD_TEXT, OVER_LIMIT)
tags = mostly(st.lists(tag, max_size=3), "py", None)

BASE_TIME = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
EAST = timezone(timedelta(hours=2))
good_time = st.builds(
    lambda hours, tz: (BASE_TIME + timedelta(hours=hours)).astimezone(tz),
    st.integers(0, 48),
    st.sampled_from([UTC, EAST]),
)
time = mostly(good_time, datetime(2001, 2, 3, 4, 5, 6), "2001-02-03")
optional_time = st.one_of(st.none(), time)
duration = st.builds(timedelta, hours=st.integers(0, 48))
limit = mostly(st.one_of(st.none(), st.integers(0, 4)), -1, "2")
offset = mostly(st.one_of(st.just(0), st.integers(0, 3)), -1)
json_doc = mostly(
    st.one_of(st.none(), st.sampled_from([{}, {"k": 1}, {"k": 1.0}, {"a": [1, "x"], "b": {"c": None}}, {1: "x"}])),
    {"k": float("nan")},
    "text",
    ["list"],
)

artifact_row = st.fixed_dictionaries(
    {"project_id": project_id, "type": artifact_type, "name": name},
    optional={
        "path": artifact_path,
        "id": mostly(st.sampled_from(ARTIFACT_IDS), *BAD_TEXT, OVER_LIMIT),
        "source": optional_text,
        "deployed_version": version,
        "upstream_version": version,
        "local_modified": mostly(st.booleans(), 1, "yes"),
        "content_hash": optional_text,
        "created_at": time,
        "updated_at": time,
        "is_outdated": st.booleans(),
    },
)
artifact_change = st.fixed_dictionaries(
    {"id": artifact_id},
    optional={
        "project_id": project_id,
        "type": artifact_type,
        "name": name,
        "path": artifact_path.filter(lambda p: p is not None),
        "source": optional_text,
        "deployed_version": version,
        "upstream_version": version,
        "local_modified": mostly(st.booleans(), 0),
        "updated_at": time,
        "is_outdated": st.booleans(),
    },
)
marketplace_row = st.fixed_dictionaries(
    {"id": market_id, "name": name, "type": artifact_type},
    optional={
        "url": optional_text,
        "description": description,
        "version": version,
        "source": optional_text,
        "cached_at": time,
        "data": json_doc,
    },
)
metadata_row = st.fixed_dictionaries(
    {"artifact_id": artifact_id},
    optional={"data": json_doc, "description": description, "tags": tags, "aliases": tags},
)
bulk = mostly(st.just(()), {"bogus": 1})  # an unknown column now and then


def rows_of(row: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.builds(lambda rows, extra: rows + ([dict(extra)] if extra else []), st.lists(row, max_size=4), bulk)


# -- comparing ----------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A result as plain comparable values."""
    if isinstance(value, Base):
        return (type(value).__name__, *(plain(getattr(value, a.key)) for a in type(value).__mapper__.column_attrs))
    if isinstance(value, ProjectSummary):
        return ("summary", plain(value.project), value.artifact_count, value.outdated_count)
    if isinstance(value, datetime):
        assert value.tzinfo is UTC or value.utcoffset() == timedelta(0), value
        return "now" if value >= START else value
    if isinstance(value, str) and GENERATED_ID.fullmatch(value):
        return "<new id>"
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def failure(exc: BaseException) -> tuple[Any, ...]:
    if not isinstance(exc, CacheError):  # never equal, so reported as a disagreement
        return ("NOT OUR ERROR", exc)
    return ("raised", type(exc).__name__, exc.field if isinstance(exc, ValidationError) else None)


def outcome(fn: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", plain(fn()))
    except Exception as exc:
        return failure(exc)


# -- backends -----------------------------------------------------------------------

Factory = Callable[..., Any]


class Backends:
    """One engine per real backend for the whole run; emptied before each example."""

    def __init__(self, engines: dict[str, Engine]) -> None:
        self.engines = engines
        self.factories = {name: sessionmaker(bind=engine, expire_on_commit=False) for name, engine in engines.items()}
        self.examples = 0
        self.steps = 0
        self.outcomes: Counter[str] = Counter()  # "rule: ok" / "rule: ValidationError"...

    def fresh(self) -> dict[str, Factory]:
        for engine in self.engines.values():
            with engine.begin() as conn:
                for table in TABLES:
                    conn.execute(text(f"DELETE FROM {table}"))
        store = FakeStore()
        uows: dict[str, Factory] = {"fake": lambda read_only=False: store.unit_of_work(read_only=read_only)}
        for name, factory in self.factories.items():
            uows[name] = lambda read_only=False, factory=factory: UnitOfWork(factory, read_only=read_only)
        self.examples += 1
        return uows


class Boom(Exception):
    """Raised inside a unit of work to roll it back."""


class FakeEqualsReal(RuleBasedStateMachine):
    """The same operations on every backend; every outcome must be the same."""

    backends: Backends

    def __init__(self) -> None:
        super().__init__()
        self.uows = self.backends.fresh()
        self.open: dict[str, Any] | None = None

    # -- running ----------------------------------------------------------------

    def run(self, fn: Callable[[Any], Any], read_only: bool = False) -> None:
        """Run ``fn(uow)`` on every backend: in the open units of work, else in a unit of
        work of its own (committed unless it raises); all outcomes must be equal.
        """
        self.backends.steps += 1
        results = {}
        for name, factory in self.uows.items():
            if self.open is not None:
                results[name] = outcome(lambda name=name: fn(self.open[name]))
                continue
            uow = factory(read_only=read_only)
            try:
                with uow:
                    results[name] = outcome(lambda uow=uow: fn(uow))
                    if results[name][0] == "raised":
                        raise Boom
            except Boom:
                pass
            except Exception as exc:  # the commit failed
                results[name] = failure(exc)
        self.same(results)
        result = results["fake"]
        self.backends.outcomes[f"{fn.__qualname__.split('.')[1]}: {result[1] if result[0] == 'raised' else 'ok'}"] += 1

    @staticmethod
    def same(results: dict[str, Any]) -> None:
        expected = results["fake"]
        if any(result != expected or result[0] == "NOT OUR ERROR" for result in results.values()):
            lines = "\n".join(f"  {name:8} {result!r}" for name, result in results.items())
            raise AssertionError(f"backends disagree:\n{lines}")

    # -- a start: projects p0, p1 and some artifacts, so that most operations find rows ---

    @initialize(
        names=st.lists(word, min_size=2, max_size=2),
        paths=st.lists(
            st.sampled_from(["/w/a", "/w/A", "/w/b", "/w/é", "/w/e\u0301"]), min_size=2, max_size=2, unique=True
        ),
        artifacts=st.lists(
            st.tuples(
                st.sampled_from(ARTIFACT_IDS[:4]),
                st.sampled_from(PROJECT_IDS[:2]),
                st.sampled_from(ARTIFACT_TYPES[:3]),
                word,
                version,
                version,
            ),
            max_size=4,
            unique_by=lambda a: a[0],
        ),
    )
    def start(self, names, paths, artifacts) -> None:
        def seed(uow: Any) -> Any:
            for id, name, path in zip(PROJECT_IDS[:2], names, paths, strict=True):
                uow.projects.add(Project(id=id, name=name, path=path, created_at=BASE_TIME, updated_at=BASE_TIME))
            rows = [
                {"id": a, "project_id": p, "type": t, "name": n, "deployed_version": d, "upstream_version": u}
                for a, p, t, n, d, u in artifacts
            ]
            return uow.artifacts.upsert_many(rows)

        self.run(seed)

    # -- units of work --------------------------------------------------------------

    @precondition(lambda self: self.open is None)
    @rule(read_only=st.booleans())
    def begin(self, read_only: bool) -> None:
        self.open = {}
        for name, factory in self.uows.items():
            uow = factory(read_only=read_only)
            uow.__enter__()
            self.open[name] = uow

    def _close(self, exc: BaseException | None) -> None:
        assert self.open is not None
        results = {}
        for name, uow in self.open.items():
            try:
                uow.__exit__(type(exc) if exc else None, exc, None)
                results[name] = ("closed",)
            except Exception as error:
                results[name] = failure(error)
        self.open = None
        self.same(results)
        self.check_everything()

    @precondition(lambda self: self.open is not None)
    @rule()
    def end_cleanly(self) -> None:
        self._close(None)

    @precondition(lambda self: self.open is not None)
    @rule()
    def end_with_an_exception(self) -> None:
        self._close(Boom("roll back"))

    @precondition(lambda self: self.open is not None)
    @rule(commit=st.booleans())
    def commit_or_rollback_inside(self, commit: bool) -> None:
        self.run(lambda uow: uow.commit() if commit else uow.rollback())

    def teardown(self) -> None:
        if self.open is not None:
            self._close(None)
        else:
            self.check_everything()

    # -- projects ---------------------------------------------------------------------

    @rule(
        id=project_id,
        name=name,
        path=path,
        description=description,
        status=status,
        created=time,
        last_fetched=optional_time,
        with_artifact=st.one_of(st.none(), st.tuples(st.sampled_from(ARTIFACT_IDS), artifact_type, name)),
    )
    def project_add(self, id, name, path, description, status, created, last_fetched, with_artifact) -> None:
        def add(uow: Any) -> Any:
            artifacts = []
            if with_artifact is not None:
                a_id, a_type, a_name = with_artifact
                artifacts.append(Artifact(id=a_id, project_id=id, type=a_type, name=a_name, created_at=created))
            project = Project(
                id=id,
                name=name,
                path=path,
                description=description,
                status=status,
                created_at=created,
                updated_at=created,
                last_fetched=last_fetched,
                artifacts=artifacts,
            )
            return uow.projects.add(project)

        self.run(add)

    @rule(id=project_id)
    def project_get(self, id) -> None:
        self.run(lambda uow: uow.projects.get(id), read_only=True)

    @rule(path=path)
    def project_get_by_path(self, path) -> None:
        self.run(lambda uow: uow.projects.get_by_path(path), read_only=True)

    @rule(status=st.one_of(st.none(), status), limit=limit, offset=offset)
    def project_list(self, status, limit, offset) -> None:
        self.run(lambda uow: uow.projects.list(status=status, limit=limit, offset=offset), read_only=True)

    @rule(status=st.one_of(st.none(), status))
    def project_count(self, status) -> None:
        self.run(lambda uow: uow.projects.count(status), read_only=True)

    @rule(id=project_id)
    def project_delete(self, id) -> None:
        self.run(lambda uow: uow.projects.delete(id))

    @rule(status=st.one_of(st.none(), status), older_than=st.one_of(st.none(), duration), now=time)
    def project_summaries(self, status, older_than, now) -> None:
        self.run(lambda uow: uow.projects.summaries(status=status, older_than=older_than, now=now), read_only=True)

    @rule(ttl=duration, now=time)
    def project_stale(self, ttl, now) -> None:
        self.run(lambda uow: uow.projects.stale(ttl, now=now), read_only=True)

    @rule(ids=st.lists(project_id, max_size=3))
    def project_mark_stale(self, ids) -> None:
        self.run(lambda uow: uow.projects.mark_stale(ids))

    @rule(ids=st.lists(project_id, max_size=3), when=time)
    def project_touch_many(self, ids, when) -> None:
        self.run(lambda uow: uow.projects.touch_many(ids, when))

    @rule(
        id=st.sampled_from(PROJECT_IDS),
        change=st.one_of(
            st.tuples(st.just("name"), name),
            st.tuples(st.just("description"), description),
            st.tuples(st.just("status"), status),
            st.tuples(st.just("path"), path),
        ),
    )
    def project_change_entity(self, id, change) -> None:
        """Change a loaded entity; the change is flushed by the next query or the commit."""

        def modify(uow: Any) -> Any:
            project = uow.projects.get(id)
            if project is not None:
                setattr(project, *change)
            return project

        self.run(modify)

    # -- artifacts --------------------------------------------------------------------

    @rule(
        id=mostly(st.sampled_from(ARTIFACT_IDS), *BAD_TEXT, OVER_LIMIT),
        project=project_id,
        type=artifact_type,
        name=name,
        path=artifact_path,
        deployed=version,
        upstream=version,
        created=time,
    )
    def artifact_add(self, id, project, type, name, path, deployed, upstream, created) -> None:
        def add(uow: Any) -> Any:
            artifact = Artifact(
                id=id,
                project_id=project,
                type=type,
                name=name,
                path=path,
                deployed_version=deployed,
                upstream_version=upstream,
                created_at=created,
                updated_at=created,
            )
            return uow.artifacts.add(artifact)

        self.run(add)

    @rule(id=artifact_id)
    def artifact_get(self, id) -> None:
        self.run(lambda uow: uow.artifacts.get(id), read_only=True)

    @rule(project=project_id, type=artifact_type, name=name, path=artifact_path)
    def artifact_get_by_key(self, project, type, name, path) -> None:
        self.run(lambda uow: uow.artifacts.get_by_key(project, type, name, path), read_only=True)

    @rule(project=project_id, type=st.one_of(st.none(), artifact_type))
    def artifact_list_for_project(self, project, type) -> None:
        self.run(lambda uow: uow.artifacts.list_for_project(project, type), read_only=True)

    @rule(type=artifact_type)
    def artifact_list_by_type(self, type) -> None:
        self.run(lambda uow: uow.artifacts.list_by_type(type), read_only=True)

    @rule(project=st.one_of(st.none(), project_id))
    def artifact_outdated(self, project) -> None:
        self.run(lambda uow: uow.artifacts.outdated(project), read_only=True)

    @rule(
        text=search_text,
        project=st.one_of(st.none(), project_id),
        type=st.one_of(st.none(), artifact_type),
        limit=limit,
        offset=offset,
    )
    def artifact_search(self, text, project, type, limit, offset) -> None:
        self.run(
            lambda uow: uow.artifacts.search(text, project_id=project, type=type, limit=limit, offset=offset),
            read_only=True,
        )

    @rule(project=st.one_of(st.none(), project_id))
    def artifact_count(self, project) -> None:
        self.run(lambda uow: uow.artifacts.count(project), read_only=True)

    @rule(id=artifact_id)
    def artifact_delete(self, id) -> None:
        self.run(lambda uow: uow.artifacts.delete(id))

    @rule(ids=st.lists(artifact_id, max_size=3))
    def artifact_delete_many(self, ids) -> None:
        self.run(lambda uow: uow.artifacts.delete_many(ids))

    @rule(project=project_id)
    def artifact_keys_for_project(self, project) -> None:
        self.run(lambda uow: sorted(uow.artifacts.keys_for_project(project).items()), read_only=True)

    @rule(rows=rows_of(artifact_row))
    def artifact_upsert_many(self, rows) -> None:
        self.run(lambda uow: uow.artifacts.upsert_many([dict(r) for r in rows]))

    @rule(changes=rows_of(artifact_change))
    def artifact_update_many(self, changes) -> None:
        self.run(lambda uow: uow.artifacts.update_many([dict(c) for c in changes]))

    # -- marketplace ------------------------------------------------------------------

    @rule(
        id=market_id,
        name=name,
        type=artifact_type,
        description=description,
        version=version,
        cached=time,
        data=json_doc,
    )
    def marketplace_add(self, id, name, type, description, version, cached, data) -> None:
        def add(uow: Any) -> Any:
            entry = MarketplaceEntry(
                id=id, name=name, type=type, description=description, version=version, cached_at=cached, data=data
            )
            return uow.marketplace.add(entry)

        self.run(add)

    @rule(id=market_id)
    def marketplace_get(self, id) -> None:
        self.run(lambda uow: uow.marketplace.get(id), read_only=True)

    @rule(type=st.one_of(st.none(), artifact_type))
    def marketplace_list(self, type) -> None:
        self.run(lambda uow: uow.marketplace.list(type), read_only=True)

    @rule(text=search_text)
    def marketplace_search(self, text) -> None:
        self.run(lambda uow: uow.marketplace.search(text), read_only=True)

    @rule(rows=rows_of(marketplace_row))
    def marketplace_upsert_many(self, rows) -> None:
        self.run(lambda uow: uow.marketplace.upsert_many([dict(r) for r in rows]))

    @rule(age=duration, now=time)
    def marketplace_purge(self, age, now) -> None:
        self.run(lambda uow: uow.marketplace.purge_older_than(age, now=now))

    # -- metadata ---------------------------------------------------------------------

    @rule(id=artifact_id, data=json_doc, description=description, tags=tags, aliases=tags)
    def metadata_set(self, id, data, description, tags, aliases) -> None:
        self.run(lambda uow: uow.metadata.set(id, data=data, description=description, tags=tags, aliases=aliases))

    @rule(id=artifact_id)
    def metadata_get(self, id) -> None:
        self.run(lambda uow: uow.metadata.get(id), read_only=True)

    @rule(ids=st.lists(artifact_id, max_size=4))
    def metadata_get_many(self, ids) -> None:
        self.run(lambda uow: uow.metadata.get_many(ids), read_only=True)

    @rule(rows=rows_of(metadata_row))
    def metadata_set_many(self, rows) -> None:
        self.run(lambda uow: uow.metadata.set_many([dict(r) for r in rows]))

    @rule(tag=tag)
    def metadata_artifacts_with_tag(self, tag) -> None:
        self.run(lambda uow: uow.metadata.artifacts_with_tag(tag), read_only=True)

    @rule(key=cache_key)
    def value_get(self, key) -> None:
        self.run(lambda uow: uow.metadata.get_value(key), read_only=True)

    @rule(key=cache_key, value=mostly(word, None, "a\x00", "a\ud800", 5))
    def value_set(self, key, value) -> None:
        self.run(lambda uow: uow.metadata.set_value(key, value))

    @rule(key=cache_key)
    def value_delete(self, key) -> None:
        self.run(lambda uow: uow.metadata.delete_value(key))

    # -- the whole state ----------------------------------------------------------------

    def check_everything(self) -> None:
        """Every row of every table, through the repositories, in a read-only unit of work."""

        def everything(uow: Any) -> Any:
            artifacts = uow.artifacts.search("")
            return (
                uow.projects.summaries(),
                artifacts,
                uow.metadata.get_many([a.id for a in artifacts]),
                uow.marketplace.list(),
                [uow.metadata.get_value(key) for key in KEYS],
            )

        self.run(everything, read_only=True)


# -- the test -----------------------------------------------------------------------


@pytest.mark.postgres
def test_fake_equals_real(tmp_path: Path, sqlite_template: Path, collated_pg_url: str) -> None:
    sqlite_path = tmp_path / "cache.db"
    shutil.copyfile(sqlite_template, sqlite_path)
    engines = {
        "sqlite": create_engine_for_url(f"sqlite:///{sqlite_path}", busy_timeout=2),
        "postgres": create_engine_for_url(collated_pg_url, busy_timeout=2),
    }
    backends = Backends(engines)
    machine = type("FakeEqualsRealRun", (FakeEqualsReal,), {"backends": backends})
    failed = 0
    try:
        run_state_machine_as_test(machine, settings=SETTINGS)
    except BaseException:
        failed = 1
        raise
    finally:
        for engine in engines.values():
            engine.dispose()
        if REPORT:
            Path(REPORT).write_text(
                json.dumps(
                    {
                        "examples": backends.examples,
                        "steps": backends.steps,
                        "failures": failed,
                        "outcomes": dict(sorted(backends.outcomes.items())),
                    },
                    indent=1,
                )
            )
