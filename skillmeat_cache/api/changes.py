"""The change feed: turns commits by anyone (this server's refreshes, a CLI scan in a
terminal, a second server) into ``project_updated`` events.

A signal says "something was committed"; the feed then compares the projects' summaries
with the ones it saw last and publishes one event per project added, removed or changed
(``fields``: what changed; a project only re-read, ``last_fetched`` alone, is not an event).
Signals that arrive while a comparison runs fold into one more comparison, and a
comparison starts no sooner than three times the last one's length after the last one
started (``min_gap`` at least): a long scan by another process, committing project after
project, then costs the server at most a third of a core, its events arriving in
batches, while a lone edit is compared at once.

- SQLite: ``PRAGMA data_version`` on a connection of the feed's own, read every
  ``interval`` seconds. It changes when any other connection commits; no table is read
  until it does.
- PostgreSQL: ``LISTEN skillmeat_cache`` (revision 0006 makes every write to the cached
  tables notify on commit). A lost connection is reopened, and the feed compares once
  after reconnecting, for what it missed.
- ``nudge()``: this server's own refresh has just committed (no need to wait);
  ``compare_within(folders)``: it refreshed these folders, so only their projects are read and
  compared, at once and whatever the spacing above (the signal its commit also raises
  later finds nothing more to say about them).

Every read is numbered as it starts, and a project's entry in the snapshot remembers the
read it came from: a full comparison whose read started before a later partial one does
not put back that project's older summary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from ..values import is_inside
from ..views import Reader
from .events import EventHub

__all__ = ["CHANNEL", "WATCHED_FIELDS", "ChangeFeed"]

log = logging.getLogger(__name__)
CHANNEL = "skillmeat_cache"
WATCHED_FIELDS = (
    "name",
    "path",
    "description",
    "status",
    "error_message",
    "fingerprint",
    "warnings",
    "artifact_count",
    "outdated_count",
)


class ChangeFeed:
    """Publishes ``project_updated`` for every project whose summary changed."""

    def __init__(
        self,
        reader: Reader,
        events: EventHub,
        *,
        interval: float = 0.1,
        min_gap: float = 0.25,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.reader = reader
        self.on_error = on_error
        self.min_gap = min_gap
        self.engine = reader.engine
        self.events = events
        self.interval = interval
        self._signal = threading.Event()
        self._stop = threading.Event()
        self.snapshot: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._reads = 0  # numbers the reads in the order they start
        self._full_read = 0  # the read the last full comparison applied
        self._partial_read: dict[str, int] = {}  # project id -> a later partial read that set it
        self._threads: list[threading.Thread] = []
        self.error: str | None = None

    def start(self, publish: bool = False) -> None:
        """Take the first snapshot (publishing its differences from :attr:`snapshot`
        when ``publish``) and start watching for commits.
        """
        self.compare(publish=publish)
        self.start_watching()

    def start_watching(self) -> None:
        """Start the threads that watch for commits and compare (``start`` without its first read)."""
        self._spawn(self._compare_loop, "skillmeat-cache-changes")
        url = self.engine.url
        if url.get_backend_name() == "postgresql":
            self._spawn(self._listen_loop, "skillmeat-cache-listen")
        elif url.database and url.database != ":memory:" and "mode=memory" not in str(url):
            self._spawn(self._data_version_loop, "skillmeat-cache-data-version")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop every thread of the feed; whether they all ended within ``timeout`` seconds each."""
        self._stop.set()
        self._signal.set()
        for thread in self._threads:
            thread.join(timeout)
        return not any(thread.is_alive() for thread in self._threads)

    def nudge(self) -> None:
        """Compare now: something was just committed."""
        self._signal.set()


    def _compare_loop(self) -> None:
        last_start, last_length = -1e9, 0.0
        while not self._stop.is_set():
            self._signal.wait()
            self._stop.wait(last_start + max(self.min_gap, 3 * last_length) - time.monotonic())
            self._signal.clear()
            if self._stop.is_set():
                return
            last_start = started = time.monotonic()
            try:
                self.compare()
                self.error = None
            except Exception as exc:  # the database may be away; the next signal tries again
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("change feed: %s", self.error)
                if self.on_error is not None:
                    self.on_error(exc)
                self._stop.wait(1.0)
            last_length = time.monotonic() - started

    def _number_read(self) -> int:
        with self._lock:
            self._reads += 1
            return self._reads

    def compare(self, publish: bool = True) -> int:
        """Publish the differences since the last snapshot; how many events."""
        number = self._number_read()
        now = {item["id"]: item for item in self.reader.project_summaries()}
        with self._lock:
            if number < self._full_read:
                return 0
            newer = {id_ for id_, n in self._partial_read.items() if n > number}
            current = self.snapshot
            before = {id_: item for id_, item in current.items() if id_ not in newer}
            after = {id_: item for id_, item in now.items() if id_ not in newer}
            self.snapshot = {**after, **{id_: current[id_] for id_ in newer if id_ in current}}
            self._full_read = number
            self._partial_read = {id_: n for id_, n in self._partial_read.items() if n > number}
            return self._publish(before, after) if publish else 0

    def compare_within(self, folders: Collection[str]) -> int:
        """Publish the differences of the projects at or below ``folders`` alone (a
        refresh of a folder finds the projects just copied into it); how many events.
        """
        number = self._number_read()
        now = {item["id"]: item for item in self.reader.project_summaries(within=folders)}
        with self._lock:
            current = self.snapshot
            inside = {id_ for id_, item in current.items() if any(is_inside(item["path"], f) for f in folders)}
            touched = {i for i in inside | now.keys() if number > max(self._full_read, self._partial_read.get(i, 0))}
            # Published in the summaries' order (name, then path), as a full comparison does.
            before = {id_: item for id_, item in current.items() if id_ in touched}
            after = {id_: item for id_, item in now.items() if id_ in touched}
            snapshot = {id_: item for id_, item in current.items() if id_ not in touched}
            snapshot.update(after)
            self.snapshot = snapshot
            self._partial_read.update(dict.fromkeys(touched, number))
            return self._publish(before, after)

    def _publish(self, before: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]) -> int:
        published = 0
        for id_, item in now.items():
            old = before.get(id_)
            if old is None:
                self.events.publish("project_updated", {"id": id_, "change": "added", "fields": [], "project": item})
                published += 1
                continue
            fields = [f for f in WATCHED_FIELDS if old.get(f) != item.get(f)]
            if fields:
                self.events.publish(
                    "project_updated", {"id": id_, "change": "updated", "fields": fields, "project": item}
                )
                published += 1
        for id_ in [i for i in before if i not in now]:
            self.events.publish("project_updated", {"id": id_, "change": "removed", "fields": [], "project": None})
            published += 1
        return published

    def _data_version_loop(self) -> None:
        connection = None
        last = None
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = self.engine.raw_connection()
                cursor = connection.cursor()
                version = cursor.execute("PRAGMA data_version").fetchone()[0]
                cursor.close()
                if last is not None and version != last:
                    self._signal.set()
                last = version
            except Exception as exc:
                log.warning("change feed: %s", exc)
                if connection is not None:
                    connection.invalidate()
                connection, last = None, None
                self._signal.set()
            self._stop.wait(self.interval)
        if connection is not None:
            connection.close()

    def _listen_loop(self) -> None:
        import psycopg

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._signal.set()  # whatever happened while not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self._signal.set()
            except Exception as exc:
                self.error = f"listen: {type(exc).__name__}: {exc}"
                log.warning("change feed: %s", self.error)
                self._stop.wait(1.0)
