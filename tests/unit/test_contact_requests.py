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
