"""Where the cache lives: the default files, database URLs from paths, options and the
environment, and showing a URL without its password. No engine is built here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from .errors import CacheError

__all__ = [
    "ENVIRONMENTS",
    "ENV_VAR_ENV",
    "ENV_VAR_URL",
    "MEMORY_URL",
    "SYNCHRONOUS_MODES",
    "default_database_path",
    "is_default_database",
    "is_memory_url",
    "parse_url",
    "redact_url",
    "resolve_database_url",
    "to_url",
]

ENVIRONMENTS = ("production", "dev", "test")
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
MEMORY_URL = "sqlite://"
ENV_VAR_ENV = "SKILLMEAT_CACHE_ENV"
ENV_VAR_URL = "SKILLMEAT_CACHE_URL"


_DEFAULT_FILES = {"production": "cache.db", "dev": "dev.db"}


def default_database_path(env: str) -> Path:
    """The SQLite file of an environment: ``~/.skillmeat/cache/{cache,dev}.db``.

    The one place that decides where the default cache lives (see also
    :func:`is_default_database`).
    """
    if env not in _DEFAULT_FILES:
        raise CacheError(f"environment {env!r} has no database file (choose one of {', '.join(ENVIRONMENTS)})")
    home = os.environ.get("HOME")
    # HOME="" would put the cache at /.skillmeat, a relative one in whatever folder we run in.
    if home is not None and not os.path.isabs(home):
        raise CacheError(
            f"HOME is not an absolute folder ({home!r}), so the default cache has no place; "
            f"choose a database file with --db PATH or {ENV_VAR_URL}"
        )
    return Path(os.path.expanduser("~")) / ".skillmeat" / "cache" / _DEFAULT_FILES[env]


def is_default_database(url: str | URL) -> bool:
    """True when ``url`` is one of the default cache files (``production`` or ``dev``):
    the only databases whose folder we create (0700) when it is missing.
    """
    text = to_url(url if isinstance(url, str) else url.render_as_string(hide_password=False))
    if not text.startswith("sqlite"):
        return False
    try:
        return any(text == to_url(default_database_path(env)) for env in _DEFAULT_FILES)
    except CacheError:  # no usable HOME: nothing is the default
        return False


def to_url(url_or_path: str | os.PathLike[str]) -> str:
    """A database URL from a URL or a bare filesystem path (a bare path means SQLite)."""
    text = os.fspath(url_or_path)
    if "://" in text:
        if text.startswith("postgresql://") or text.startswith("postgres://"):
            # psycopg 3 is the driver we declare; SQLAlchemy's default would be psycopg2.
            text = "postgresql+psycopg://" + text.split("://", 1)[1]
        return text
    return "sqlite:///" + str(Path(text).expanduser().absolute())


def resolve_database_url(
    env: str | None = None,
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Pick the database URL.

    Explicit arguments win: ``database_url`` over ``env``. Only when neither is given do
    the environment variables ``SKILLMEAT_CACHE_URL`` then ``SKILLMEAT_CACHE_ENV`` fill
    in, so that a test that sets ``env="test"`` never touches a real cache. The default
    is ``production``. ``env="test"`` means a private in-memory SQLite database.
    """
    environ = os.environ if environ is None else environ
    if not database_url and not env:
        database_url = environ.get(ENV_VAR_URL) or None
        env = environ.get(ENV_VAR_ENV) or None
    if database_url:
        return to_url(database_url)
    env = env or "production"
    if env not in ENVIRONMENTS:
        raise CacheError(f"unknown environment {env!r}: choose one of {', '.join(ENVIRONMENTS)}")
    if env == "test":
        return MEMORY_URL
    return to_url(default_database_path(env))


def parse_url(url: str) -> URL:
    """The parsed database URL; a CacheError that never repeats the URL (it may hold a
    password), also for an unescaped ``@`` that would put part of the password in the
    host name.
    """
    try:
        parsed = make_url(url)
    except (ValueError, sa_exc.ArgumentError):
        raise CacheError(
            "not a valid database URL (not shown: it may hold a password); "
            "expected a path or e.g. postgresql://user:password@host:5432/dbname"
        ) from None
    if parsed.host and "@" in parsed.host:
        raise CacheError(
            "the database URL holds more than one '@' (not shown: it may hold a password); "
            "write an '@' inside the user name or password as %40"
        )
    return parsed


def redact_url(url: str | URL) -> str:
    """The URL as text with any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: say nothing of it that could hold a secret
        return "<unparseable database URL>"


def is_memory_url(url: URL) -> bool:
    """True for an in-memory SQLite URL."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


