"""Errors as RFC 9457 problem details (``application/problem+json``): our error type and
a one-line message, never a traceback or a driver's message.

| error | status |
|---|---|
| NotFoundError, an unknown route | 404 |
| ValidationError, bad parameters or body | 422 |
| ConstraintViolationError (DuplicateError, ForeignKeyViolationError) | 409 |
| DatabaseBusyError | 503, ``Retry-After: 1`` |
| DatabaseUnavailableError, SchemaVersionError, read-only or corrupt database | 503, ``Retry-After: 5`` |
| DatabaseFullError | 507 |
| a request body over the limit (``guards.BodyLimit``) | 413, ``Connection: close`` |
| anything else | 500, "internal error" (the details go to the server's log) |
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from ..db_errors import map_db_error
from ..errors import (
    CacheError,
    ConstraintViolationError,
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseFullError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
    NotFoundError,
    ReadOnlyError,
    SchemaVersionError,
    ValidationError,
    ValueTooLargeError,
)

__all__ = ["install_problem_handlers", "problem", "status_of"]

log = logging.getLogger(__name__)
_URN = "urn:skillmeat-cache:error:"
_DETAIL_MAX = 300
# (error type, status, Retry-After seconds): the first match wins.
_STATUS: tuple[tuple[type[BaseException], int, int | None], ...] = (
    (NotFoundError, 404, None),
    (ValidationError, 422, None),
    (ValueTooLargeError, 422, None),
    (ConstraintViolationError, 409, None),
    (DatabaseBusyError, 503, 1),
    (DatabaseUnavailableError, 503, 5),
    (SchemaVersionError, 503, 5),
    (DatabaseReadOnlyError, 503, 5),
    (ReadOnlyError, 503, 5),
    (DatabaseCorruptError, 503, 5),
    (DatabaseFullError, 507, None),
)
_TITLES = {401: "Unauthorized", 404: "Not Found", 409: "Conflict", 413: "Content Too Large",
           422: "Unprocessable Content", 500: "Internal Error", 503: "Service Unavailable", 507: "Insufficient Storage"}


def status_of(exc: BaseException) -> tuple[int, int | None]:
    """The HTTP status (and Retry-After seconds) of one of our errors."""
    for kind, status, retry in _STATUS:
        if isinstance(exc, kind):
            return status, retry
    return 500, None


def problem(
    status: int, kind: str, detail: str, *, retry_after: int | None = None, errors: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    line = detail.splitlines()[0] if detail else kind
    if len(line) > _DETAIL_MAX:  # an id of thousands of characters, quoted back
        line = line[:_DETAIL_MAX] + "..."
    body: dict[str, Any] = {"type": _URN + kind, "title": _TITLES.get(status, "Error"), "status": status,
                            "detail": line}
    if errors is not None:
        body["errors"] = errors
    out = dict(headers or {})
    if retry_after is not None:
        out["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, headers=out, media_type="application/problem+json")


async def _cache_error(_request: Request, exc: Exception) -> JSONResponse:
    status, retry = status_of(exc)
    if status == 500:
        log.error("unexpected %s: %s", type(exc).__name__, exc)
        return problem(500, type(exc).__name__, "internal error")
    return problem(status, type(exc).__name__, str(exc), retry_after=retry)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return problem(422, "ValidationError", f"{where}: {first['msg']}" if where else first["msg"], errors=errors)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kinds = {401: "Unauthorized", 404: "NotFoundError", 405: "MethodNotAllowed", 413: "ContentTooLarge"}
    kind = kinds.get(exc.status_code, "HTTPError")
    return problem(exc.status_code, kind, str(exc.detail), headers=dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    mapped = map_db_error(exc)  # a driver's error reached us unwrapped (a read model's query)
    if isinstance(mapped, CacheError):
        return await _cache_error(request, mapped)
    log.exception("unexpected error", exc_info=exc)
    return problem(500, "InternalError", "internal error")


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem+json."""
    app.add_exception_handler(CacheError, _cache_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # A driver's error gets a handler of its own: Starlette's handler for Exception answers
    # and then re-raises, so uvicorn logged a traceback and dropped the keep-alive
    # connection for every 503 while the database was away (clients saw resets).
    app.add_exception_handler(DBAPIError, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
