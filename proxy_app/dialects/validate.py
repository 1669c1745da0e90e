"""Request-validation primitives shared by the client dialect codecs (openai, ollama, gemini).

Each `as_*` check takes one decoded JSON value and the field path that names it, and returns the
value typed or raises errors.InvalidRequest with `param` set to that path and a message quoting
it ("'messages[2].content' must be a string"). `optional` applies a check to body[key] unless the
key is absent or null. What a dialect words or reads its own way (Ollama's "model is required",
proto3 integers in the gemini dialect) stays in that codec, built on these.
Pure functions, no Django and no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from proxy_app.core import errors

INT32 = (-(2**31), 2**31 - 1)  # Gemini's seed is an int32
# Every integer field is at most a signed 64-bit integer (what upstreams and our encoder take): a
# larger one (from a float such as 1e30 or a long digit string) is a 400 naming the field.
INT64 = (-(2**63), 2**63 - 1)
# The deepest nesting a request body may have. orjson parses 1024 levels but encodes only 255, and
# translating a body wraps its parts in a few levels more: past this the field is named in a 400.
MAX_DEPTH = 200
# Embedding sizes (OpenAI `dimensions`, Gemini `outputDimensionality`): real models return at most a
# few thousand; anything past this bound is a mistake (or an attack on the upstream), answered 400.
EMBED_DIMENSIONS = (1, 65_536)
# Gemini's rule for function names (mapping.md §3, gemini.md §3.1); OpenAI's own rule is a subset.
FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")


def fail(param: str | None, message: str) -> NoReturn:
    raise errors.InvalidRequest(message, param=param)


def typed(value: Any, param: str, kind: type | tuple[type, ...], noun: str) -> Any:
    if not isinstance(value, kind):
        fail(param, f"'{param}' must be {noun}")
    return value


def as_object(value: Any, param: str) -> dict[str, Any]:
    return typed(value, param, dict, "an object")


def as_list(value: Any, param: str) -> list[Any]:
    return typed(value, param, list, "an array")


def as_bool(value: Any, param: str) -> bool:
    return typed(value, param, bool, "a boolean")


def as_string(value: Any, param: str, *, nonempty: bool = False) -> str:
    typed(value, param, str, "a string")
    if nonempty and not value:
        fail(param, f"'{param}' must not be empty")
    return value


def as_int(value: Any, param: str, lo: int | None = None, hi: int | None = None, *, echo: bool = True) -> int:
    """A JSON integer within [lo, hi]; `echo` adds the value to a range error (see check_range)."""
    # bool is an int subclass: `true` must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int):
        fail(param, f"'{param}' must be an integer")
    check_range(value, param, lo, hi, echo=echo)  # a field's own bounds say more than the 64-bit one
    if not INT64[0] <= value <= INT64[1]:
        fail(param, f"'{param}' is out of range (a 64-bit integer at most)")
    return value


def check_depth(body: Any, limit: int = MAX_DEPTH) -> None:
    """400 naming the first value nested deeper than `limit` levels (iterative: no recursion limit)."""
    stack: list[tuple[Any, int, tuple]] = [(body, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            items: Iterable = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth > limit:
            shown = path_name(path[:8]) + ("..." if len(path) > 8 else "")
            fail(shown or None, f"'{shown or 'body'}' is nested deeper than {limit} levels")
        stack.extend((item, depth + 1, (*path, key)) for key, item in items)


def checked_depth(raw: bytes, body: Any) -> Any:
    """`body` (parsed from `raw`) once no value in it is nested past MAX_DEPTH. Only a body with more
    brackets than that can be (counting bytes is C-fast; the walk is not), so most skip the walk."""
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        check_depth(body)
    return body


def path_name(path: tuple) -> str:
    """('tools', 0, 'function') -> 'tools[0].function'."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def as_number(value: Any, param: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(param, f"'{param}' must be a number")
    if isinstance(value, float) and not math.isfinite(value):  # math.isfinite(huge int) overflows
        fail(param, f"'{param}' must be a finite number")
    check_range(value, param, lo, hi)
    return float(value)


def check_range(value: float, param: str, lo: float | None, hi: float | None, *, echo: bool = True) -> None:
    """ "'p' must be between lo and hi" (or "at least lo"), then ", got <value>" when `echo`."""
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        fail(param, f"'{param}' must be {bounds}" + (f", got {value}" if echo else ""))


def one_of(value: Any, param: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        fail(param, f"'{param}' must be one of {', '.join(allowed)}")
    return value


def optional(body: dict[str, Any], key: str, check: Callable[..., Any], *args: Any, at: str = "", **kw: Any) -> Any:
    """check(body[key], path, *args, **kw) unless absent or null (clients send explicit nulls);
    `at` is the path of `body` itself, so the field is named `at.key`."""
    value = body.get(key)
    return None if value is None else check(value, f"{at}.{key}" if at else key, *args, **kw)


def request_body(body: object) -> dict[str, Any]:
    """The decoded request body, which must be a JSON object (param None: no field to name)."""
    if not isinstance(body, dict):
        fail(None, "request body must be a JSON object")
    return body


def as_function_name(value: Any, param: str) -> str:
    """A declared function name: a non-empty string that Gemini accepts (FUNCTION_NAME)."""
    name = as_string(value, param, nonempty=True)
    if not FUNCTION_NAME.fullmatch(name):
        fail(param, "function names may use only a-z, A-Z, 0-9, _ . : - and at most 64 characters")
    return name
