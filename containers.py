"""The composition root, where the design card puts it: ``from containers import Container``.

The container ships inside the package as :mod:`skillmeat_cache.container` (so the CLI and
the server use the same one, and site-packages gains no generic module of ours); this
module is its name at the top level of the repository and the wheel.
"""

from __future__ import annotations

from skillmeat_cache.container import Container

__all__ = ["Container"]
