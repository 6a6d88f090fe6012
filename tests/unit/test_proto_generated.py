"""The checked-in generated code must be what scripts/gen_proto.py makes now."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _gen_module():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path):
    gen = _gen_module()
    written = gen.generate(tmp_path)
    assert written, "no .proto sources found"
    stale = [
        str(rel) for rel in written
        if not (ROOT / rel).exists() or (ROOT / rel).read_bytes() != (tmp_path / rel).read_bytes()
    ]
    assert stale == [], f"regenerate with `python scripts/gen_proto.py`: {stale}"


def test_every_service_rpc_is_in_the_contract():
    from chatrelay.v1 import relay_pb2

    relay = relay_pb2.DESCRIPTOR.services_by_name["RelayService"]
    assert {m.name for m in relay.methods} == {
        "StoreLink", "ResolveLink", "RegisterGroup", "OwnerCommand", "ReadServiceLog",
        "ListPending", "Join", "Post", "Subscribe", "History", "SendDirectInvitation",
        "MemberKeys", "DirectInbox", "Moderate", "ListMembers", "Report", "ListReports", "ListInvites", "Leave",
        "CreateQueue", "RequestConnection", "ReadQueue", "SendQueue",
    }
    admin = relay_pb2.DESCRIPTOR.services_by_name["AdminService"]
    assert {m.name for m in admin.methods} == {"Status", "Top", "MoveGroup", "TakeDown", "Restore"}
