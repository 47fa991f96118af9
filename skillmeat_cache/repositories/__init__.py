"""Repositories, one per aggregate: abstract bases and SQLAlchemy implementations."""
