"""Background refreshes: one worker thread runs scan jobs one after another (the cache's
one writer), so an HTTP request never waits for a scan.

A job's scope is every root and cached project (``None``) or a set of project folders.
A request joins a job that already covers it (same or wider scope, and ``force`` when it
asks for force) instead of queueing another: a queued one always, a running one only when
the request says so (an HTTP refresh may; a file change may not, since the running job may
have read that project before the change). Path-scoped queued jobs merge, so a burst of
changes in one project gives one refresh.

A job cut off by the database (gone, busy past its timeout, or full) is not the job's
fault: it waits and runs again (tenacity: exponential waits with jitter, :class:`Retry`),
state ``retrying`` meanwhile, and fails only after ``Retry.attempts`` tries. Each
project commits alone, so a re-run finds the projects stored before the cut unchanged.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from ..db_errors import describe_error, map_db_error
from ..errors import DatabaseBusyError, DatabaseFullError, DatabaseUnavailableError
from ..services import ScanSummary, scan
from ..values import utcnow
from .events import EventHub

__all__ = ["TRANSIENT", "Job", "RefreshJobs", "Retry"]

log = logging.getLogger(__name__)
_KEEP = 200  # finished jobs kept for GET /refresh/{id}
_PROGRESS_EVERY = 0.25  # seconds between refresh_progress events of one job
#: Errors that cut a job off through no fault of its own: the job is run again.
TRANSIENT: tuple[type[Exception], ...] = (DatabaseUnavailableError, DatabaseBusyError, DatabaseFullError)


@dataclass(frozen=True)
class Retry:
    """How a job cut off by a :data:`TRANSIENT` error is run again: up to ``attempts``
    runs in all, waiting ``initial`` seconds, then twice as long each time (plus up to
    ``initial`` of jitter), at most ``maximum`` (the defaults: 0.5, 1, 2 ... 60 s, about
    5 minutes in all).
    """

    attempts: int = 12
    initial: float = 0.5
    maximum: float = 60.0


class _Stopping(Exception):
    """The server stops while a job waits to run again."""


@dataclass
class Job:
    """One refresh: what it covers, where it is, what it did."""

    id: str
    scope: frozenset[str] | None
    force: bool
    reason: str
    project_id: str | None = None
    state: str = "queued"
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    projects_done: int = 0
    current: str | None = None
    summary: ScanSummary | None = None
    error: str | None = None
    attempts: int = 0
    retry_at: datetime | None = None

    def covers(self, scope: frozenset[str] | None, force: bool) -> bool:
        """Whether this job does everything a request for ``scope`` (with ``force``) asks."""
        wider = self.scope is None or (scope is not None and scope <= self.scope)
        return wider and (self.force or not force)

    def to_dict(self, joined: bool = False) -> dict[str, Any]:
        """The job as GET /refresh/{id} shows it."""
        iso = lambda t: None if t is None else t.isoformat()  # noqa: E731
        return {
            "id": self.id,
            "state": self.state,
            "project_id": self.project_id,
            "force": self.force,
            "reason": self.reason,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "projects_done": self.projects_done,
            "current": self.current,
            "summary": None if self.summary is None else self.summary.to_dict(),
            "error": self.error,
            "attempts": self.attempts,
            "retry_at": iso(self.retry_at),
            "joined": joined,
        }


def _add(total: ScanSummary, part: ScanSummary) -> None:
    for name, value in vars(part).items():
        if name == "warnings":
            total.warnings.extend(value)
        else:
            setattr(total, name, getattr(total, name) + value)


class RefreshJobs:
    """The job queue and its worker thread.

    ``targets()`` gives what a whole refresh walks: ``(roots, project_paths)``, the roots
    walked ``max_depth`` levels down and the cached projects outside them read alone.
    ``after_job`` runs when a job ends (the server nudges its change feed with it).
    """

    def __init__(
        self,
        uow_factory: Callable[..., Any],
        targets: Callable[[], tuple[list[str], list[str]]],
        events: EventHub,
        *,
        max_depth: int = 5,
        after_job: Callable[[Job], None] | None = None,
        retry: Retry | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.targets = targets
        self.events = events
        self.max_depth = max_depth
        self.after_job = after_job
        self.retry = retry or Retry()
        self.on_failure = on_failure
        self._cond = threading.Condition()
        self._queue: list[Job] = []
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._running: Job | None = None
        self._ids = itertools.count(1)
        self._stop = False
        self._paused = False
        self._busy = False  # an attempt is using the database
        self._thread: threading.Thread | None = None
        self.last_finished: datetime | None = None
        #: The last error that cut a job off (cleared when a job completes), and when.
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._work, name="skillmeat-cache-refresh", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the running job finish (up to ``timeout`` seconds), drop the queued ones."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def pause(self, timeout: float) -> bool:
        """Hold every job off the database: wait (up to ``timeout`` seconds) for the
        attempt in progress to end; a job waiting to run again stops waiting and holds
        until :meth:`resume`. Whether the database is free of jobs (the server's heal
        needs it so). Jobs can still be submitted meanwhile.
        """
        with self._cond:
            self._paused = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._busy, timeout)

    def resume(self) -> None:
        """Let jobs use the database again (after :meth:`pause`)."""
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def submit(
        self,
        scope: Iterable[str] | None,
        *,
        force: bool = False,
        reason: str = "request",
        project_id: str | None = None,
        join_running: bool = True,
    ) -> tuple[Job, bool]:
        """Queue a refresh of ``scope`` (None: everything), or join one that covers it.
        Returns the job and whether the request joined an existing one.
        """
        wanted = None if scope is None else frozenset(scope)
        with self._cond:
            running = self._running
            if join_running and running is not None and running.covers(wanted, force):
                return running, True
            for job in self._queue:
                if job.covers(wanted, force):
                    return job, True
            for job in self._queue:
                if wanted is not None and job.scope is not None and job.force == force:
                    job.scope = job.scope | wanted
                    job.project_id = None if job.project_id != project_id else project_id
                    return job, True
            job = Job(f"r{next(self._ids)}", wanted, force, reason, project_id)
            self._queue.append(job)
            self._remember(job)
            self._cond.notify_all()
            return job, False

    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        while len(self._jobs) > _KEEP:
            self._jobs.popitem(last=False)

    def get(self, job_id: str) -> Job | None:
        """A job of this run of the server (the last 200 are kept)."""
        return self._jobs.get(job_id)

    @property
    def running(self) -> Job | None:
        """The job being run, if any."""
        return self._running

    @property
    def pending(self) -> int:
        """How many jobs wait."""
        return len(self._queue)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job runs or waits (tests, shutdown); whether that happened in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _work(self) -> None:
        while True:
            with self._cond:
                while (not self._queue or self._paused) and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job = self._running = self._queue.pop(0)
            try:
                self._run_with_retry(job)
                self.last_error = self.last_error_at = None
            except Exception as exc:  # the worker must outlive any one job
                if isinstance(exc, (*TRANSIENT, _Stopping)):
                    log.warning("refresh %s failed: %s", job.id, exc)
                else:
                    log.exception("refresh %s failed", job.id)
                job.state, job.error, job.retry_at = "failed", describe_error(exc), None
                self.last_error, self.last_error_at = job.error, utcnow()
                if self.on_failure is not None:
                    self.on_failure(exc)
            finally:
                job.finished_at = self.last_finished = utcnow()
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
                self.events.publish("refresh_finished", job.to_dict())
                if self.after_job is not None:
                    self.after_job(job)

    def _run_with_retry(self, job: Job) -> None:
        policy = self.retry
        retrying = Retrying(
            retry=retry_if_exception_type(TRANSIENT),
            stop=stop_after_attempt(policy.attempts),
            wait=wait_exponential(multiplier=policy.initial, max=policy.maximum) + wait_random(0, policy.initial),
            sleep=self._sleep,
            before_sleep=lambda state: self._cut_off(job, state),
            reraise=True,
        )
        retrying(self._run, job)

    def _cut_off(self, job: Job, state: RetryCallState) -> None:
        """Between two attempts: the job shows why it waits and until when."""
        assert state.outcome is not None and state.next_action is not None
        job.error = describe_error(state.outcome.exception())
        job.state, job.current = "retrying", None
        job.retry_at = utcnow() + timedelta(seconds=state.next_action.sleep)
        self.last_error, self.last_error_at = job.error, utcnow()
        log.warning("refresh %s cut off (%s); again in %.1f s", job.id, job.error, state.next_action.sleep)
        progress = {"id": job.id, "projects_done": job.projects_done, "current": None, "state": job.state,
                    "error": job.error}
        self.events.publish("refresh_progress", progress)

    def _sleep(self, seconds: float) -> None:
        # A pause ends the wait early: the next attempt then holds until resumed.
        with self._cond:
            self._cond.wait_for(lambda: self._stop or self._paused, seconds)
            if self._stop:
                raise _Stopping("the server stopped before the job could run again")

    def _run(self, job: Job) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._stop or not self._paused)
            if self._stop:
                raise _Stopping("the server stopped before the job could run")
            self._busy = True
        try:
            self._attempt(job)
        except Exception as exc:
            mapped = map_db_error(exc)  # a driver's error that reached us unwrapped
            if mapped is exc:
                raise
            raise mapped from exc
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _attempt(self, job: Job) -> None:
        job.attempts += 1
        job.state, job.retry_at, job.projects_done = "running", None, 0
        if job.started_at is None:
            job.started_at = utcnow()
            self.events.publish("refresh_started", job.to_dict())
        last = [0.0]

        def progress(path: str) -> None:
            job.projects_done += 1
            job.current = path
            now = time.monotonic()
            if now - last[0] >= _PROGRESS_EVERY:
                last[0] = now
                self.events.publish(
                    "refresh_progress", {"id": job.id, "projects_done": job.projects_done, "current": path}
                )

        summary = ScanSummary()
        # A scope's folders are walked too: a folder just created (a `git clone`, a
        # `cp -r`) may hold projects; unchanged nested projects cost a fingerprint each.
        roots, projects = self.targets() if job.scope is None else (sorted(job.scope), [])
        if roots:
            found = scan(self.uow_factory, roots, max_depth=self.max_depth, full=job.force, progress=progress)
            _add(summary, found)
        if projects:
            _add(summary, scan(self.uow_factory, projects, max_depth=0, full=job.force, progress=progress))
        job.summary, job.current, job.state, job.error = summary, None, "done", None
