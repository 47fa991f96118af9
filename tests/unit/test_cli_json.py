"""The CLI's ``--json`` output: orjson's, and ``json``'s where orjson refuses the data."""

from __future__ import annotations

import json

from skillmeat_cache.cli_params import echo_json


def test_json_is_one_line_of_utf8_text(capsys):
    data = [{"name": "café ☕", "count": 3, "none": None, "nested": {"tags": ["a", "b"]}}]
    echo_json(data)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "café ☕" in out  # not ASCII-escaped
    assert json.loads(out) == data


def test_what_orjson_refuses_is_written_by_json(capsys):
    # A path with bytes that are not UTF-8, as os.fsdecode keeps them (surrogates), and a
    # number beyond 64 bits: orjson refuses both.
    data = {"path": "/projects/caf\udce9", "big": 2**70}
    echo_json(data)
    out = capsys.readouterr().out
    assert json.loads(out) == data
