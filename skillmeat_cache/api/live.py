"""The live cache: what a server runs beside its HTTP routes. The refresh worker, the
event hub, the change feed, the file watcher and the TTL refresh, started and stopped
together (the ASGI lifespan does it).

A damaged default cache (:func:`healable_url`) is healed at start, before the engine
starts, and while running: the first request, refresh or comparison that meets
``DatabaseCorruptError`` starts a heal. New requests then get ``CacheRebuildingError`` (503, ``Retry-After``); the heal
waits for the requests in flight and the refresh in progress to leave the database, stops
the change feed, disposes of the engine (no connection may stay open on a file that is
moved: SQLite would later delete the new file's WAL by name), moves the file aside,
rebuilds it (``repair.heal``), and starts a new engine and feed on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..db_errors import describe_error, map_db_error
from ..errors import CacheRebuildingError, DatabaseCorruptError
from ..locations import is_default_database, resolve_database_url
from ..roots import remember_roots
from ..values import is_inside, utcnow
from ..views import Reader
from .changes import ChangeFeed
from .events import MAX_SUBSCRIBERS, EventHub
from .jobs import Job, RefreshJobs, Retry
from .watcher import Watcher

__all__ = ["DEFAULT_TTL", "LiveCache", "Settings", "healable_url"]

log = logging.getLogger(__name__)
DEFAULT_TTL = timedelta(hours=6)
#: A refresh of at most this many projects compares them alone when it ends.
PARTIAL_COMPARE_LIMIT = 200
#: How long a heal waits for requests and the refresh in progress to leave the database.
HEAL_WAIT = 30.0
#: After a heal that found nothing to heal, or failed, no other for this many seconds.
HEAL_BACKOFF = 60.0


@dataclass
class Settings:
    """How a server keeps its cache fresh, and who may call it."""

    roots: list[str] = field(default_factory=list)
    ttl: timedelta = DEFAULT_TTL
    watch: bool = True
    force_polling: bool = False
    debounce_ms: int = 100
    max_depth: int = 5
    refresh_on_start: bool = True
    token: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    #: How often the TTL refresh looks for projects older than ``ttl`` (default ttl/10, 1 s to 5 min).
    ttl_check: timedelta | None = None
    #: At most this many ``/events`` subscribers at once (503 beyond).
    max_subscribers: int = MAX_SUBSCRIBERS
    #: An event stream whose client takes nothing written for this many seconds is closed.
    event_write_timeout: float = 30.0
    #: An event stream ends after this many seconds (the client reconnects with Last-Event-ID).
    event_stream_max_age: float = 600.0
    #: Heal a damaged default cache at start (off when the file was named explicitly).
    heal: bool = True
    #: How a refresh cut off by the database (gone, busy, full) is run again.
    refresh_retry: Retry = field(default_factory=Retry)


def healable_url(container: Any) -> str | None:
    """The URL of the container's database when a damaged one may be moved aside and
    rebuilt: the default SQLite cache, with an engine the container builds itself; else None.
    """
    if container.engine.overridden:
        return None
    url = resolve_database_url(container.config.env(), container.config.database_url())
    return url if is_default_database(url) else None


def _heal(container: Any, url: str) -> dict[str, Any] | None:
    """When SQLite's ``quick_check`` finds the file at ``url`` damaged, move it aside and
    rebuild it (``repair.heal``): ``{"moved_to", "at", "summary"}``, else None.
    """
    from ..repair import heal

    report = heal(url, synchronous=str(container.config.synchronous() or "NORMAL"))
    if report is None:
        return None
    log.warning("the damaged cache %s is rebuilt; the damaged file is kept as %s", report.database, report.moved_to)
    return {"moved_to": report.moved_to, "at": report.at.isoformat(), "summary": report.summary(moved=False)}


class LiveCache:
    """One cache served live. ``container`` gives units of work and the engine."""

    def __init__(self, container: Any, settings: Settings | None = None) -> None:
        self.container = container
        self.settings = settings or Settings()
        self.events = EventHub(max_subscribers=self.settings.max_subscribers)
        self._heal_url = healable_url(container) if self.settings.heal else None
        # Before the engine starts: a damaged default cache would fail it (SQLITE_NOTADB).
        self.recovered: dict[str, Any] | None = None
        if self._heal_url is not None:
            self.recovered = _heal(container, self._heal_url)
        if self.recovered is not None:
            self.events.publish("cache_recovered", self.recovered)  # kept for Last-Event-ID replay
        self.heal_error: str | None = None
        #: Called (on the event loop) with ``recovered`` after a heal while running.
        self.on_recovered: Callable[[dict[str, Any]], None] | None = None
        self.healing = False
        self._gate = threading.Condition()
        self._in_flight = 0
        self._heal_wanted = False
        self._next_heal = 0.0
        self._heal_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.engine = container.engine()
        self.reader = Reader(self.engine, check_every_call=False)
        self.feed = ChangeFeed(self.reader, self.events, on_error=self.damage_seen)
        self.jobs = RefreshJobs(
            container.unit_of_work,
            self.targets,
            self.events,
            max_depth=self.settings.max_depth,
            after_job=self._after_job,
            retry=self.settings.refresh_retry,
            on_failure=self.damage_seen,
        )
        self.roots: list[str] = []
        self.watcher = Watcher([], self.known_paths, self._changed, debounce_ms=self.settings.debounce_ms)
        self.next_ttl_run: datetime | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Remember the roots, start the worker, the feed, the watcher and the TTL loop."""
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        given = [r for r in self.settings.roots if Path(r).is_dir()]
        # The given roots join the remembered ones; all of them are kept fresh.
        self.roots = await asyncio.to_thread(remember_roots, self.container.unit_of_work, given)
        await asyncio.to_thread(self.feed.start)
        self.jobs.start()
        if self.settings.refresh_on_start:
            self.jobs.submit(None, reason="start")
        if self.settings.watch:
            self.watcher = Watcher(
                self.roots,
                self.known_paths,
                self._changed,
                debounce_ms=self.settings.debounce_ms,
                force_polling=self.settings.force_polling,
            )
            self._tasks.append(asyncio.create_task(self.watcher.run(self._stop)))
        self._tasks.append(asyncio.create_task(self._ttl_loop()))

    async def stop(self) -> None:
        """Stop everything; a running refresh is let finish (it commits per project), and
        so is a heal (it is not left with the file half-built).
        """
        self._stop.set()
        if self._heal_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._heal_task)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await asyncio.to_thread(self.jobs.stop)
        await asyncio.to_thread(self.feed.stop)

    # ----------------------------------------------------------------- serving and healing

    @contextlib.contextmanager
    def serving(self) -> Iterator[Reader]:
        """The reader, for one request's use of the database. Raises
        CacheRebuildingError while a heal runs; damage met inside starts one.
        """
        with self._gate:
            if self.healing:
                raise CacheRebuildingError("the cache is being rebuilt after damage was found; try again shortly")
            self._in_flight += 1
        try:
            yield self.reader
        except Exception as exc:
            self.damage_seen(exc)
            raise
        finally:
            with self._gate:
                self._in_flight -= 1
                if self.healing and self._in_flight == 0:
                    self._gate.notify_all()

    def damage_seen(self, exc: BaseException) -> None:
        """Start a heal when ``exc`` says the database is damaged and the cache may be
        healed (the default SQLite cache); at most one at a time, and none within
        :data:`HEAL_BACKOFF` seconds of one that found nothing to heal or failed. Any thread.
        """
        if self._heal_url is None or self._loop is None:
            return
        if not isinstance(map_db_error(exc), DatabaseCorruptError):
            return
        with self._gate:
            if self.healing or self._heal_wanted or time.monotonic() < self._next_heal:
                return
            self._heal_wanted = True
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server is stopping
            self._loop.call_soon_threadsafe(self._start_heal)

    def _start_heal(self) -> None:
        if self._stop.is_set():
            return
        self._heal_task = asyncio.create_task(self._heal_while_running())

    async def _heal_while_running(self) -> None:
        recovered = await asyncio.to_thread(self._heal_blocking)
        if recovered is not None:
            self.events.publish("cache_recovered", recovered)
            if self.on_recovered is not None:
                self.on_recovered(recovered)

    def _heal_blocking(self) -> dict[str, Any] | None:
        assert self._heal_url is not None
        with self._gate:
            self.healing, self._heal_wanted = True, False
            idle = self._gate.wait_for(lambda: self._in_flight == 0, HEAL_WAIT)
        recovered, feed_stopped = None, False
        try:
            if not idle or not self.jobs.pause(HEAL_WAIT):
                raise TimeoutError(f"the database was still in use after {HEAL_WAIT:g} s")
            feed_stopped = True
            if not self.feed.stop():
                raise TimeoutError("the change feed did not stop")
            recovered = self._rebuild(self._heal_url)
            self.heal_error = None
            if recovered is not None:
                self.recovered = recovered
        except Exception as exc:
            self.heal_error = describe_error(exc)
            log.error("the damaged cache could not be rebuilt: %s", self.heal_error)
        finally:
            if recovered is None:
                self._next_heal = time.monotonic() + HEAL_BACKOFF
            with self._gate:
                self.healing = False
            self.jobs.resume()
            if feed_stopped:  # after the gate opens: the new feed's first events send clients to read
                self._restart_feed()
        return recovered

    def _rebuild(self, url: str) -> dict[str, Any] | None:
        """Dispose of the engine (every connection closed), heal the file, start a new engine."""
        self.container.read_engine.shutdown()
        self.container.engine.shutdown()
        self.container.session_factory.reset()
        self.container.read_session_factory.reset()
        try:
            return _heal(self.container, url)
        finally:
            self.engine = self.container.engine()
            self.reader = Reader(self.engine, check_every_call=False)

    def _restart_feed(self) -> None:
        """A new feed on the new engine; it publishes what changed since the old one's snapshot."""
        feed = ChangeFeed(self.reader, self.events, on_error=self.damage_seen)
        feed.snapshot = self.feed.snapshot
        self.feed = feed
        try:
            feed.start(publish=True)
        except Exception as exc:  # its first read failed: it is started without it
            log.warning("change feed: %s", exc)
            feed.start_watching()
            feed.nudge()

    # ----------------------------------------------------------------- helpers

    def targets(self) -> tuple[list[str], list[str]]:
        """What a whole refresh walks: the roots, and the cached projects outside them."""
        roots = list(dict.fromkeys(self.roots))
        outside = sorted(p for p in self.known_paths() if not any(is_inside(p, r) for r in roots))
        return roots, outside

    def known_paths(self) -> set[str]:
        """The cached projects' folders (as the change feed last saw them)."""
        return {item["path"] for item in self.feed.snapshot.values()}

    def _changed(self, projects: set[str]) -> None:
        self.jobs.submit(projects, reason="watcher", join_running=False)

    def _after_job(self, job: Job) -> None:
        # A job over a few projects publishes their events itself, at once: waiting for
        # the feed's next full comparison cost an edit up to a few hundred milliseconds.
        if job.scope is not None and len(job.scope) <= PARTIAL_COMPARE_LIMIT:
            try:
                with self.serving():
                    self.feed.compare_within(job.scope)
                return
            except Exception as exc:  # the database may be away: the feed's next signal covers it
                log.warning("change feed: %s", exc)
        self.feed.nudge()

    def ttl_interval(self) -> float:
        """Seconds between two looks for projects older than the TTL."""
        if self.settings.ttl_check is not None:
            return max(0.05, self.settings.ttl_check.total_seconds())
        return min(300.0, max(1.0, self.settings.ttl.total_seconds() / 10))

    async def _ttl_loop(self) -> None:
        while not self._stop.is_set():
            interval = self.ttl_interval()
            self.next_ttl_run = utcnow() + timedelta(seconds=interval)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
            if self._stop.is_set():
                return
            try:
                stale = await asyncio.to_thread(self._stale_projects)
            except Exception as exc:  # the database may be away: try again next time
                log.warning("TTL refresh: %s", exc)
                continue
            paths = {p["path"] for p in stale if p["status"] != "stale"}
            if paths:
                self.jobs.submit(paths, reason="ttl", join_running=False)

    def _stale_projects(self) -> list[dict[str, Any]]:
        with self.serving() as reader:
            return reader.project_summaries(None, self.settings.ttl)

    def refresh_state(self) -> dict[str, Any]:
        """``/status``'s ``refresh``."""
        running = self.jobs.running
        last = self.jobs.last_finished
        return {
            "running": running is not None,
            "job_id": None if running is None else running.id,
            "last_finished": None if last is None else last.isoformat(),
            "next_run": None if self.next_ttl_run is None else self.next_ttl_run.isoformat(),
            "ttl_seconds": self.settings.ttl.total_seconds(),
            "last_error": self.jobs.last_error,
            "last_error_at": None if self.jobs.last_error_at is None else self.jobs.last_error_at.isoformat(),
        }

    def watcher_state(self) -> dict[str, Any]:
        """``/status``'s ``watcher``."""
        return {"mode": self.watcher.mode, "roots": list(self.watcher.roots), "warning": self.watcher.warning}
