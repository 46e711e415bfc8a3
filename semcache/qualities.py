"""WordNet's adjective and adverb groups (``semcache/wordnet_qualities.txt``, written by
``scripts/extract_qualities.py``): which quality words can stand for each other.

Two adjectives share a group when one sense of each has the same head ("rich" / "wealthy", "neat" /
"tidy"); an adverb joins its adjective's groups ("quickly" / "fast"). Words of different groups name
different qualities ("neat" / "messy", "spacious" / "cramped", "deep" / "high").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

WORDNET_QUALITIES = Path(__file__).with_name("wordnet_qualities.txt")


@functools.cache
def _table() -> tuple[dict[str, frozenset[int]], dict[str, tuple[str, ...]]]:
    """(word → its groups, irregular form → its base words), read once."""
    groups: dict[str, frozenset[int]] = {}
    irregular: dict[str, tuple[str, ...]] = {}
    for line in WORDNET_QUALITIES.read_text().splitlines():
        if line.startswith("#"):
            continue
        first, *rest = line.split()
        if first.startswith("="):
            irregular[first[1:]] = tuple(rest)
        else:
            groups[first] = frozenset(map(int, rest))
    return groups, irregular


def load() -> None:
    """Read the table now (about 60 ms), not on the first lookup that needs it."""
    _table()


def groups_of(forms: Iterable[str]) -> frozenset[int]:
    """The groups of every form that is an adjective or adverb, irregular forms read as their bases."""
    groups, irregular = _table()
    out: set[int] = set()
    for form in forms:
        for word in (form, *irregular.get(form, ())):
            out |= groups.get(word, frozenset())
    return frozenset(out)


def different_qualities(one: Iterable[str], other: Iterable[str]) -> bool:
    """Both words (given as their possible forms) are adjectives or adverbs, and of no common group."""
    left, right = groups_of(one), groups_of(other)
    return bool(left) and bool(right) and not left & right
