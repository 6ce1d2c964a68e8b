"""Keys that only need comparing (Open311 api keys, verifier keys, command-centre keys): kept as
SHA-256 digests, and a presented key is compared in constant time against every one of them, so
neither the keys nor the timing of a refusal tell anything."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping


def sha256_hex(value: str) -> str:
    """SHA-256 hex of a secret or an identifier that must not be kept in clear."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class KeyDigests:
    """Names (a verifier, a desk, a client) by the SHA-256 digest of their key."""

    def __init__(self, digests: Mapping[str, str]) -> None:
        """``digests``: name → hex SHA-256 of the name's key."""
        self._digests = [(name, bytes.fromhex(hexdigest)) for name, hexdigest in digests.items()]

    @classmethod
    def of_keys(cls, keys: Mapping[str, str]) -> KeyDigests:
        """From keys in clear (name → key); empty keys open nothing."""
        return cls({name: sha256_hex(key) for name, key in keys.items() if key})

    @classmethod
    def named_by_digest(cls, keys: Iterable[str]) -> KeyDigests:
        """From keys in clear that have no name: each is known by its own digest."""
        return cls({sha256_hex(key): sha256_hex(key) for key in keys if key})

    def __len__(self) -> int:
        return len(self._digests)

    def find(self, presented: str | None) -> str | None:
        """The name whose key is ``presented``, else None."""
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found: str | None = None
        for name, expected in self._digests:  # no early exit: timing does not tell which
            if hmac.compare_digest(digest, expected):
                found = name
        return found
