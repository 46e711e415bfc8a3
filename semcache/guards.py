"""Guards: cheap, deterministic checks that refuse a (query, cached prompt) pair outright when the two
differ in something that changes the right answer and that a learned score can miss: numbers, units,
calendar words, opposite words, code identifiers and file names, languages, the same words with two parts in
swapped places ("from Java to .NET" vs "from .NET to Java"), one name in place of another ("Sydney" vs
"Melbourne", ``semcache.name_guard``), or one adjective for another that WordNet does not group with it
("soggy" vs "crispy", ``semcache.qualities``). A guard only ever turns a hit into a miss.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from semcache import guard_words as lexicon
from semcache.name_guard import names, replaced_span
from semcache.perturb import ANTONYMS
from semcache.qualities import different_qualities

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_FEET_INCHES = re.compile(r"\b(\d+)'(\d+)\b\"?")  # 5'10"
_IDENTIFIER = re.compile(
    r"`[^`]+`|\B--?[A-Za-z][\w-]*|\b[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+\b|\b[a-z]+[A-Z][A-Za-z0-9]*\b"
    r"|\b[a-z_]\w*\.[a-z_]\w*\b|\b[\w-]+\.[a-z]{1,5}\b"
    r"|(?<![\w/.~:])(?:~|\.{1,2})?(?:/[\w.-]*[\w-])+|\b[A-Za-z]:\\[\w\\.-]*[\w-]|\B@[A-Za-z_][\w.]*\w"
)  # `code`, --flags, snake_case, lowerCamelCase, module.name, file.ext, paths (/etc/hosts, ~/.bashrc,
# C:\Users) and decorators (@classmethod); not names like MySQL, nor km/h, and/or, I/O, 24/7 or an email
_TOKEN = re.compile(r"[a-z0-9]+(?:[.#+'][a-z0-9#+]+)*|[%$€£℃℉]|°[cf](?![a-z])|°")
_SYMBOLS = {"%": "percent", "$": "dollars", "€": "euros", "£": "pounds", "°c": "celsius", "℃": "celsius",
            "°f": "fahrenheit", "℉": "fahrenheit", "°": "degrees"}  # fmt: skip
WORDNET_ANTONYMS = Path(__file__).with_name("wordnet_antonyms.txt")  # scripts/extract_antonyms.py


def _wordnet_pairs(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text().splitlines()
    return [(pair[0], pair[1]) for pair in (line.split() for line in lines if not line.startswith("#"))]


# Opposites that ask one question: "is X the same as Y" is "how are X and Y different". And on / off:
# as bare words they are mostly prepositions ("stop procrastinating on homework" vs "putting off my
# homework"); "turn on" vs "turn off" is caught as opposite particles of one verb.
_NOT_OPPOSED = {("different", "same"), ("come", "go"), ("off", "on")}
_OPPOSITE: dict[str, set[str]] = {}
for _one, _other in {*ANTONYMS, *lexicon.MORE_OPPOSITES, *_wordnet_pairs(WORDNET_ANTONYMS)} - _NOT_OPPOSED:
    _OPPOSITE.setdefault(_one, set()).add(_other)
    _OPPOSITE.setdefault(_other, set()).add(_one)


@functools.lru_cache(maxsize=4096)  # each guard reads both texts' words; a cached prompt comes back often
def _words(text: str) -> tuple[str, ...]:
    # "alice's" is "alice": a possessive does not change which words a prompt holds; "9pm" adds "@pm"
    # (not the verb "am").
    words = []
    for token in _TOKEN.findall(text.lower()):
        words.append(_SYMBOLS.get(token, token).removesuffix("'s"))
        if clock := lexicon.CLOCK.fullmatch(token):
            words.append("@" + clock.group(1))
    return tuple(words)


def _number_words(words: Sequence[str]) -> list[str]:
    """The numbers a prompt spells out ("ten", "twenty five", "three hundred"), as digits. A lone "one"
    is left out ("which one", "one of"), and so is a scale alone ("a hundred", "several thousand")."""
    found, value, run = [], 0, []
    for word in [*words, ""]:
        number = (
            lexicon.SMALL_NUMBERS.get(word)
            or lexicon.TENS.get(word)
            or lexicon.TIMES.get(word)
            or lexicon.ORDINALS.get(word)
        )
        if number or word in lexicon.SCALES or (word == "one" and run):
            run.append(word)
            if word in lexicon.SCALES:
                value = max(value, 1) * lexicon.SCALES[word]
            else:
                value += number or 1
        elif run:
            if any(w not in lexicon.SCALES for w in run):  # "several thousand" is not an amount
                found.append(str(value))
            value, run = 0, []
    return found


def _digits(text: str) -> list[str]:
    return [n.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", n) else n for n in _NUMBER.findall(text)]


def _both_differ(left: set[str], right: set[str]) -> bool:
    # One side naming nothing is usually a rewording ("how long" vs "how many hours"), not a change.
    return bool(left) and bool(right) and left != right


def numbers(a: str, b: str) -> bool:
    """Different numbers, in digits or words: a changed year, version, amount, port or size. "1 X" on
    one side is "a X", "an X" or "one X" on the other ("1 terabyte" is "a terabyte")."""
    left = sorted(_digits(a) + _number_words(_words(a)))
    right = sorted(_digits(b) + _number_words(_words(b)))
    return left != right and not (_one_as_article(left, right, a, b) or _one_as_article(right, left, b, a))


def _one_as_article(more: list[str], fewer: list[str], more_text: str, fewer_text: str) -> bool:
    if "1" not in more:
        return False
    rest = list(more)
    rest.remove("1")
    counted = {noun for one, noun in itertools.pairwise(_words(more_text)) if one == "1"}
    articled = {noun for one, noun in itertools.pairwise(_words(fewer_text)) if one in ("a", "an", "one")}
    return rest == fewer and bool(counted & articled)


_BITS_BYTES = re.compile(r"(?<![A-Za-z])([KMGT])([bB])(ps)?\b")  # Mbps is bits, MBps bytes
_PREFIXES = {"K": "kilo", "M": "mega", "G": "giga", "T": "tera"}


def _bits_or_bytes(match: re.Match) -> str:
    prefix, letter, per_second = match.groups()
    return f" {_PREFIXES[prefix]}{'bits' if letter == 'b' else 'bytes'}{' per second' if per_second else ''}"


def _units_of(text: str) -> set[str]:
    found = set()
    text = _BITS_BYTES.sub(_bits_or_bytes, text)
    if "/h" in text.lower() or _FEET_INCHES.search(text):  # km/h, 5'10"; else the shared (cached) words
        text = re.sub(r"(?<=[a-z])/h\b", " per hour", text.lower())
        text = _FEET_INCHES.sub(r"\1 feet \2 inches", text)
    for word in _words(text):
        if word in lexicon.UNITS:
            word = lexicon.UNIT_NAMES.get(word, word)
            found.update(lexicon.UNIT_NAMES.get(word.removesuffix("s"), word.removesuffix("s")).split("+"))
    return found


def units(a: str, b: str) -> bool:
    """Different units of measure or currency (singular and plural, "km" and "kilometres" are one unit)."""
    return _both_differ(_units_of(a), _units_of(b))


def _dates_of(text: str) -> list[set[str]]:
    """Calendar words in groups: dates, times of day, seasons, and the qualified ("next Monday")."""
    words = [
        "autumn" if w == "fall" and before in lexicon.BEFORE_SEASON else lexicon.WEEKDAY_PLURALS.get(w, w)
        for before, w in itertools.pairwise(("", *_words(text)))
    ]
    found = {w for w in words if w in lexicon.CALENDAR}
    qualified = {
        f"{q} {w}" for q, w in itertools.pairwise(words) if q in lexicon.QUALIFIERS and w in lexicon.CALENDAR
    }
    return [
        found - lexicon.TIMES_OF_DAY - lexicon.SEASONS,
        found & lexicon.TIMES_OF_DAY,
        found & lexicon.SEASONS,
        qualified,
    ]


def calendar(a: str, b: str) -> bool:
    """Different days, months, times of day, seasons, or qualifiers of one date ("this Wednesday" vs
    "next Wednesday"); one side naming more ("Monday morning" vs "Monday") is not a change."""
    return any(_both_differ(x, y) for x, y in zip(_dates_of(a), _dates_of(b), strict=True))


@functools.lru_cache(maxsize=16384)
def _opposites_of(word: str) -> frozenset[str]:
    # Not to/into, port/import: the short prefixes need a word of 4 letters, im-/il-/ir- one of 5.
    negated = {
        p + word for p in lexicon.NEGATING_PREFIXES if len(word) >= (5 if p[0] == "i" and p != "in" else 4)
    }
    return frozenset(_OPPOSITE.get(word, set()) | negated)


@functools.lru_cache(maxsize=16384)
def _lemmas(word: str) -> frozenset[str]:
    """The word and the stems it may be a form of: "darker" dark, "oldest" old, "bigger" big, "quickly"
    quick, "easier" easy, "strengths" strength, "failing" fail, "closed" close. A wrong stem matters
    only where it is a listed opposite, or an adjective the qualities guard then counts among the word's
    WordNet groups (more groups make a shared one likelier; a noun can pass for an adjective)."""
    forms = {word}
    if len(word) < 4:
        return frozenset(forms)
    for suffix, replacements in lexicon.SUFFIXES:
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            forms |= {stem + r for r in replacements}
            if len(stem) > 2 and stem[-1] == stem[-2]:  # bigger, hottest
                forms.add(stem[:-1])
    return frozenset(forms)


def _negations(words: Sequence[str]) -> int:
    return sum(w in lexicon.NEGATORS or w.endswith("n't") for w in words)


def _particles(words: Sequence[str]) -> set[tuple[str, str]]:
    """A phrasal verb and its particle, next to it or up to three words on ("turn the alarm on")."""
    found = set()
    for i, verb in enumerate(words):
        if verb in lexicon.PHRASAL:
            particle = next((w for w in words[i + 1 : i + 5] if w in lexicon.PARTICLES), None)
            if particle is not None:
                found.add((verb, particle))
    return found


def opposites(a: str, b: str) -> bool:
    """One side says a word, the other its opposite (antonym, un-/in-/dis-/non-/im- form, or in any of
    their -er, -est, -ly or plural forms) and not the word; or a verb takes opposite particles ("zoom
    in" vs "zoom out", "turn on" vs "turn off")."""
    words_a, words_b = _words(a), _words(b)
    if _negations(words_a) % 2 != _negations(words_b) % 2:
        return False  # a negation may cancel the opposite: "not difficult" is "easy"
    forms = [{w: _lemmas(w) for w in words} for words in (words_a, words_b)]
    stems = [set().union(*side.values()) for side in forms]
    for one, other, own in ((forms[0], stems[1], stems[0]), (forms[1], stems[0], stems[1])):
        for lemmas in one.values():
            opposite = set().union(*(_opposites_of(lemma) for lemma in lemmas))
            if not lemmas & other and (opposite & other) - own:
                return True
    particles_a, particles_b = _particles(words_a), _particles(words_b)
    return any(
        (verb, lexicon.PARTICLES[particle]) in particles_b and (verb, particle) not in particles_b
        and (verb, lexicon.PARTICLES[particle]) not in particles_a
        for verb, particle in particles_a
    )  # fmt: skip


def languages(a: str, b: str) -> bool:
    """Different programming or natural languages."""
    return _both_differ(
        {w for w in _words(a) if w in lexicon.LANGUAGES}, {w for w in _words(b) if w in lexicon.LANGUAGES}
    )


def _subcommands(text: str) -> set[str]:
    """ "git revert" in "what does git revert do"; not after a determiner or preposition, where the tool
    names a thing ("a git branch", "in git locally")."""
    words = ("", *_words(text))
    return {
        f"{tool} {sub}"
        for before, tool, sub in zip(words, words[1:], words[2:], strict=False)
        if tool in lexicon.CLI_TOOLS
        and sub not in lexicon.NOT_SUBCOMMANDS
        and before not in lexicon.NOUN_MARKERS
    }


def identifiers(a: str, b: str) -> bool:
    """Different code identifiers (snake_case, lowerCamelCase, `code`), file names, or subcommands of
    one command-line tool ("git revert" vs "git restore")."""
    left, right = _subcommands(a), _subcommands(b)
    return _both_differ(set(_IDENTIFIER.findall(a)), set(_IDENTIFIER.findall(b))) or bool(
        left - right and right - left
    )


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def swapped(a: str, b: str) -> bool:
    """After the common beginning and end, both middles hold the same words in another order ("is the
    teacher grading the students" and "are the students grading the teacher" count as the same words),
    as written or once plurals are made singular ("orders per customer" vs "customers per order"; the
    words as written come first, so "HTTP to HTTPS" vs "HTTPS to HTTP" stays a swap)."""
    left = [lexicon.AUXILIARY.get(w, w) for w in _words(a)]
    right = [lexicon.AUXILIARY.get(w, w) for w in _words(b)]
    return _reordered(left, right) or _reordered([_singular(w) for w in left], [_singular(w) for w in right])


def _reordered(left: list[str], right: list[str]) -> bool:
    start = 0
    while start < min(len(left), len(right)) and left[start] == right[start]:
        start += 1
    end = 0
    while end < min(len(left), len(right)) - start and left[-1 - end] == right[-1 - end]:
        end += 1
    middle_left, middle_right = left[start : len(left) - end], right[start : len(right) - end]
    directed = start > 0 and left[start - 1] in lexicon.DIRECTED_WITH  # "replace X with Y" is not "Y with X"
    joined = {w for w, after in itertools.zip_longest(middle_left, middle_left[1:]) if after != "not"}
    if lexicon.SYMMETRIC & joined - ({"with"} if directed else set()):
        return False  # "X and Y" is "Y and X"; "X and not Y" is not "Y and not X"
    moved = any(middle_left[k:] + middle_left[:k] == middle_right for k in range(1, len(middle_left)))
    return (
        len(middle_left) >= 3
        and middle_left != middle_right
        and Counter(middle_left) == Counter(middle_right)
        and not moved  # "send it every Friday" is "every Friday, send it": a clause moved, not swapped
    )


_PARTICIPLES = ("ed", "ing")


def _one_word_swapped(left: Sequence[str], right: Sequence[str]) -> tuple[str, str, str] | None:
    """The two words and the word before them, when the prompts differ only in one word put in place
    of another."""
    span = replaced_span(left, right)
    if span is None:
        return None
    i1, i2, j1, j2 = span
    before = left[i1 - 1] if i1 else ""
    return (left[i1], right[j1], before) if i2 - i1 == 1 and j2 - j1 == 1 else None


def _as_verb(word: str, before: str) -> bool:
    """A participle ("changed", "linked") reads as a verb unless a degree word or a linking verb comes
    before it ("more varied", "looks crowded"): "what changed" is "what's new"."""
    return word.endswith(_PARTICIPLES) and before not in lexicon.BEFORE_ADJECTIVES


def qualities(a: str, b: str) -> bool:
    """The prompts differ only in one adjective or adverb put in place of another of a different WordNet
    group ("neater" vs "messier", "spacious" vs "cramped"); not function words or praise
    (``lexicon.FUNCTION_WORDS``), forms of one word, numbers, or spellings ("colour" / "color")."""
    swap = _one_word_swapped(_words(a), _words(b))
    if swap is None:
        return False
    first, second, before = swap
    if any(w[0].isdigit() or _as_verb(w, before) for w in (first, second)):
        return False
    one, other = _lemmas(first), _lemmas(second)
    if lexicon.FUNCTION_WORDS & (one | other) or one & other:
        return False
    if difflib.SequenceMatcher(None, first, second).ratio() >= 0.8:
        return False
    return different_qualities(one, other)


GUARDS: dict[str, Callable[[str, str], bool]] = {
    "numbers": numbers, "units": units, "calendar": calendar, "opposites": opposites,
    "identifiers": identifiers, "languages": languages, "swapped": swapped, "names": names,
    "qualities": qualities,
}  # fmt: skip


def tripped(a: str, b: str) -> str | None:
    """The name of the first guard the pair trips, or None."""
    return next((name for name, guard in GUARDS.items() if guard(a, b)), None)
