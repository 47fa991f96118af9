"""The HTTP side of the cache: ``create_app(container, settings)`` builds the ASGI app that
``skillmeat-cache serve`` runs (routes in :mod:`.routes`, background work in :mod:`.live`).
"""

from __future__ import annotations

from .app import create_app
from .live import DEFAULT_TTL, LiveCache, Settings
from .routes import PREFIX, router

__all__ = ["DEFAULT_TTL", "PREFIX", "LiveCache", "Settings", "create_app", "router"]
