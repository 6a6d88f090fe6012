"""Builders shared by the unit tests."""

from __future__ import annotations

import pytest

from chatrelay.errors import ChatRelayError, Reason


def refused(reason: Reason, fn, *args, **kwargs) -> ChatRelayError:
    """Call fn and check it is refused with exactly `reason`; returns the error."""
    with pytest.raises(ChatRelayError) as info:
        fn(*args, **kwargs)
    assert info.value.reason is reason, f"expected {reason}, got {info.value.reason}: {info.value}"
    return info.value
