"""The server's event stream: numbered events kept in a bounded buffer, fanned out to
Server-Sent-Events subscribers.

Publishing is thread-safe (the refresh worker and the change feed run in threads); each
subscriber has its own asyncio queue, fed on its event loop. A client that reconnects
with ``Last-Event-ID`` gets every buffered event after that id; when the id is older than
the buffer, or from another run of the server, it gets one ``reset`` event instead, and
should reload what it shows. On the wire an id is ``<run>-<number>``: the run is random
per server start, so an id from before a restart is never mistaken for a new one.

A subscriber whose queue overflows (its client stopped reading, or reads far slower than
events come) is dropped at once: it is fed no more, its slot is free, and its stream
sends ``reset`` and ends when it reads again (a browser's EventSource reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUFFER_SIZE", "MAX_SUBSCRIBERS", "Event", "EventHub", "Subscription", "TooManySubscribersError"]

BUFFER_SIZE = 1000
MAX_SUBSCRIBERS = 64
_QUEUE_SIZE = 1000


class TooManySubscribersError(Exception):
    """Every subscriber slot is taken."""


@dataclass(frozen=True)
class Event:
    """One event: its number, its name, its JSON payload."""

    id: int
    name: str
    data: dict[str, Any]


@dataclass
class Subscription:
    """One subscriber's queue; ``missed`` when its queue overflowed: it was dropped."""

    queue: asyncio.Queue[Event | None]  # None: the server is stopping
    loop: asyncio.AbstractEventLoop
    missed: bool = False
    replay: list[Event] = field(default_factory=list)


class EventHub:
    """Numbered events, the last :data:`BUFFER_SIZE` of them kept for reconnecting clients."""

    def __init__(self, buffer_size: int = BUFFER_SIZE, max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self._lock = threading.Lock()
        self._buffer: deque[Event] = deque(maxlen=buffer_size)
        self._next = 1
        self._subscribers: list[Subscription] = []
        self.max_subscribers = max_subscribers
        self.closed = False
        self.run = secrets.token_hex(4)

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before the first)."""
        return self._next - 1

    def publish(self, name: str, data: dict[str, Any]) -> Event:
        """Number ``data`` as event ``name``, keep it, and hand it to every subscriber."""
        with self._lock:
            event = Event(self._next, name, data)
            self._next += 1
            self._buffer.append(event)
            subscribers = list(self._subscribers)
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(self._offer, sub, event)
            except RuntimeError:  # its loop is closed: the client is gone
                self.unsubscribe(sub)
        return event

    def subscribe(self, last_event_id: int | None = None, run: str | None = None) -> Subscription:
        """A new subscriber on the running loop, with the buffered events after
        ``last_event_id`` in ``replay`` (or a ``reset`` event when they are gone).
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.closed:
                raise TooManySubscribersError("the server is stopping")
            if len(self._subscribers) >= self.max_subscribers:
                raise TooManySubscribersError(f"at most {self.max_subscribers} event subscribers")
            sub = Subscription(asyncio.Queue(_QUEUE_SIZE), loop)
            if run is not None and run != self.run:
                reason = "Last-Event-ID is from another run of the server"
                sub.replay = [Event(self.last_id, "reset", {"reason": reason})]
            elif last_event_id is not None:
                sub.replay = self.since(last_event_id)
            self._subscribers.append(sub)
        return sub

    def since(self, last_event_id: int) -> list[Event]:
        """The buffered events after ``last_event_id``; one ``reset`` event when some of
        them are no longer kept, or the id is from a later run of the server.
        """
        oldest = self._buffer[0].id if self._buffer else self._next
        if last_event_id >= self._next or last_event_id < oldest - 1:
            reason = (f"ahead of the newest event ({self.last_id})" if last_event_id >= self._next
                      else "older than the buffer")
            return [Event(self.last_id, "reset", {"reason": f"Last-Event-ID {last_event_id} is {reason}"})]
        return [e for e in self._buffer if e.id > last_event_id]

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop feeding ``sub``."""
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def close(self) -> None:
        """End every subscriber's stream (the server is stopping: open streams would hold
        its shutdown); later subscribers are refused.
        """
        with self._lock:
            self.closed = True
            subscribers, self._subscribers = list(self._subscribers), []
        for sub in subscribers:
            with contextlib.suppress(RuntimeError):
                sub.loop.call_soon_threadsafe(self._offer, sub, None)

    @property
    def subscribers(self) -> int:
        """How many subscribers are connected."""
        return len(self._subscribers)


    def _offer(self, sub: Subscription, event: Event | None) -> None:
        """On ``sub``'s loop: queue ``event``; drop ``sub`` when its queue is full."""
        if event is None:  # the end: make room for it if need be
            while sub.queue.full():
                sub.queue.get_nowait()
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:
            sub.missed = True
            self.unsubscribe(sub)
