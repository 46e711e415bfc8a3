"""The names guard: two prompts that differ only in one capitalised name put in place of another ("how
do I explore the Gobi desert" vs "… the Thar desert", "flights to Sydney" vs "… to Melbourne", "PlayStation"
vs "Xbox"). Another place, product, person or organisation asks another question, however close the rest
of the words; the verifier, trained on Quora, whose labels call many such template questions duplicates,
serves some of them.

A name is a run of up to three words that each start with a capital letter, not at the start of a
sentence, in a prompt that is not written in title case. Two names are the same name when one is the
other inflected ("Serbia" / "Serbs", "Russia" / "Russian's"), the initials of the other ("SC" / "Supreme
Court", "U.S." / "United States"), the same letters or a short form of four or more ("What'sApp" /
"WhatsApp", "Postgres" / "PostgreSQL"), or both are in one of a few aliases ("America" / "USA", "JS" /
"JavaScript"). Two names of one person ("Hillary" / "Clinton") are refused: a miss.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Sequence

_APOSTROPHES = "'\u2019"  # ' and the typographic one
_WORD = re.compile(rf"[A-Za-z0-9]+(?:[{_APOSTROPHES}][A-Za-z]+)?")
_SENTENCE_END = (".", "?", "!", ":", ";", '"', "(", "\n")
_MAX_NAME_WORDS = 3
_DEMONYM_ENDINGS = ("ians", "ian", "ans", "an", "ese", "ish", "ia", "ns", "es", "s", "n", "a")
ALIASES = [
    {"us", "usa", "america", "united states", "united states of america"},
    {"uk", "britain", "great britain", "united kingdom"},
    {"holland", "netherlands", "the netherlands"},
    {"nyc", "new york", "new york city"},
    {"js", "javascript"},
    {"ts", "typescript"},
    {"k8s", "kubernetes"},
]
_MIN_PREFIX = 4  # "Postgres" / "PostgreSQL", "Mongo" / "MongoDB"; not "Mac" / "Macy's"


@functools.lru_cache(maxsize=4096)
def _spans(text: str) -> tuple[tuple[str, int], ...]:
    """Each word with its start offset."""
    return tuple((m.group(), m.start()) for m in _WORD.finditer(text))


def _title_case(words: tuple[tuple[str, int], ...]) -> bool:
    """Most words after the first are capitalised: a headline, where capitals name nothing."""
    rest = [word for word, _ in words[1:] if word[0].isalpha() and word != "I"]
    return sum(word[0].isupper() for word in rest) * 2 > len(rest)


def _is_name(text: str, words: tuple[tuple[str, int], ...], start: int, end: int) -> bool:
    span = words[start:end]
    if not 0 < len(span) <= _MAX_NAME_WORDS or start == 0:
        return False
    if any(not word[0].isupper() or word.isdigit() or word == "I" for word, _ in span):
        return False
    before = text[: span[0][1]].rstrip()
    return not before.endswith(_SENTENCE_END)


def _stem(name: str) -> str:
    """Without a possessive, a plural or a demonym's ending ("wars" → "war", "serbia" / "serbs" → "serb")."""
    name = re.sub(rf"[{_APOSTROPHES}]s$", "", name)
    for ending in _DEMONYM_ENDINGS:
        if name.endswith(ending) and len(name) - len(ending) >= (3 if ending == "s" else 4):
            return name[: -len(ending)]
    return name


def _key(words: list[str]) -> str:
    """A name's words lowercased; initials written with dots ("U.S.") are one word ("us")."""
    joiner = "" if all(len(word) == 1 for word in words) else " "
    return joiner.join(words).lower()


def _initials(short: list[str], long: list[str]) -> bool:
    letters = "".join(short)
    if not (letters.isupper() and len(letters) <= 5 and len(long) > 1):
        return False
    initials = "".join(word[0] for word in long).upper()
    return letters.startswith(initials) or initials.startswith(letters)


def same_name(left: list[str], right: list[str]) -> bool:
    """Whether two names (their words as written) name the same thing."""
    one, other = _key(left), _key(right)
    if _stem(one) == _stem(other) or any(one in alias and other in alias for alias in ALIASES):
        return True
    compact, other_compact = re.sub(r"[\W_]", "", one), re.sub(r"[\W_]", "", other)
    shorter = min(compact, other_compact, key=len)
    if len(shorter) >= _MIN_PREFIX and (
        compact.startswith(other_compact) or other_compact.startswith(compact)
    ):
        return True  # the same letters ("What'sApp" / "WhatsApp") or a short form ("Postgres" / "PostgreSQL")
    return _initials(left, right) or _initials(right, left)


def replaced_span(left: Sequence[str], right: Sequence[str]) -> tuple[int, int, int, int] | None:
    """Where the two word sequences differ, when they differ only in one run of words put in place of
    another: ``left[i1:i2]`` became ``right[j1:j2]``. The names and the qualities guards share it."""
    changes = [
        op
        for op in difflib.SequenceMatcher(None, left, right, autojunk=False).get_opcodes()
        if op[0] != "equal"
    ]
    if len(changes) != 1 or changes[0][0] != "replace":
        return None
    return changes[0][1:]


def names(a: str, b: str) -> bool:
    """The prompts are the same words but for one name in place of another."""
    left, right = _spans(a), _spans(b)
    if _title_case(left) or _title_case(right):
        return False
    span = replaced_span([w.lower() for w, _ in left], [w.lower() for w, _ in right])
    if span is None:
        return False
    i1, i2, j1, j2 = span
    if not (_is_name(a, left, i1, i2) and _is_name(b, right, j1, j2)):
        return False
    return not same_name([w for w, _ in left[i1:i2]], [w for w, _ in right[j1:j2]])
