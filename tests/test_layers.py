"""Who imports whom: the filesystem layer stands without the database layer."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_scanner_imports_neither_the_orm_nor_sqlalchemy():
    code = (
        "import json, sys; import skillmeat_cache.scanner; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('skillmeat_cache', 'sqlalchemy'))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "skillmeat_cache.models" not in loaded
    assert not [m for m in loaded if m.startswith("sqlalchemy")]
    assert set(loaded) == {
        "skillmeat_cache",
        "skillmeat_cache.config_files",
        "skillmeat_cache.deployed",
        "skillmeat_cache.discovery",
        "skillmeat_cache.errors",
        "skillmeat_cache.fingerprint",
        "skillmeat_cache.formats",
        "skillmeat_cache.hashing",
        "skillmeat_cache.layout",
        "skillmeat_cache.reader",
        "skillmeat_cache.scanner",
        "skillmeat_cache.values",
    }
