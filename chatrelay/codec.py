"""Bounded parsing of protobuf bodies and base64url text.

Every parse checks the size first and turns any decoding failure into a ChatRelayError,
so no input, however random, escapes as another exception.
"""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from chatrelay.errors import MalformedError, TooLargeError

M = TypeVar("M", bound=Message)


def parse(cls: type[M], data: bytes, what: str, limit: int) -> M:
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedError(what, "expected bytes")
    if len(data) > limit:
        raise TooLargeError(what, len(data), limit)
    msg = cls()
    try:
        msg.ParseFromString(bytes(data))
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise MalformedError(what, str(exc) or type(exc).__name__) from None
    return msg


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def unb64url(text: str, what: str) -> bytes:
    """Decode unpadded base64url, accepting only the canonical form (what b64url makes)."""
    if not text or any(ch not in _B64URL_CHARS for ch in text) or len(text) % 4 == 1:
        raise MalformedError(what, "not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedError(what, "not base64url") from None
    if b64url(data) != text:
        raise MalformedError(what, "not canonical base64url")
    return data
