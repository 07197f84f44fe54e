"""Deterministic random draws keyed by the secret seed and the place in the sequence.

Every draw the allocation schemes make comes from a `Draws` stream: HMAC-SHA256 keyed by the
secret seed, over the study, stratum and sequence position (and what the draw is for), expanded
in counter mode. The same seed and the same order of enrollment therefore give the same
allocations, while without the seed the stream is as unpredictable as HMAC-SHA256 itself.
Python's `random` is deliberately not used: a Mersenne Twister's state can be reconstructed from
its outputs, so past allocations would betray future ones.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import MutableSequence, Sequence
from typing import TypeVar

T = TypeVar("T")

_VERSION = b"flourish-allocation-draws-v1"
_WORD = 8  # bytes per integer draw
_SPACE = 1 << (8 * _WORD)


class Draws:
    """A stream of uniform draws for one place in the allocation sequence.

    `context` names that place, e.g. `("allocation", "my-study", "age_band=under_35", "block", 12)`;
    parts are length-framed, so no two different contexts run together into the same key.
    """

    def __init__(self, seed: str, *context: str | int) -> None:
        if not seed:
            raise ValueError("an allocation seed must not be empty")
        message = bytearray(_VERSION)
        for part in context:
            data = str(part).encode("utf-8")
            message += len(data).to_bytes(4, "big") + data
        self._key = hmac.new(seed.encode("utf-8"), bytes(message), hashlib.sha256).digest()
        self._counter = 0
        self._buffer = b""

    def _take(self, count: int) -> bytes:
        while len(self._buffer) < count:
            block = hmac.new(self._key, self._counter.to_bytes(8, "big"), hashlib.sha256).digest()
            self._buffer += block
            self._counter += 1
        taken, self._buffer = self._buffer[:count], self._buffer[count:]
        return taken

    def below(self, n: int) -> int:
        """A whole number in [0, n), exactly uniform (rejection sampling, no modulo bias)."""
        if n <= 0:
            raise ValueError(f"cannot draw below {n}")
        limit = _SPACE - _SPACE % n
        while True:
            value = int.from_bytes(self._take(_WORD), "big")
            if value < limit:
                return value % n

    def random(self) -> float:
        """A number in [0, 1) with 53 random bits, like `random.random()`."""
        return (int.from_bytes(self._take(_WORD), "big") >> 11) / (1 << 53)

    def weighted(self, items: Sequence[T], weights: Sequence[int]) -> T:
        """One of `items`, chosen with probability proportional to its whole-number weight."""
        if len(items) != len(weights) or not items:
            raise ValueError("weighted choice needs as many positive weights as items")
        point = self.below(sum(weights))
        for item, weight in zip(items, weights, strict=True):
            if point < weight:
                return item
            point -= weight
        raise AssertionError("unreachable: the point lies below the total weight")

    def shuffle(self, items: MutableSequence[T]) -> None:
        """Shuffle `items` in place (Fisher-Yates), every order equally likely."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
