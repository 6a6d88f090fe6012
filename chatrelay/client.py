"""The client SDK (async): what owners and members run. Everything a relay sends is
checked here again: link data against the link, profiles against the root key and owner
chain, posts against the profile's owners.

One module to import; the parts live by role: `connection` (a relay's gateway, the
retry policy), `owner` (groups and channels one owns), `invite_codes`, `reader` (joining, posting,
reading).
"""

from chatrelay.connection import (
    RelayClient, RelayInfo, call_retrying, one_member, relay_info, resolve_link, target_of, target_of_link,
)
from chatrelay.owner import (
    PendingJoin, Published, add_relay, create_group, decide, delete_group, owner_command, parse_request_id,
    pending, register, remove_member, remove_relay, resume, service_log, set_profile, suspend,
)
from chatrelay.invite_codes import find_invite, list_invites, make_invite, revoke_invite
from chatrelay.state import Membership, OwnedGroup, RelayEntry
from chatrelay.checker import Moderated, PostChecker, ProfileChange, ReceivedPost, credential, reader_key
from chatrelay.joining import join
from chatrelay.reader import follow, post, read_all

__all__ = [
    "Membership", "Moderated", "OwnedGroup", "PendingJoin", "Published", "RelayEntry", "PostChecker", "ProfileChange", "ReceivedPost", "RelayClient", "RelayInfo", "add_relay", "call_retrying",
    "create_group", "credential", "decide", "delete_group", "find_invite", "follow", "join", "list_invites",
    "make_invite", "one_member", "owner_command", "revoke_invite",
    "parse_request_id", "pending", "post", "read_all", "reader_key", "register", "relay_info", "remove_member", "remove_relay",
    "resolve_link", "resume", "service_log", "set_profile", "suspend", "target_of", "target_of_link",
]
