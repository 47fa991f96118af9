"""The ASGI application: ``create_app(container, settings)``.

The routes live on :data:`routes.router`, so SkillMeat's own FastAPI app can mount them::

    live = LiveCache(container, Settings(roots=[...]))
    app.state.skillmeat_cache = live
    app.include_router(router, prefix=PREFIX)
    # and in its lifespan: await live.start() ... await live.stop()
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from .guards import BodyLimit
from .live import LiveCache, Settings
from .problems import install_problem_handlers, problem
from .routes import PREFIX, _Busy, busy_handler, router

__all__ = ["COOKIE", "PAGE", "create_app"]

PAGE = Path(__file__).parent / "page"
COOKIE = "skillmeat_cache_token"


def create_app(container: Any, settings: Settings | None = None) -> FastAPI:
    """The server's app on ``container``'s cache: the API under ``/api/v1/cache``, the page
    at ``/``, the live cache started and stopped with the app's lifespan.
    """
    settings = settings or Settings()
    cache = LiveCache(container, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await cache.start()
        try:
            yield
        finally:
            await cache.stop()

    app = FastAPI(
        title="skillmeat-cache",
        version="1",
        summary="The SkillMeat project cache, live.",
        lifespan=lifespan,
    )
    app.state.skillmeat_cache = cache
    install_problem_handlers(app)
    app.add_exception_handler(_Busy, busy_handler)
    app.include_router(router, prefix=PREFIX)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGE / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=PAGE), name="static")
    app.add_middleware(BodyLimit)  # innermost: a 413 gets CORS headers, and a token is checked first
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    if settings.token:
        app.add_middleware(TokenGuard, token=settings.token)
    return app


class TokenGuard:
    """Every request needs the bearer token: ``Authorization: Bearer <token>``, or the
    cookie the page gets by opening ``/?token=<token>`` once (a browser's EventSource
    cannot send headers). Compared in constant time; 401 problem+json otherwise.
    """

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _matches(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        bearer = auth[7:] if auth[:7].lower() == "bearer " else None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            cookie = SimpleCookie()
        from_cookie = cookie[COOKIE].value if COOKIE in cookie else None
        if self._matches(bearer) or self._matches(from_cookie):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
        if scope["path"] == "/" and self._matches(query):
            value = f"{COOKIE}={query}; HttpOnly; SameSite=Strict; Path=/"
            response = problem(303, "SeeOther", "token accepted", headers={"Location": "/", "Set-Cookie": value})
        else:
            response = problem(
                401, "Unauthorized", "this server needs its token: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        await response(scope, receive, send)
