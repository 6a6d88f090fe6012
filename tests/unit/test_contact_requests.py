"""What the owner's client takes as a connection request's id (the joiner's own, so a
request carried by several relays is taken once), and the relays an address reads."""

from __future__ import annotations

import pytest

from chatrelay.contacts import _request_id
from chatrelay.state import Address
from chatrelay.v1 import relay_pb2

RELAYS_ID = bytes(range(16))


@pytest.mark.parametrize("rid, taken", [
    ("ab" * 16, "ab" * 16),
    ("AB" * 16, RELAYS_ID.hex()),  # not the lower-case hex a client writes
    ("ab" * 15, RELAYS_ID.hex()),  # too short
    ("zz" * 16, RELAYS_ID.hex()),
    ("-" + "a" * 31, RELAYS_ID.hex()),  # would read as an option on a command line
    (None, RELAYS_ID.hex()),  # a client from before request ids
])
def test_a_request_is_known_by_the_joiners_id_or_else_the_relays(rid, taken):
    payload = {"queue": "q", "target": "t"} | ({} if rid is None else {"rid": rid})
    assert _request_id(payload, relay_pb2.QueueMessage(request_id=RELAYS_ID)) == taken


def test_an_address_reads_each_relay_from_where_it_left_off():
    address = Address(kind="i", link="", queue="q", target="a:1", owner_seed="", e2e_secret="", display_name="",
                      others={"b:2": 0})
    address.mark_read("b:2", 7)
    address.mark_read("a:1", 3)
    address.mark_read("b:2", 5)  # an older message read again moves nothing back
    assert address.targets() == [("a:1", 3), ("b:2", 7)]
    assert not address.used_up()
    address.handled["x"] = "rejected"
    assert not address.used_up()
    address.handled["y"] = "accepted"
    assert address.used_up()
    address.kind = "a"  # a contact address is never used up
    assert not address.used_up()


@pytest.mark.parametrize("target, ok", [
    ("127.0.0.1:7223", True), ("relay.example:443", True), ("ipv4:127.0.0.1:1,127.0.0.1:2", True),
    ("x", False), ("relay.example:99999", False), (":7223", False), ("ipv4:1.2.3.4:5,bad", False),
    (5, False), (None, False), ("a" * 300 + ":1", False), ("zz@127.0.0.1:1", False),
])
def test_a_target_another_party_names_is_checked_before_it_is_dialled(target, ok):
    from chatrelay import tls
    from chatrelay.errors import ChatRelayError, Reason

    if ok:
        assert tls.check_target(target, "a request") == target
        return
    with pytest.raises(ChatRelayError) as info:
        tls.check_target(target, "a request")
    assert (info.value.reason, info.value.message) == (
        Reason.MALFORMED, "a request names no relay to reach ([PIN@]HOST:PORT)")
