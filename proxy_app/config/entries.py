"""The config file's sections and fields, checked entry by entry with the file line of each mistake.

A file is a mapping of sections: `[settings]` (a table) and the arrays of tables `[[upstreams]]`,
`[[models]]`, `[[prices]]`, `[[users]]`, `[[keys]]`, `[[limits]]`. `Entry` wraps one table with
its position, so every error says "file.toml:12: models[3] (alias 'gpt-4o'): ...". Types are
checked here; whether names refer to something real is the applier's business.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from proxy_app.config.fileformat import Lines

SECTIONS = ("settings", "upstreams", "users", "models", "prices", "keys", "limits")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Fields that would put a secret in the file: refused with a pointer to api_key_env.
SECRET_FIELDS = {"api_key", "apikey", "key_secret", "secret", "token", "password", "api_key_encrypted"}


class ConfigError(Exception):
    """A mistake in the file; the message names the file and line."""


class Entry:
    """One table of a section, e.g. models[2], with typed getters that raise ConfigError naming the line."""

    def __init__(self, lines: Lines, section: str, index: int | None, data: Any, label_field: str = "") -> None:
        self.lines, self.section, self.index = lines, section, index
        self.path = (section,) if index is None else (section, index)
        if not isinstance(data, dict):
            raise ConfigError(f"{lines.where(*self.path)}: {self.name}: must be a table of fields")
        self.data = data
        self.label = f" ({label_field} {data[label_field]!r})" if isinstance(data.get(label_field), str) else ""

    @property
    def name(self) -> str:
        return self.section if self.index is None else f"{self.section}[{self.index + 1}]"

    def error(self, message: str, field: str | None = None) -> ConfigError:
        where = self.lines.where(*self.path, field) if field else self.lines.where(*self.path)
        return ConfigError(f"{where}: {self.name}{self.label}: {message}")

    def check_fields(self, allowed: set[str]) -> None:
        for field in self.data:
            if field.lower() in SECRET_FIELDS:
                raise self.error(
                    f"{field!r}: secrets never go in the config file; put the key in an environment variable "
                    'and name it with api_key_env = "VARIABLE"'
                    if self.section == "upstreams"
                    else f"{field!r}: secrets never go in the config file",
                    field,
                )
            if field not in allowed:
                raise self.error(f"unknown field {field!r} (expected one of: {', '.join(sorted(allowed))})", field)

    def has(self, field: str) -> bool:
        return field in self.data

    def text(self, field: str, default: str | None = None, *, required: bool = False) -> str | None:
        if field not in self.data:
            if required:
                raise self.error(f"{field!r} is required")
            return default
        value = self.data[field]
        if not isinstance(value, str):
            raise self.error(f"{field!r} must be a string (got {value!r})", field)
        if required and not value.strip():
            raise self.error(f"{field!r} must not be empty", field)
        return value

    def flag(self, field: str, default: bool | None = None) -> bool | None:
        value = self.data.get(field, default)
        if value is not None and not isinstance(value, bool):
            raise self.error(f"{field!r} must be true or false (got {value!r})", field)
        return value

    def count(self, field: str, *, minimum: int = 1) -> int | None:
        value = self.data.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(f"{field!r} must be a whole number of at least {minimum} (got {value!r})", field)
        return value

    def amount(self, field: str, *, positive: bool = False, default: Decimal | None = None) -> Decimal | None:
        """A USD amount: a number or a numeric string, at most 4 decimals, not negative (or > 0)."""
        value = self.data.get(field)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.error(f"{field!r} must be a number (got {value!r})", field)
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise self.error(f"{field!r} must be a number (got {value!r})", field) from None
        bad = not amount.is_finite() or amount < 0 or (positive and amount == 0)
        if bad or amount != amount.quantize(Decimal("0.0001")):
            need = "more than 0" if positive else "0 or more"
            raise self.error(f"{field!r} must be {need} with at most 4 decimals (got {value!r})", field)
        return amount.quantize(Decimal("0.0001"))

    def names(self, field: str) -> list[str] | None:
        value = self.data.get(field)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(f"{field!r} must be a list of names (got {value!r})", field)
        return [v.strip() for v in value]

    def moment(self, field: str) -> datetime | None:
        """A date-time with an offset (TOML 2026-12-31T00:00:00Z); a bare date means its midnight UTC."""
        value = self.data.get(field)
        if value is None:
            return None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise self.error(f"{field!r} needs a UTC offset, e.g. 2026-12-31T00:00:00Z", field)
            return value.astimezone(UTC)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        raise self.error(f"{field!r} must be a date-time such as 2026-12-31T00:00:00Z (got {value!r})", field)

    def env_name(self, field: str) -> str | None:
        value = self.text(field)
        if value and not ENV_NAME.match(value):
            raise self.error(f"{field!r} must be an environment variable name such as GEMINI_API_KEY", field)
        return value


def sections(data: dict[str, Any], lines: Lines) -> dict[str, list[Entry]]:
    """The file's entries per section; unknown sections and wrong shapes are errors."""
    labels = {"upstreams": "name", "users": "username", "models": "alias", "prices": "model", "keys": "name"}
    found: dict[str, list[Entry]] = {name: [] for name in SECTIONS}
    for name, value in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"{lines.where(name)}: unknown section {name!r} (expected: {', '.join(SECTIONS)})")
        if name == "settings":
            found[name] = [Entry(lines, name, None, value)]
            continue
        if not isinstance(value, list):
            raise ConfigError(f"{lines.where(name)}: {name!r} must be an array of tables ([[{name}]] entries)")
        found[name] = [Entry(lines, name, i, item, labels.get(name, "")) for i, item in enumerate(value)]
    return found
