"""The `chatrelay` command line. Errors print one line to stderr and exit 2.

Commands by role: `operate` (a relay), `groups` (groups and channels), `owners` (a
group's owners), `invites` (invite codes), `relays` (a group's relays and one's own),
`moderate` (members, roles, moderation, reports), `connections` (1:1 connections); `base`
holds what they share.
"""

from chatrelay.cli import connections, groups, invites, moderate, operate, owners, relays  # noqa: F401  (they add their commands to main)
from chatrelay.cli.base import main
from chatrelay.cli.groups import parse_duration
from chatrelay.cli.operate import up

__all__ = ["main", "parse_duration", "up"]
