"""File formats the scanner reads: markdown frontmatter (YAML), JSON, TOML.

Pure parsing, no walking: each reader takes a path and a ``warn(path, message)`` callback,
never raises for a bad file, and returns what it could read. Text values are made
storable (NUL bytes and unpaired surrogates become U+FFFD, with one warning).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import frontmatter
import yaml

from .errors import ValidationError
from .values import TEXT_LIMITS, check_text

#: At most this many bytes of a markdown file (or of a JSON file) are read for metadata.
FRONTMATTER_READ_LIMIT = 256 * 1024
TOML_LIMIT = 16 * 1024 * 1024
_DATA_BUDGET = 100_000  # values in one frontmatter document (guards against alias bombs)
# libyaml's safe loader when PyYAML was built with it (8x faster), else the pure-Python one.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_NULL = "tag:yaml.org,2002:null"
_YAML_HANDLER = frontmatter.YAMLHandler()

Warn = Callable[[str, str], None]


def text_path(path: str) -> str:
    """A path as valid text (undecodable bytes shown as backslash escapes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return path


def one_line(message: object, limit: int = 300) -> str:
    """``message`` as one line of at most ``limit`` characters."""
    text = " ".join(text_path(str(message)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_valid_text(value: str) -> bool:
    """Whether ``value`` passes :func:`check_text` (no NUL byte, no unpaired surrogate)."""
    if value.isascii() and "\x00" not in value:  # the common case, without the call
        return True
    try:
        check_text("text", value)
    except ValidationError:
        return False
    return True


# --------------------------------------------------------------------------- metadata


@dataclass(slots=True)
class Meta:
    """The metadata of one artifact. ``state``: absent (no frontmatter), ok, broken."""

    state: str = "absent"
    data: dict[str, Any] | None = None
    version: str | None = None
    source: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)


class _TooComplex(Exception):
    pass


_NON_SCALAR = object()  # a raw value that is a list or a mapping


class _Text:
    """Cleans text values: NUL bytes and unpaired surrogates become U+FFFD, once warned."""

    def __init__(self, path: str, warn: Warn) -> None:
        self.path, self.warn, self.warned = path, warn, False

    def __call__(self, value: str) -> str:
        if is_valid_text(value):
            return value
        if not self.warned:
            self.warned = True
            self.warn(self.path, "metadata text holds NUL bytes or invalid Unicode; replaced by U+FFFD")
        return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in value)


def _jsonable(value: Any, clean: _Text) -> Any:
    """A JSON-serialisable copy: dates and datetimes as ISO 8601 text, tuples as lists,
    mapping keys as text, anything else JSON cannot hold (bytes, sets, NaN...) as str.
    """
    budget = [_DATA_BUDGET]
    active: set[int] = set()

    def key(k: Any) -> str:
        if isinstance(k, str):
            return clean(k)
        if k is None:
            return "null"
        if isinstance(k, bool):
            return "true" if k else "false"
        return clean(k.isoformat() if isinstance(k, (date, time)) else str(k))

    def convert(v: Any) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooComplex("frontmatter too large once aliases are expanded")
        if type(v) is str:  # most values: plain text, checked without a call when ASCII
            return v if v.isascii() and "\x00" not in v else clean(v)
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, str):
            return clean(v)
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return float(v) if math.isfinite(v) else str(v)
        if isinstance(v, (datetime, date, time)):
            return v.isoformat()
        if isinstance(v, (dict, list, tuple)):
            if id(v) in active:
                raise _TooComplex("frontmatter refers to itself (recursive alias)")
            active.add(id(v))
            try:
                if isinstance(v, dict):
                    return {key(k): convert(item) for k, item in v.items()}
                return [convert(item) for item in v]
            finally:
                active.discard(id(v))
        return clean(str(v))

    return convert(value)


def _labels(raw: Any, clean: _Text, limit: int | None = None, *, split: bool = False) -> list[str]:
    """Tags or aliases: a list of scalars (each as written) or one scalar (with ``split``,
    one comma-separated scalar gives one item per part); blanks and duplicates dropped,
    order kept; items over ``limit`` UTF-8 bytes dropped, with a warning.
    """
    if raw is None or raw is _NON_SCALAR:
        return []
    if isinstance(raw, list):
        items = raw
    elif split and isinstance(raw, str):
        items = [part.strip() for part in raw.split(",")]
    else:
        items = [raw]
    out = [clean(item) for item in items if isinstance(item, str) and item.strip()]
    if limit is not None:
        kept = [item for item in out if len(item.encode("utf-8")) <= limit]
        if len(kept) < len(out):
            # The frontmatter document keeps them; only the indexed tag list cannot.
            clean.warn(clean.path, f"{len(out) - len(kept)} tags longer than {limit} bytes left out of the tag list")
        out = kept
    return list(dict.fromkeys(out))


def _meta_from_raw(data: dict[str, Any], raw: dict[str, Any], clean: _Text) -> Meta:
    """Build the metadata from the JSON-ready ``data`` and the as-written ``raw`` texts."""

    def scalar(name: str) -> str | None:
        return _scalar(raw.get(name), clean)

    # data carries the as-written text too (version 1.10 stays "1.10", not 1.1).
    for name, value in raw.items():
        if name not in data or name == _NESTED:
            continue
        if isinstance(value, str):
            data[name] = clean(value)
        elif isinstance(value, list) and isinstance(data[name], list) and len(value) == len(data[name]):
            data[name] = [
                clean(item) if isinstance(item, str) else converted
                for item, converted in zip(value, data[name], strict=True)
            ]
    # Skills written for the Agent Skills spec keep version and tags under `metadata:`.
    nested = raw.get(_NESTED) or {}
    tags = raw["tags"] if raw.get("tags") is not None else nested.get("tags")
    return Meta(
        state="ok",
        data=data,
        version=scalar("version") or _scalar(nested.get("version"), clean),
        source=scalar("source") or scalar("upstream"),
        description=scalar("description"),
        tags=_labels(tags, clean, TEXT_LIMITS["tags"], split=True),
        aliases=_labels(raw.get("aliases"), clean),
    )


def _scalar(value: Any, clean: _Text) -> str | None:
    return clean(value) if isinstance(value, str) and value.strip() else None


_RAW_KEYS = ("version", "source", "upstream", "description", "tags", "aliases")
_NESTED = "metadata"  # a mapping whose version and tags count when the top level has none


def _yaml_raw(node: yaml.MappingNode, nested: bool = True) -> dict[str, Any]:
    """The as-written text of the scalar fields, from the composed node tree (and of those
    in a nested ``metadata:`` mapping, under the key ``metadata``).
    """

    def text(item: yaml.Node) -> Any:
        if isinstance(item, yaml.ScalarNode):
            return None if item.tag == _YAML_NULL else item.value
        return _NON_SCALAR

    raw: dict[str, Any] = {}
    for key_node, value_node in node.value:  # later duplicates win, as in the constructed dict
        if nested and isinstance(key_node, yaml.ScalarNode) and key_node.value == _NESTED:
            if isinstance(value_node, yaml.MappingNode):
                raw[_NESTED] = _yaml_raw(value_node, nested=False)
        elif isinstance(key_node, yaml.ScalarNode) and key_node.value in _RAW_KEYS:
            if isinstance(value_node, yaml.SequenceNode):
                raw[key_node.value] = [text(item) for item in value_node.value]
            else:
                raw[key_node.value] = text(value_node)
    return raw


def _parse_yaml(text: str, path: str, warn: Warn) -> Meta:
    loader = _YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
    except Exception as exc:  # any parse failure is a warning, never fatal
        return _recover(text, f"malformed frontmatter: {_yaml_problem(exc)}", path, warn)
    finally:
        loader.dispose()
    if value is None:  # empty frontmatter
        return Meta(state="ok", data={})
    if not isinstance(value, dict) or not isinstance(node, yaml.MappingNode):
        warn(path, f"malformed frontmatter: a {type(value).__name__}, not a mapping")
        return Meta(state="broken")
    clean = _Text(path, warn)
    try:
        data = _jsonable(value, clean)
    except _TooComplex as exc:
        warn(path, f"malformed frontmatter: {exc}")
        return Meta(state="broken")
    return _meta_from_raw(data, _yaml_raw(node), clean)


_TOP_LINE = re.compile(r"^(name|description)[ \t]*:[ \t]*(.*?)[ \t]*$", re.MULTILINE)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _recover(text: str, problem: str, path: str, warn: Warn) -> Meta:
    """What Claude Code still reads from YAML it cannot parse: the top-level ``name:`` and
    ``description:`` lines, each value as the rest of its line (real agent files put an
    unquoted ``: `` inside a description).
    """
    found: dict[str, str] = {}
    for key, value in _TOP_LINE.findall(text):
        value = _unquote(value)
        if value and key not in found:
            found[key] = value
    if not found:
        warn(path, problem)
        return Meta(state="broken")
    warn(path, f"{problem}; {' and '.join(found)} recovered from the top-level lines")
    clean = _Text(path, warn)
    data = {key: clean(value) for key, value in found.items()}
    return Meta(state="ok", data=data, description=data.get("description"))


def _yaml_problem(exc: BaseException) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (frontmatter line {mark.line + 1})" if mark is not None else ""
        return f"{exc.problem}{where}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return f"{type(exc).__name__}: {exc}"


def _read_head(path: str, warn: Warn) -> tuple[bytes, bool] | None:
    """The first FRONTMATTER_READ_LIMIT bytes and whether the file is longer."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(FRONTMATTER_READ_LIMIT + 1)
    except OSError as exc:
        warn(path, f"file not readable: {exc.strerror or exc}")
        return None
    return head[:FRONTMATTER_READ_LIMIT], len(head) > FRONTMATTER_READ_LIMIT


def _decode(head: bytes, truncated: bool, path: str, warn: Warn) -> str | None:
    if b"\x00" in head:
        warn(path, "binary file (holds NUL bytes); metadata not read")
        return None
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
            return head[: exc.start].decode("utf-8-sig")  # the read limit cut a character
        warn(path, f"not UTF-8 text (byte {exc.start}); metadata not read")
        return None


def read_markdown(path: str, warn: Warn) -> Meta:
    """Frontmatter of a markdown file, reading at most FRONTMATTER_READ_LIMIT bytes."""
    read = _read_head(path, warn)
    if read is None:
        return Meta(state="broken")
    return markdown_meta(read[0], read[1], path, warn)


def markdown_meta(head: bytes, truncated: bool, path: str, warn: Warn) -> Meta:
    """Frontmatter from the first FRONTMATTER_READ_LIMIT bytes of a markdown file already
    read (``truncated``: the file is longer).
    """
    text = _decode(head, truncated, path, warn)
    if text is None:
        return Meta(state="broken")
    if not _YAML_HANDLER.detect(text):
        return Meta(state="absent")
    try:
        fm_text, _content = _YAML_HANDLER.split(text)
    except ValueError:
        if truncated:
            warn(path, f"frontmatter does not end within the first {FRONTMATTER_READ_LIMIT // 1024} KiB")
        else:
            warn(path, "malformed frontmatter: no closing '---' line")
        return Meta(state="broken")
    return _parse_yaml(fm_text, path, warn)


class RawFloat(float):
    """A JSON number that remembers how it was written."""

    text: str

    def __new__(cls, text: str) -> RawFloat:  # noqa: D102
        number = super().__new__(cls, text)
        number.text = text
        return number


class RawInt(int):
    """A JSON integer that remembers how it was written."""

    text: str

    def __new__(cls, text: str) -> RawInt:  # noqa: D102
        number = super().__new__(cls, text)
        number.text = text
        return number


def _json_raw(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_scalar(item) for item in value]
    return _json_scalar(value)


def _json_scalar(value: Any) -> Any:
    if isinstance(value, (RawFloat, RawInt)):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float):  # NaN / Infinity literals
        return str(value)
    return _NON_SCALAR


def read_mcp_json(path: str, warn: Warn) -> Meta:
    """An ``mcp.json``: its top-level keys play the role of frontmatter."""
    value = load_json_object(path, warn, "mcp.json")
    if value is None:
        return Meta(state="broken")
    clean = _Text(path, warn)
    data = _jsonable(value, clean)
    raw = {k: _json_raw(value[k]) for k in _RAW_KEYS if k in value}
    return _meta_from_raw(data, raw, clean)


# --------------------------------------------------------------------------- TOML files


def _regular_file(path: str, limit: int, warn: Warn) -> bool:
    """Whether ``path`` is a regular file of at most ``limit`` bytes (warned otherwise)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        warn(path, "not a regular file; not read")
        return False
    if st.st_size > limit:
        warn(path, f"larger than {limit // 1024} KiB; not read")
        return False
    return True


def load_toml(path: str, warn: Warn) -> dict[str, Any] | None:
    """A TOML document, or None when unusable (warned). ``path`` exists (the walk saw it)."""
    try:
        if not _regular_file(path, TOML_LIMIT, warn):
            return None
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        warn(path, f"malformed TOML: {exc}")
    except UnicodeDecodeError:
        warn(path, "malformed TOML: not UTF-8 text")
    except OSError as exc:
        warn(path, f"file not readable: {exc.strerror or exc}")
    return None


def load_json_object(path: str, warn: Warn, what: str) -> dict[str, Any] | None:
    """A JSON object of at most FRONTMATTER_READ_LIMIT bytes (numbers keep their text as
    :class:`RawFloat` / :class:`RawInt`), or None when unusable (warned, naming ``what``).
    """
    try:
        if not _regular_file(path, FRONTMATTER_READ_LIMIT, warn):
            return None
        with open(path, "rb") as handle:
            head = handle.read(FRONTMATTER_READ_LIMIT)
    except OSError as exc:
        warn(path, f"file not readable: {exc.strerror or exc}")
        return None
    text = _decode(head, False, path, warn)
    if text is None:
        return None
    try:
        value = json.loads(text, parse_float=RawFloat, parse_int=RawInt)
    except (ValueError, RecursionError) as exc:
        warn(path, f"malformed JSON: {'nested too deeply' if isinstance(exc, RecursionError) else exc}")
        return None
    if not isinstance(value, dict):
        warn(path, f"malformed {what}: a JSON {type(value).__name__}, not an object")
        return None
    return value


def clean_document(value: Any, path: str, warn: Warn) -> Any:
    """``value`` made JSON-ready and storable (see :func:`_jsonable`)."""
    return _jsonable(value, _Text(path, warn))
