"""Where a prompt falls on the split line: one salted hash shared by generation and the pair dataset.

A prompt's *split position* is a number in [0, 1) drawn from a salted hash of its
normalized-text hash. The pair dataset cuts that line into train / val / test
intervals (``judging.pairs.split_for``); candidate generation rotates aspect ratios over
prompts in position order, so every interval — whatever the fractions — receives every
ratio about equally often.
"""

from __future__ import annotations

import hashlib

HASH_SPACE = 2**32
DEFAULT_SPLIT_SALT = "aesthetic-split-v1"


def split_position(prompt_hash: str, salt: str = DEFAULT_SPLIT_SALT) -> float:
    """The prompt's place in [0, 1) on the split line of ``salt``."""
    digest = hashlib.sha256(f"{salt}:{prompt_hash}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / HASH_SPACE
