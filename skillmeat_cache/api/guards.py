"""What the server refuses before a route runs, and the one thing it stops while one runs.

- :class:`BodyLimit`: a request body over :data:`MAX_BODY_BYTES` is a 413 problem. A
  ``Content-Length`` over the limit is answered before a byte of the body is read; a
  chunked body is counted as it arrives and refused once past the limit.
- :class:`CheckedRoute`: the routes' class. A query parameter the route does not take is
  a 422 problem naming it and the ones it takes (the names are gathered once per route);
  an event stream whose writes stall for ``Settings.event_write_timeout`` (the client
  stopped reading) is closed.

FastAPI's own ``max_body_size`` was not used: it answers a ``Content-Length`` over the
limit with a ``text/plain`` 413 from outside the app's exception handlers, so the answer
could not be a problem.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from .problems import problem

__all__ = ["MAX_BODY_BYTES", "BodyLimit", "BodyTooLargeError", "CheckedRoute", "SlowClientLogFilter"]

log = logging.getLogger(__name__)
#: The largest request body taken (the API's bodies are a few dozen bytes).
MAX_BODY_BYTES = 64 * 1024
# Set in the request's task when a stalled event stream is closed on purpose.
_closing_stalled = contextvars.ContextVar("skillmeat_cache_closing_stalled", default=False)


def _too_large_detail(limit: int) -> str:
    return f"the request body is over {limit:,} bytes; this server takes bodies of at most {limit:,} bytes"


class BodyTooLargeError(HTTPException):
    """A request body over the limit (413); the connection is closed after the answer,
    since the rest of the body is never read.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_detail(limit), headers={"Connection": "close"})


class BodyLimit:
    """Pure ASGI: request bodies of at most ``limit`` bytes (413 problem+json beyond)."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, refused or with its body counted."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and not chunked:
            # The server never hands on more than Content-Length bytes (h11 and httptools
            # refuse a malformed one with 400 before the app is called).
            if length.isdigit() and int(length) > self.limit:
                detail = _too_large_detail(self.limit)
                await problem(413, "ContentTooLarge", detail, headers={"Connection": "close"})(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if not chunked:  # no body
            await self.app(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError(self.limit)  # FastAPI lets an HTTPException through to our handler
            return message

        await self.app(scope, counted, send)


def _query_names(dependant: Dependant) -> frozenset[str]:
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        names.update(field.alias for field in current.query_params)
        stack.extend(current.dependencies)
    return frozenset(names)


class CheckedRoute(APIRoute):
    """An APIRoute that refuses query parameters it does not take, and closes its event
    stream when the client stops reading (the route's response class is FastAPI's
    ``EventSourceResponse``).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler behind the query check (and the write deadline for SSE)."""
        handler = super().get_route_handler()
        known = _query_names(self.dependant)
        takes = ", ".join(sorted(known)) if known else "no query parameters"
        stream = bool(getattr(self, "is_sse_stream", False))

        async def checked(request: Request) -> Response:
            if request.scope["query_string"]:
                unknown = request.query_params.keys() - known
                if unknown:
                    name = min(unknown)
                    raise RequestValidationError([{
                        "type": "extra_forbidden", "loc": ("query", name),
                        "msg": f"unknown parameter; this endpoint takes {takes}",
                    }])
            try:
                response = await handler(request)
            except HTTPException as exc:
                if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
                    # FastAPI's "error parsing the body" for JSON nested deeper than Python's stack
                    raise RequestValidationError([{
                        "type": "json_invalid", "loc": ("body",), "msg": "JSON nested too deeply",
                    }]) from None
                raise
            if stream:
                timeout = request.app.state.skillmeat_cache.settings.event_write_timeout
                return _WriteDeadline(response, timeout)  # type: ignore[return-value]
            return response

        return checked


class _StalledClient(Exception):
    pass


class _WriteDeadline:
    """A streamed response whose every write must be taken by the client within
    ``timeout`` seconds; else the stream ends and the server closes the connection.
    """

    def __init__(self, response: Response, timeout: float) -> None:
        self.response = response
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def timed(message: Message) -> None:
            try:
                async with asyncio.timeout(self.timeout):
                    await send(message)
            except TimeoutError:
                raise _StalledClient from None

        try:
            await self.response(scope, receive, timed)
        except* _StalledClient:
            log.warning("closed an event stream: its client read nothing for %g s", self.timeout)
            _closing_stalled.set(True)  # for SlowClientLogFilter: what the server logs next is expected


class SlowClientLogFilter(logging.Filter):
    """For uvicorn's error logger: drops its error record about a request whose stalled
    event stream was closed on purpose (our warning says why). Closing it that way makes
    FastAPI's SSE teardown (0.165) raise ``anyio.BrokenResourceError``, its keep-alive task
    being blocked on a stream nobody reads any more; uvicorn logs that as "Exception in
    ASGI application" with a traceback and closes the connection, which is the intent.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) while a stalled stream is being closed in this task."""
        return not _closing_stalled.get()
