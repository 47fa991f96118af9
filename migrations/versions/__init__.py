"""Revision scripts; each revision id is short (PostgreSQL keeps it in VARCHAR(32))."""
