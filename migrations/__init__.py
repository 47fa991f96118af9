"""Alembic migration scripts, installed as ``skillmeat_cache.migrations``."""
