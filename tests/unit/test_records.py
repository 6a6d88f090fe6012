"""What the relay keeps: a group's state changes in one function, member status and
link records read back as written, addresses checked one way."""

from __future__ import annotations

import pytest

from chatrelay.actors import records
from chatrelay.actors.records import Change, GroupRecord, GroupState, LinkRecord, MemberRecord, MemberStatus, transition
from chatrelay.errors import Reason

from helpers import refused

ALL = list(GroupState)


@pytest.mark.parametrize("state", ALL)
def test_a_profile_naming_this_relay_activates_only_a_pending_group(state):
    assert transition(state, Change.ACTIVATE) is (GroupState.ACTIVE if state is GroupState.PENDING else state)
    assert transition(state, Change.PROFILE) is state
    assert transition(state, Change.REMOVE) is GroupState.REMOVED


@pytest.mark.parametrize("state", [GroupState.ACTIVE, GroupState.SUSPENDED])
def test_suspend_and_resume_move_between_active_and_suspended(state):
    assert transition(state, Change.SUSPEND) is GroupState.SUSPENDED
    assert transition(state, Change.RESUME) is GroupState.ACTIVE


@pytest.mark.parametrize("state", [GroupState.PENDING, GroupState.REMOVED])
@pytest.mark.parametrize("change", [Change.SUSPEND, Change.RESUME])
def test_suspend_and_resume_are_refused_elsewhere(state, change):
    err = refused(Reason.NOT_ACTIVE, transition, state, change)
    assert err.message == f"group is {state.value} here"


def test_member_status_is_an_enum_on_the_way_back():
    record = MemberRecord(box_key=b"k" * 32, display_name="m", status=MemberStatus.PENDING, joined_ms=1)
    again = MemberRecord.loads(record.dumps())
    assert again == record and again.status is MemberStatus.PENDING


def test_member_records_keep_their_stored_form():
    # Rows written before dumps was spelled out are read by the same loads: the bytes match.
    record = MemberRecord(box_key=b"\x01" * 4, display_name="Ann \u00e9", status=MemberStatus.REJECTED, joined_ms=7,
                          request_id=b"r", join=b"j", note="no")
    assert record.dumps() == (
        b'{"approval": "", "box_key": "AQEBAQ==", "display_name": "Ann \\u00e9", "join": "ag==", "joined_ms": 7, '
        b'"note": "no", "request_id": "cg==", "status": "rejected"}')
    assert MemberRecord.loads(record.dumps()) == record


def test_group_records_keep_their_stored_form():
    down = GroupRecord(group_id=b"g", address="addr-x", state=GroupState.ACTIVE, registration_key=b"k", profile=b"p",
                       taken_down="spam")
    assert down.dumps() == (b'{"address": "addr-x", "group_id": "Zw==", "profile": "cA==", "registration_key": "aw==", '
                            b'"state": "active", "taken_down": "spam"}')
    up = GroupRecord(group_id=b"g", address="addr-x", state=GroupState.PENDING, registration_key=b"k", profile=b"p")
    assert b"taken_down" not in up.dumps()  # only while taken down
    assert [GroupRecord.loads(r.dumps()) for r in (down, up)] == [down, up]


def test_link_records_read_back_and_refuse_garbage():
    record = LinkRecord(owner=b"o" * 32, data=b"ciphertext")
    assert LinkRecord.loads(record.dumps()) == record
    err = refused(Reason.MALFORMED, LinkRecord.loads, b'{"owner": "!!", "data": "AA"}')
    assert err.message == "stored link owner is malformed: not base64url"


@pytest.mark.parametrize("address", ["", "a" * 65, None, 7])
def test_addresses_the_relay_cannot_have_made_are_unknown(address):
    err = refused(Reason.UNKNOWN_ADDRESS, records.check_address, address, "queue")
    assert err.message == "no queue at this address"
    assert records.check_address("a" * 64) == "a" * 64


def test_new_group_addresses_never_start_with_a_dash():
    """An address starting with "-" reads as an option on the command line."""
    from chatrelay.actors.registration import new_address

    addresses = [new_address() for _ in range(5000)]  # about 78 would start with "-" by chance
    assert not [a for a in addresses if a.startswith("-")]
    assert len(set(addresses)) == 5000 and {len(a) for a in addresses} == {22}
