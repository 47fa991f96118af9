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


def _pathlib_hash(folder):
    """SkillMeat's definition, written with pathlib as SkillMeat writes it."""
    digest = hashlib.sha256()
    for item in sorted(folder.rglob("*")):
        if item.is_file():
            digest.update(item.relative_to(folder).as_posix().encode("utf-8"))
            digest.update(item.read_bytes())
    return digest.hexdigest()


def test_folder_hash_walks_as_rglob_does_on_an_awkward_tree(tmp_path):
    """Hidden files and folders, deep nesting, names that sort differently as strings and as
    paths, a symlinked file (hashed through the link), a symlinked folder (listed, not
    descended into), a dangling link and an empty folder."""
    skill = tmp_path / "skill"
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "x.md").write_bytes(b"outside")
    (outside / "file.md").write_bytes(b"linked file")
    for rel, data in [
        ("SKILL.md", b"---\nname: s\n---\n"),
        (".hidden/inner.txt", b"h"),
        ("a/z", b"1"),
        ("a-b", b"2"),
        ("a/b/c/d/e.txt", b"deep"),
        ("A", b"upper"),
        ("\u00e9t\u00e9.md", b"accent"),
    ]:
        (skill / rel).parent.mkdir(parents=True, exist_ok=True)
        (skill / rel).write_bytes(data)
    (skill / "empty").mkdir()
    (skill / "linked.md").symlink_to(outside / "file.md")
    (skill / "linked-folder").symlink_to(outside / "deep")
    (skill / "dangling").symlink_to(tmp_path / "nowhere")
    assert content_hash(skill) == _pathlib_hash(skill)
    assert content_hash(skill / "SKILL.md") == hashlib.sha256(b"---\nname: s\n---\n").hexdigest()


def test_hash_and_head_reads_the_manifest_once_on_the_way(tmp_path):
    from skillmeat_cache.hashing import hash_and_head

    skill = tmp_path / "skill"
    (skill / "ref").mkdir(parents=True)
    (skill / "SKILL.md").write_bytes(b"0123456789")
    (skill / "ref" / "more.md").write_bytes(b"more")
    digest, head = hash_and_head(skill, str(skill / "SKILL.md"), 4)
    assert (digest, head) == (content_hash(skill), b"0123")
    assert hash_and_head(skill, str(skill / "absent.md"), 4) == (content_hash(skill), None)
    assert hash_and_head(skill / "SKILL.md", str(skill / "SKILL.md"), 100) == (
        hashlib.sha256(b"0123456789").hexdigest(),
        b"0123456789",
    )
