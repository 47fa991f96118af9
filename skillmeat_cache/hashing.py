"""Content hashes exactly as SkillMeat computes them, so stored hashes compare equal.

A file: SHA-256 of its bytes. A folder: SHA-256 over every file below it (hidden ones
included) in ``sorted(folder.rglob("*"))`` order (pathlib paths, compared component by
component), feeding each file's POSIX path relative to the folder (UTF-8) and then
its bytes.

The folder walk reproduces what Python 3.11's ``Path.rglob("*")`` lists (symlinked
folders listed but not descended into, a folder that cannot be listed for lack of
permission skipped) with ``os.scandir`` and plain strings: pathlib's objects cost more
than the hashing itself on a tree of small files. ``tests/unit/test_hashing.py`` holds
it to pathlib's answer on awkward trees.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["content_hash", "hash_and_head"]

_CHUNK = 1 << 20
# Errors pathlib's is_dir()/is_file() answer False for instead of raising (3.11 _IGNORED_ERRNOS).
_IGNORED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _below(folder: str) -> list[tuple[tuple[str, ...], str]]:
    """(relative parts, path) of every entry below ``folder``, as ``rglob("*")`` finds them."""
    found: list[tuple[tuple[str, ...], str]] = []
    stack: list[tuple[str, tuple[str, ...]]] = [(folder, ())]
    while stack:
        current, parts = stack.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except PermissionError:
            continue
        for entry in entries:
            rel = (*parts, entry.name)
            found.append((rel, entry.path))
            try:
                descend = entry.is_dir() and not entry.is_symlink()
            except OSError as exc:
                if exc.errno not in _IGNORED:
                    raise
                descend = False
            if descend:
                stack.append((entry.path, rel))
    found.sort(key=lambda item: item[0])
    return found


def _mode_is(path: str, test: Callable[[int], bool]) -> bool:
    """``test`` on the mode of what ``path`` leads to; False when it is gone or unreadable."""
    try:
        return test(os.stat(path).st_mode)
    except OSError as exc:
        if exc.errno not in _IGNORED:
            raise
        return False
    except ValueError:
        return False


def _is_dir(path: str) -> bool:
    return _mode_is(path, stat.S_ISDIR)


def _is_file(path: str) -> bool:
    return _mode_is(path, stat.S_ISREG)


def _feed(digest: hashlib._Hash, path: str, keep: int = 0) -> bytes:
    """Feed a file's bytes to ``digest``; return its first ``keep`` bytes."""
    with open(path, "rb") as handle:
        head = handle.read(keep) if keep else b""
        digest.update(head)
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return head


def hash_and_head(path: Path | str, file: str | None, limit: int) -> tuple[str, bytes | None]:
    """The content hash of ``path`` and, read on the way, the first ``limit`` bytes of
    ``file`` (``path`` itself, or a file below the folder ``path`` as the walk names it:
    ``os.path.join(path, relative)``); None when the walk met no such regular file.
    """
    digest = hashlib.sha256()
    text = os.fspath(path)
    if not _is_dir(text):
        head = _feed(digest, text, limit)
        return digest.hexdigest(), head if file == text else None
    head = None
    for parts, item in _below(text):
        if _is_file(item):
            digest.update("/".join(parts).encode("utf-8"))
            if item == file:
                head = _feed(digest, item, limit)
            else:
                _feed(digest, item)
    return digest.hexdigest(), head


def content_hash(path: Path) -> str:
    """The SkillMeat content hash (hex SHA-256) of a file or a folder."""
    return hash_and_head(path, None, 0)[0]
