"""The SkillMeat content hash, reproduced independently."""

from __future__ import annotations

import hashlib

from skillmeat_cache.hashing import content_hash


def test_file_hash_is_sha256_of_bytes(tmp_path):
    f = tmp_path / "agent.md"
    f.write_bytes(b"---\nname: a\n---\nbody\n")
    assert content_hash(f) == hashlib.sha256(b"---\nname: a\n---\nbody\n").hexdigest()


def test_folder_hash_feeds_relative_paths_then_bytes_in_pathlib_order(tmp_path):
    skill = tmp_path / "pdf"
    (skill / "a").mkdir(parents=True)
    (skill / "a-b").write_bytes(b"2")
    (skill / "a" / "z").write_bytes(b"1")
    (skill / ".hidden").write_bytes(b"3")
    (skill / "SKILL.md").write_bytes(b"4")
    # pathlib compares component by component: "a/z" sorts before "a-b" (string order would not)
    expected = hashlib.sha256()
    for rel, data in [(".hidden", b"3"), ("SKILL.md", b"4"), ("a/z", b"1"), ("a-b", b"2")]:
        expected.update(rel.encode())
        expected.update(data)
    assert content_hash(skill) == expected.hexdigest()
    (skill / "a" / "z").write_bytes(b"changed")
    assert content_hash(skill) != expected.hexdigest()
