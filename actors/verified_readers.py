"""Reader credentials a shard has verified, so that a stream opened again with the same
credential (a client reconnecting, every subscriber of a channel after a gateway
restarts) costs a lookup, not a second signature check.

A reader's credential is no one-time token: it is good for any read of its group while
its time is within the skew, and the relay keeps no record of its use. So the same bytes
verify the same way every time, and remembering the outcome changes nothing a caller can
observe: what is cached is the signer of exactly those bytes, for exactly that group
address, once that reader was let in, and everything that can change (the credential's
age, the reader's membership, the group's state) is checked again on every use. Pure:
two bounded dicts."""

from __future__ import annotations

import hashlib

from chatrelay.v1 import core_pb2

KEPT = 200_000  # credentials a shard remembers at most, about 270 bytes each (the oldest half go first)


class VerifiedReaders:
    """Signers of credentials verified for a group address, by the credential's bytes."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        # digest -> (signer, the body's timestamp), in two generations of at most half of
        # `kept` each: once the new one is full, the old one is let go and the new one ages.
        self.new: dict[bytes, tuple[bytes, int]] = {}
        self.old: dict[bytes, tuple[bytes, int]] = {}
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.new) + len(self.old)

    @staticmethod
    def key(address: str, credential: core_pb2.SignedEnvelope) -> bytes:
        """The address and every byte of the credential, hashed: two credentials share a
        key only if they are the same bytes for the same address."""
        named = address.encode()
        digest = hashlib.blake2b(len(named).to_bytes(4, "big") + named, digest_size=32)
        digest.update(credential.SerializeToString(deterministic=True))
        return digest.digest()

    def get(self, key: bytes) -> tuple[bytes, int] | None:
        """(signer, timestamp) of the credential with this key, if verified before."""
        found = self.new.get(key) or self.old.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: bytes, signer: bytes, timestamp: int) -> None:
        """A credential verified for its address (its time within the skew then)."""
        if len(self.new) >= max(1, self.kept // 2):
            self.old, self.new = self.new, {}
        self.new[key] = (signer, timestamp)
