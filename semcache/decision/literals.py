"""Literal features of a (query, cached prompt) pair: what a sentence encoder reads poorly and a cached
answer depends on exactly. They are inputs of the learned decision (so calibration accounts for them),
never rules that decide alone.

- numbers: the numbers written in digits differ ("2 GB" vs "4 GB", "Python 3.11" vs "3.12");
- identifiers: code identifiers, flags, file names or paths differ (``snake_case``, ``camelCase``,
  ``module.attr``, ``app.py``, ``--force``, ``/etc/hosts``, ```code```).
"""

from __future__ import annotations

import functools
import re

import numpy as np

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_IDENTIFIER = re.compile(
    r"`[^`]+`|\B--?[A-Za-z][\w-]*|\b[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+\b|\b[a-z]+[A-Z][A-Za-z0-9]*\b"
    r"|\b[a-z_]\w*(?:\.[a-z_]\w*)+\b|\b[\w-]+\.[a-z]{1,5}\b|(?<![\w/.~:])(?:~|\.{1,2})?(?:/[\w.-]*[\w-])+"
)
NAMES = ("numbers_differ", "identifiers_differ")
WIDTH = len(NAMES)


@functools.lru_cache(maxsize=8192)  # a cached prompt is compared again and again
def _literals(text: str) -> tuple[frozenset[str], frozenset[str]]:
    numbers = frozenset(n.replace(",", "") for n in _NUMBER.findall(text))
    identifiers = frozenset(i.strip("`").lower() for i in _IDENTIFIER.findall(text))
    return numbers, identifiers


def features(query: str, cached: str) -> np.ndarray:
    """The pair's literal features, in the order of :data:`NAMES` (1.0 = differ)."""
    left, right = _literals(query), _literals(cached)
    return np.array([float(a != b) for a, b in zip(left, right, strict=True)], dtype=np.float32)
