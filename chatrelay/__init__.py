"""chatrelay: a relay cluster for large public channels and groups.

This package is the pure protocol core (keys, signed envelopes, profiles, links, invite
codes), the client and the CLI; the Ray actors and the cluster shell are installed as
`chatrelay.actors` and `chatrelay.cluster`.
"""

from chatrelay.errors import ChatRelayError, MalformedError, Reason, TooLargeError
from chatrelay.links import LinkKind, ShortLink

__all__ = [
    "ChatRelayError",
    "LinkKind",
    "MalformedError",
    "Reason",
    "ShortLink",
    "TooLargeError",
]

__version__ = "0.1.0"
