"""GET /openapi.json: the gateway's OpenAPI 3.1 description (the maintained openapi.yaml beside this file), no key.

The YAML is read once per process and served as JSON. tests/test_openapi.py keeps it true: every
route in the URL conf is documented, every documented path and method is served, and the
document validates as OpenAPI 3.1.
"""

from __future__ import annotations

import functools
from pathlib import Path

import orjson
import yaml
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

SPEC_FILE = Path(__file__).with_name("openapi.yaml")


@functools.cache
def document() -> dict:
    return yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))


@functools.cache
def _body() -> bytes:
    return orjson.dumps(document())


@require_safe
def openapi_json(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_body(), content_type="application/json")
