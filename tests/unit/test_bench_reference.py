"""bench/reference.py's bare server takes calls waiting for its loop as the gateway does:
the same gRPC bounds (spelled there apart, so that it does not import the relay)."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
import reference  # noqa: E402

from chatrelay.cluster import server  # noqa: E402


def test_the_bare_server_waits_for_calls_as_the_gateway_does():
    assert reference.QUEUE_OPTIONS == server.QUEUE_OPTIONS

