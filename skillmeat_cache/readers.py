"""Reading projects in parallel for a scan: worker processes (or threads) read, the
caller writes.

:func:`read_in_order` takes the scan's stream of discovered projects and hands back, in
the same order, what reading each one gave (:class:`Outcome`). With ``jobs=1`` the
projects are read one after another in the calling thread; so they are, with more jobs,
until :data:`PARALLEL_FROM` projects that must be read in full (new ones, or all of them
in a ``--full`` scan: no stored fingerprint to skip them by) wait within the next
:data:`LOOK_AHEAD`, or from the start when the caller expects :data:`CHECKS_FROM` projects
or more to check against their fingerprints (a rescan of a large cache): the refresh of a
few projects, or a rescan of a small cache, does not pay for starting workers. Then
``jobs`` workers read the rest, at most ``jobs *`` :data:`AHEAD_PER_JOB` projects ahead of
the caller (:data:`CHECK_AHEAD_PER_JOB` in a rescan of a large cache, where most answers
are a word), so a tree of any size never sits in memory whole and the caller (the one
writer) sets the pace.

Workers are processes: ``python -c`` running :func:`_serve` of this module, fed tasks
and answering outcomes as pickles over their stdin and stdout. Not ``multiprocessing``:
its ``spawn`` and ``forkserver`` workers import the caller's main script again (running
its top-level code when it has no ``__main__`` guard) and ``fork`` copies the caller's
threads' locks and database connections. A worker that dies leaves its projects to the
calling thread. ``SKILLMEAT_CACHE_SCAN_READERS=thread`` reads in threads of the caller
instead (measured slower: see docs/scanning.md).
"""

from __future__ import annotations

import os
import pickle
import select
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar

from .fingerprint import project_fingerprint

if TYPE_CHECKING:
    import subprocess
    from concurrent.futures import Future

    from .layout import ProjectOnDisk

__all__ = [
    "AHEAD_PER_JOB",
    "CHECK_AHEAD_PER_JOB",
    "CHECKS_FROM",
    "LOOK_AHEAD",
    "PARALLEL_FROM",
    "Outcome",
    "Task",
    "default_jobs",
    "read_in_order",
    "read_one",
]

T = TypeVar("T")

#: Workers start once this many projects to read in full are waiting within LOOK_AHEAD.
PARALLEL_FROM = 16
LOOK_AHEAD = 64
#: ... or at once for a rescan of this many cached projects: their stat walks, ~0.7 ms
#: each, then outweigh starting the workers (measured: 400 unchanged projects 291 ms in
#: this thread, 230 ms with two workers; 200: 141 against 155 ms).
CHECKS_FROM = 256
#: Projects read ahead of the writer, per worker.
AHEAD_PER_JOB = 4
#: ... in a rescan of a large cache (CHECKS_FROM), where most answers are "unchanged":
#: one worker reading a changed project (~10 ms) must not leave the other idle after
#: four stat walks (~0.4 ms each) while the writer waits for it.
CHECK_AHEAD_PER_JOB = 32


def default_jobs() -> int:
    """The machine's cores available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(slots=True)
class Outcome:
    """What reading one project gave. ``kind``: ``unchanged`` (its fingerprint equals the
    one given: nothing read), ``read`` (``disk`` holds it), ``gone`` (no longer a folder),
    ``error`` (``message`` says why it could not be read).
    """

    kind: str
    disk: ProjectOnDisk | None = None
    message: str | None = None


def read_one(path: str, fingerprint: str | None) -> Outcome:
    """Read the project at ``path`` unless its fingerprint equals ``fingerprint``.

    The check needs :mod:`.fingerprint` alone; the reader (and its YAML and TOML parsers)
    is imported for the first project to read: a reader process of an unchanged rescan
    starts in half the time.
    """
    try:
        if fingerprint is not None and project_fingerprint(path) == fingerprint:
            return Outcome("unchanged")
        from .reader import read_project

        disk = read_project(path)
    except (FileNotFoundError, NotADirectoryError):
        return Outcome("gone")
    except OSError as exc:
        return Outcome("error", message=f"cannot read project: {exc.strerror or exc}")
    return Outcome("read", disk)


@dataclass(slots=True)
class Task(Generic[T]):
    """One project to read: ``path``, the cached ``fingerprint`` that makes reading it
    unnecessary (None: read it), and the caller's ``context``, handed back with the outcome.
    """

    path: str
    fingerprint: str | None
    context: T


def read_in_order(
    tasks: Iterable[Task[T]],
    jobs: int,
    *,
    reader: Callable[[str, str | None], Outcome] = read_one,
    checks: int = 0,
) -> Iterator[tuple[Task[T], Outcome]]:
    """Each task with its outcome, in the order of ``tasks`` (see the module docstring).
    ``reader`` replaces :func:`read_one` in the calling thread and in threads (tests).
    ``checks``: how many tasks the caller expects to carry a fingerprint (a rescan: the
    cached projects); from :data:`CHECKS_FROM` on, workers start with the first task.
    """
    stream = iter(tasks)
    if jobs <= 1:
        for task in stream:
            yield task, reader(task.path, task.fingerprint)
        return
    # Read here until PARALLEL_FROM projects that must be read in full (no fingerprint to
    # skip them by) are waiting within the next LOOK_AHEAD: an unchanged rescan, or a
    # refresh of a few projects, never pays for starting workers.
    waiting: deque[Task[T]] = deque()
    heavy = 0
    for task in stream:
        waiting.append(task)
        heavy += task.fingerprint is None
        if heavy >= PARALLEL_FROM or checks >= CHECKS_FROM:
            parallel = _threads if os.environ.get("SKILLMEAT_CACHE_SCAN_READERS") == "thread" else _processes
            ahead = jobs * (CHECK_AHEAD_PER_JOB if checks >= CHECKS_FROM else AHEAD_PER_JOB)
            yield from parallel(chain(waiting, stream), jobs, reader, ahead)
            return
        if len(waiting) >= LOOK_AHEAD:
            head = waiting.popleft()
            heavy -= head.fingerprint is None
            yield head, reader(head.path, head.fingerprint)
    for task in waiting:
        yield task, reader(task.path, task.fingerprint)


def _threads(
    tasks: Iterator[Task[T]], jobs: int, reader: Callable[[str, str | None], Outcome], ahead: int
) -> Iterator[tuple[Task[T], Outcome]]:
    from concurrent.futures import ThreadPoolExecutor

    pending: deque[tuple[Task[T], Future[Outcome]]] = deque()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="skillmeat-reader") as executor:
        try:
            for task in tasks:
                pending.append((task, executor.submit(reader, task.path, task.fingerprint)))
                if len(pending) >= ahead:
                    head, future = pending.popleft()
                    yield head, future.result()
            while pending:
                head, future = pending.popleft()
                yield head, future.result()
        finally:
            for _, future in pending:
                future.cancel()


@dataclass
class _Worker:
    """One reader process and the sequence numbers of the tasks it holds."""

    process: subprocess.Popen[bytes]
    held: set[int] = field(default_factory=set)
    alive: bool = True


_WORKER = "import sys; sys.path.insert(0, {path!r}); from skillmeat_cache.readers import _serve; _serve()"


def _start_worker() -> _Worker:
    import subprocess

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen(
        [sys.executable, "-c", _WORKER.format(path=package_parent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        close_fds=True,
    )
    return _Worker(process)


def _processes(
    tasks: Iterator[Task[T]], jobs: int, reader: Callable[[str, str | None], Outcome], ahead: int
) -> Iterator[tuple[Task[T], Outcome]]:
    done: dict[int, Outcome] = {}
    changed = threading.Condition()
    workers: list[_Worker] = []
    try:
        for _ in range(jobs):
            workers.append(_start_worker())
    except OSError:  # no processes to be had (a process or file limit): read here
        _stop_all(workers, [])
        for task in tasks:
            yield task, reader(task.path, task.fingerprint)
        return

    def collect(worker: _Worker) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        try:
            while True:
                seq, outcome = pickle.load(stdout)
                with changed:
                    done[seq] = outcome
                    worker.held.discard(seq)
                    changed.notify_all()
        except Exception:  # EOF (the worker ended or died) or a garbled answer
            with changed:
                worker.alive = False
                changed.notify_all()

    collectors = [threading.Thread(target=collect, args=(w,), daemon=True, name="skillmeat-reader") for w in workers]
    for thread in collectors:
        thread.start()
    pending: deque[tuple[int, Task[T]]] = deque()
    sent = 0
    try:
        stream = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < ahead:
                task = next(stream, None)
                if task is None:
                    exhausted = True
                    break
                pending.append((sent, task))
                _send(workers, sent, task, done, changed, reader)
                sent += 1
            if not pending:
                return
            seq, task = pending.popleft()
            yield task, _wait_for(seq, task, workers, done, changed, reader)
    finally:
        # Also when the writer stops early (an error, a closed generator): no worker outlives the scan.
        _stop_all(workers, collectors)


def _send(
    workers: list[_Worker],
    seq: int,
    task: Task[Any],
    done: dict[int, Outcome],
    changed: threading.Condition,
    reader: Callable[..., Outcome],
) -> None:
    """Hand a task to the least busy live worker; none left: read it here."""
    with changed:
        live = [w for w in workers if w.alive]
        worker = min(live, key=lambda w: len(w.held)) if live else None
        if worker is not None:
            worker.held.add(seq)
    if worker is not None:
        stdin = worker.process.stdin
        assert stdin is not None
        try:
            pickle.dump((seq, task.path, task.fingerprint), stdin)
            stdin.flush()
            return
        except OSError:  # the worker is gone: its collector notices
            with changed:
                worker.held.discard(seq)
    outcome = reader(task.path, task.fingerprint)
    with changed:
        done[seq] = outcome


def _wait_for(
    seq: int,
    task: Task[Any],
    workers: list[_Worker],
    done: dict[int, Outcome],
    changed: threading.Condition,
    reader: Callable[..., Outcome],
) -> Outcome:
    """The outcome of task ``seq``, read here when the worker holding it died."""
    with changed:
        while seq not in done:
            if not any(w.alive and seq in w.held for w in workers):
                break
            changed.wait()
        else:
            return done.pop(seq)
    return reader(task.path, task.fingerprint)


def _stop_all(workers: list[_Worker], collectors: list[threading.Thread]) -> None:
    """End the workers (EOF on their stdin; killed after 5 s) and their collectors."""
    for worker in workers:
        try:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        except OSError:
            pass
    for worker in workers:
        if not _exited_within(worker.process, 5):  # pragma: no cover - a worker stuck in a read
            worker.process.kill()
            worker.process.wait()
    for thread in collectors:
        thread.join(timeout=5)
    for worker in workers:
        if worker.process.stdout is not None:
            worker.process.stdout.close()


def _exited_within(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``process`` to end (and reap it). A pidfd says
    the moment it does; ``Popen.wait(timeout)`` polls with growing sleeps instead, which
    cost a scan ~15 ms for workers that take ~2 ms to exit.
    """
    import subprocess

    try:
        fd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or already reaped
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        ended, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ended:
        return False
    process.wait()
    return True


def _serve(stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
    """A worker's loop: read (seq, path, fingerprint) pickles, answer (seq, outcome)."""
    source = stdin or sys.stdin.buffer
    sink = stdout or sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed may land in the answers
    try:
        while True:
            try:
                seq, path, fingerprint = pickle.load(source)
            except EOFError:
                return
            pickle.dump((seq, read_one(path, fingerprint)), sink, protocol=pickle.HIGHEST_PROTOCOL)
            sink.flush()
    except (KeyboardInterrupt, BrokenPipeError):  # the caller was interrupted or went away
        return
