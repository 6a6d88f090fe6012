"""The state file: written atomically, read back whole; anything else in its place is
refused with one clear error, never a Python traceback (issue 16)."""

from __future__ import annotations

import pytest

from chatrelay import state
from chatrelay.errors import Reason
from chatrelay.state import Address, DirectInvitation, Membership

from helpers import refused


@pytest.mark.parametrize("text, why", [
    ("[1, 2]", "not a JSON object"),
    ('"a string"', "not a JSON object"),
    ("{}", "unknown format None"),
    ('{"format": 99}', "unknown format 99"),
    ('{"format": 1, "owned": 3}', None),
    ("{not json", None),
])
def test_a_file_that_is_no_state_file_is_refused_clearly(tmp_path, text, why):
    path = tmp_path / "state.json"
    path.write_text(text)
    message = refused(Reason.MALFORMED, state.load, path).message
    assert message.startswith(f"state file {path} is not a chatrelay state file: ")
    if why is not None:
        assert message.endswith(why)


def test_invitations_and_waiting_requests_come_back_as_they_were_saved(tmp_path):
    path = tmp_path / "state.json"
    membership = Membership(group_id="ab", kind="group", name="G", link="L", sign_seed="s", box_secret="b",
                            display_name="Ann", profile="p",
                            invitations=[DirectInvitation(id="0123", name="Ben", message="hi", link="L2", member="k")])
    address = Address(kind="a", link="L", queue="q", target="t", owner_seed="o", e2e_secret="e", display_name="Ann",
                      read_seq=4, waiting={"ff": {"name": "Bob", "message": "hello", "payload": {}, "sender_key": "x"}})
    state.save(path, state.State(memberships=[membership], addresses=[address]))
    loaded = state.load(path)
    assert loaded.memberships == [membership] and loaded.addresses == [address]
