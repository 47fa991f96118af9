"""libyaml's C loader (used when PyYAML has it) and PyYAML's pure-Python one read every
project alike: the same artifacts and metadata, the same warnings at the same paths. Only
the wording of a YAML syntax error comes from the parser and differs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import write_file

from benchmarks.corpus import generate
from skillmeat_cache import formats
from skillmeat_cache.scanner import discover_projects, read_project

pytestmark = pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")

_EDGES = {
    "recovered": "---\ndescription: a: b: c\nname: x\n---\n",
    "unclosed": "---\ntags: [py, csv\n---\n",
    "python-tag": "---\nx: !!python/object/apply:os.system ['ls']\n---\n",
    "recursive": "---\na: &x [*x]\n---\n",
    "a-list": "---\n- 1\n- 2\n---\n",
    "as-written": "---\nversion: 1.10\ntags: py, csv\nwhen: 2024-01-01\nmetadata:\n  version: 2\n---\n",
    "nul": '---\ndescription: "a\\0b"\n---\n',
    "duplicate-keys": "---\nname: a\nname: b\n---\n",
    "dates-and-numbers": "---\nn: 0x1F\nf: .inf\nd: 2024-01-01T10:00:00Z\nb: yes\n---\n",
}
_PROBLEM = re.compile(r"^(malformed frontmatter: ).*?( \(frontmatter line \d+\))?(;.*)?$")


def _read(root: Path, loader: type, monkeypatch: pytest.MonkeyPatch) -> list:
    monkeypatch.setattr(formats, "_YAML_LOADER", loader)
    return [read_project(path) for path in discover_projects([root])]


def _shape(message: str) -> str:
    """A warning with the parser's own wording of the problem left out."""
    return _PROBLEM.sub(r"\1<problem>\2\3", message)


def test_pure_python_loader_reads_what_the_c_loader_reads(tmp_path, monkeypatch):
    generate(tmp_path / "corpus", 6, 10, seed=5)
    for name, text in _EDGES.items():
        write_file(tmp_path / "edges" / ".claude" / "skills" / name / "SKILL.md", text)
    fast = _read(tmp_path, yaml.CSafeLoader, monkeypatch)
    pure = _read(tmp_path, yaml.SafeLoader, monkeypatch)
    assert len(fast) == 7 and sum(len(p.artifacts) for p in fast) == 6 * 10 + len(_EDGES)
    for a, b in zip(fast, pure, strict=True):
        assert a.artifacts == b.artifacts  # every field: names, hashes, versions, tags, metadata
        assert (a.name, a.description, a.fingerprint) == (b.name, b.description, b.fingerprint)
        assert [(w.path, _shape(w.message)) for w in a.warnings] == [(w.path, _shape(w.message)) for w in b.warnings]
    edges = {Path(w.path).parent.name for p in fast for w in p.warnings}
    assert {"recovered", "unclosed", "python-tag", "recursive", "a-list"} <= edges
