"""Content hashes exactly as SkillMeat computes them, so stored hashes compare equal.

A file: SHA-256 of its bytes. A folder: SHA-256 over every file below it (hidden ones
included) in ``sorted(folder.rglob("*"))`` order (pathlib paths, compared component by
component), feeding each file's POSIX path relative to the folder (UTF-8) and then
its bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["content_hash"]

_CHUNK = 1 << 20


def _feed_file(digest: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def content_hash(path: Path) -> str:
    """The SkillMeat content hash (hex SHA-256) of a file or a folder."""
    digest = hashlib.sha256()
    if path.is_dir():
        for item in sorted(path.rglob("*")):
            if item.is_file():
                digest.update(item.relative_to(path).as_posix().encode("utf-8"))
                _feed_file(digest, item)
    else:
        _feed_file(digest, path)
    return digest.hexdigest()
