"""Running the server: what ``skillmeat-cache serve`` does after parsing its options."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from ..errors import CacheError
from .live import Settings

__all__ = ["cap_malloc_arenas", "check_exposure", "is_loopback", "run"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only ever means this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise CacheError(
            f"refusing to listen on {host} without a token: anyone who can reach it could read the cache; "
            "give --token (or SKILLMEAT_CACHE_TOKEN), or listen on 127.0.0.1"
        )
    if token is not None and len(token) < 16:
        raise CacheError("--token must be at least 16 characters")


def cap_malloc_arenas(arenas: int = 2) -> bool:
    """Ask glibc for at most ``arenas`` malloc arenas (``mallopt(M_ARENA_MAX)``), unless
    ``MALLOC_ARENA_MAX`` is set; whether the cap was set. A server's thread pool (40
    threads) otherwise grows one arena per thread that allocates, up to 8 per core, and
    the soak trial's RSS grew 14 % in 5 minutes (3 % with the cap: docs/reliability.md).
    Only where the C library is glibc; elsewhere nothing is done.
    """
    import ctypes
    import ctypes.util
    import os
    import platform

    if os.environ.get("MALLOC_ARENA_MAX") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


_M_ARENA_MAX = -8  # glibc's malloc.h


def run(container: Any, settings: Settings, host: str, port: int, *, announce: Any = print) -> None:
    """Serve ``container``'s cache on ``host:port`` until interrupted."""
    import logging

    import uvicorn

    cap_malloc_arenas()  # before the server starts its threads

    from .app import create_app
    from .guards import SlowClientLogFilter

    check_exposure(host, settings.token)
    app = create_app(container, settings)
    live = app.state.skillmeat_cache
    hub = live.events

    def rebuilt(recovered: dict[str, Any]) -> None:
        announce(f"warning: the cache was damaged; it is rebuilt and the damaged file is kept as "
                 f"{recovered['moved_to']}: {recovered['summary']}")

    if live.recovered is not None:
        rebuilt(live.recovered)
    live.on_recovered = rebuilt  # a heal while running says so too

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            hub.close()  # end the event streams, or they would hold the shutdown
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
    )
    server = Server(config)
    errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, SlowClientLogFilter) for f in errors.filters):
        errors.addFilter(SlowClientLogFilter())
    announce(f"serving http://{host}:{port}/ (API under /api/v1/cache, docs at /docs); Ctrl-C stops")
    server.run()
