"""Reading and writing config files (TOML or YAML, by extension) and finding the line of an entry.

tomllib and yaml.safe_load give plain data without positions, so errors found later (an unknown
upstream, a bad price) need another way to name a line: `Lines`, an index from a path such as
("models", 3, "upstream") to the 1-based line it is written on. For TOML it is built by scanning
the text for array-of-tables headers (`[[models]]`), table headers (`[settings]`) and `key =`
lines, which covers the layout export_config writes and people write by hand; for YAML it comes
from PyYAML's composed node tree, which keeps every node's position. A path that cannot be found
(an inline table, say) falls back to its nearest known parent.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
import yaml

FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}
_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


class ConfigFileError(Exception):
    """A file that cannot be read or parsed; the message names the file and, when known, the line."""


class Lines:
    """Path (section, index, key) -> line number; `where(path)` for messages ("file.toml:12")."""

    def __init__(self, name: str, lines: dict[tuple, int]) -> None:
        self.name = name
        self.lines = lines

    def line(self, *path) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def where(self, *path) -> str:
        line = self.line(*path)
        return f"{self.name}:{line}" if line else self.name


def format_of(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigFileError(f"{path}: unknown file type {suffix or '(none)'!r}; use .toml, .yaml or .yml")
    return FORMATS[suffix]


def load(path: str | Path) -> tuple[dict[str, Any], Lines]:
    """The file's data (a dict) and its line index; ConfigFileError for unreadable or bad syntax."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{name}: cannot read the file ({exc})") from None
    return parse(text, name, format_of(path))


def parse(text: str, name: str, fmt: str) -> tuple[dict[str, Any], Lines]:
    if fmt == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # its message ends "(at line N, column M)"
            raise ConfigFileError(f"{name}: not valid TOML: {exc}") from None
        return data, Lines(name, _toml_lines(text))
    try:
        data = yaml.safe_load(text)
        lines = _yaml_lines(yaml.compose(text)) if data is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigFileError(f"{name}{at}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{name}:1: the file must be a mapping of sections (upstreams, models, ...)")
    return data, Lines(name, lines)


def _toml_lines(text: str) -> dict[tuple, int]:
    lines: dict[tuple, int] = {}
    counts: dict[str, int] = {}
    current: tuple = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        if match := _ARRAY_HEADER.match(raw):
            section = match.group(1)
            index = counts.get(section, 0)
            counts[section] = index + 1
            current = (section, index)
            lines.setdefault((section,), number)
            lines[current] = number
        elif match := _TABLE_HEADER.match(raw):
            current = (match.group(1),)
            lines[current] = number
        elif match := _KEY.match(raw):
            lines.setdefault((*current, match.group(1)), number)
    return lines


def _yaml_lines(node, path: tuple = ()) -> dict[tuple, int]:
    lines = {path: node.start_mark.line + 1} if path else {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines[child] = key.start_mark.line + 1
            lines.update({p: n for p, n in _yaml_lines(value, child).items() if p != child})
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_yaml_lines(item, (*path, index)))
    return lines


def dump(data: dict[str, Any], fmt: str) -> str:
    """The text of `data` in `fmt`, with a header comment; stable (export → apply → export is equal)."""
    header = "# Gateway configuration, written by `manage.py export_config` (no secrets).\n"
    if fmt == "toml":
        return header + _toml(data)
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _toml(data: dict[str, Any]) -> str:
    """Each entry as its own `[[section]]` table (tomli_w alone inlines short arrays of tables, which
    read worse and have no line per field for error messages)."""
    parts = []
    for section, value in data.items():
        entries = [value] if isinstance(value, dict) else value
        header = f"[{section}]" if isinstance(value, dict) else f"[[{section}]]"
        parts += [f"\n{header}\n{tomli_w.dumps(entry)}" for entry in entries]
    return "".join(parts)
