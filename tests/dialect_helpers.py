"""Helpers the dialect codec tests share (tests/test_dialect_*.py): sample media, 400 checks, parts."""

from __future__ import annotations

import base64

import pytest

from proxy_app.core import errors, hub

# The first bytes of each format, which is all the codecs sniff.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 8
GIF = b"GIF89a" + b"\x00" * 8
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 4
PDF = b"%PDF-1.7\n"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def rejected(parse, body) -> errors.InvalidRequest:
    """parse(body) must fail with a 400; the error, for its param and message."""
    with pytest.raises(errors.InvalidRequest) as info:
        parse(body)
    assert info.value.status == 400
    return info.value


def text(t: str) -> hub.Part:
    return hub.Part("text", text=t)
