"""Guards: cheap, deterministic checks that refuse a (query, cached prompt) pair outright when the two
differ in something that changes the right answer and that a learned score can miss: numbers, units,
calendar words, opposite words, code identifiers and file names, languages, or the same words with two parts in
swapped places ("from Java to .NET" vs "from .NET to Java"). A guard only ever turns a hit into a miss.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from semcache.perturb import ANTONYMS
from semcache.perturb import LANGUAGES as PERTURB_LANGUAGES

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_IDENTIFIER = re.compile(
    r"`[^`]+`|\B--?[A-Za-z][\w-]*|\b[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+\b|\b[a-z]+[A-Z][A-Za-z0-9]*\b"
    r"|\b[a-z_]\w*\.[a-z_]\w*\b|\b[\w-]+\.[a-z]{1,5}\b"
)  # `code`, --flags, snake_case, lowerCamelCase, module.name and file.ext; not names like MySQL
_TOKEN = re.compile(r"[a-z0-9]+(?:[.#+'][a-z0-9#+]+)*|[%$€£]")
_SYMBOLS = {"%": "percent", "$": "dollars", "€": "euros", "£": "pounds"}
UNITS = frozenset(re.split(r"\s+", """
    second seconds minute minutes hour hours day days week weeks month months year years ms millisecond
    milliseconds gram grams kg kilogram kilograms pound pounds lb lbs ounce ounces oz ton tons liter liters
    litre litres gallon gallons ml milliliter milliliters meter meters metre metres km kilometer kilometers
    kilometre kilometres mile miles foot feet inch inches cm centimeter centimeters yard yards celsius
    fahrenheit kelvin byte bytes bit bits kb kilobyte kilobytes mb megabyte megabytes megabit megabits gb
    gigabyte gigabytes gigabit gigabits tb terabyte terabytes percent dollar dollars euro euros usd eur
    gbp yen rupee rupees watt watts kw kwh volt volts mph kph cent cents pixel pixels px quart quarts cup cups
    tablespoon tablespoons tbsp teaspoon teaspoons tsp microsecond microseconds nanosecond nanoseconds mm
    millimeter millimeters hz khz mhz ghz kbps mbps gbps fps dpi rpm acre acres hectare hectares""".strip()))  # fmt: skip
CALENDAR = frozenset(re.split(r"\s+", """
    monday tuesday wednesday thursday friday saturday sunday january february april june july august
    september october november december today yesterday tomorrow tonight weekend week month year morning
    afternoon evening night @am @pm""".strip()))  # fmt: skip
# Opposites the guard knows beyond the training rules' list (semcache.perturb.ANTONYMS, which stays as
# the shipped model was trained with): comparatives and the pairs of everyday tooling prompts.
MORE_OPPOSITES = [tuple(pair.split("/")) for pair in re.split(r"\s+", """
    up/down high/low higher/lower highest/lowest large/small larger/smaller largest/smallest big/small
    bigger/smaller biggest/smallest faster/slower fastest/slowest better/worse long/short longer/shorter
    old/new older/newer early/late earlier/later min/max most/least more/fewer grant/revoke keep/remove
    keep/delete keep/strip keep/drop show/hide expand/collapse include/exclude attach/detach inbound/outbound
    input/output read/write encode/decode increment/decrement overfitting/underfitting sync/async
    synchronous/asynchronous benefits/drawbacks approve/reject reduce/increase always/never success/failure pass/fail
    internal/external horizontal/vertical top/bottom head/tail prefix/suffix next/last next/previous
    deposit/withdraw credit/debit profit/loss lend/borrow hot/cold light/dark
    strong/weak safe/dangerous online/offline login/logout grow/shrink maximize/minimize plus/minus
    add/subtract multiply/divide mutable/immutable frontend/backend""".strip())]  # fmt: skip
_OPPOSITE: dict[str, set[str]] = {}
for _one, _other in [*ANTONYMS, *MORE_OPPOSITES]:
    _OPPOSITE.setdefault(_one, set()).add(_other)
    _OPPOSITE.setdefault(_other, set()).add(_one)
_NEGATING_PREFIXES = ("un", "in", "dis", "non", "im", "il", "ir")
LANGUAGES = frozenset(language.lower() for language in PERTURB_LANGUAGES)
_SMALL_NUMBERS = {word: n for n, word in enumerate(re.split(r"\s+", """
    zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen""".strip())) if n >= 2}  # fmt: skip
_TENS = {word: 10 * n for n, word in enumerate(re.split(r"\s+", """
    _ _ twenty thirty forty fifty sixty seventy eighty ninety""".strip())) if n >= 2}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_CLOCK = re.compile(r"\d+(am|pm)")
_SYMMETRIC = frozenset({"and", "or", "vs", "versus", "with", "&"})  # "X and Y" is "Y and X"


def _words(text: str) -> list[str]:
    # "alice's" is "alice": a possessive does not change which words a prompt holds; "9pm" adds "@pm"
    # (not the verb "am").
    words = []
    for token in _TOKEN.findall(text.lower()):
        words.append(_SYMBOLS.get(token, token).removesuffix("'s"))
        if clock := _CLOCK.fullmatch(token):
            words.append("@" + clock.group(1))
    return words


def _number_words(words: list[str]) -> list[str]:
    """The numbers a prompt spells out ("ten", "twenty five", "three hundred"), as digits. A lone "one"
    is left out ("which one", "one of"), and so is a scale alone ("a hundred", "several thousand")."""
    found, value, run = [], 0, []
    for word in [*words, ""]:
        number = _SMALL_NUMBERS.get(word) or _TENS.get(word)
        if number or word in _SCALES or (word == "one" and run):
            run.append(word)
            if word in _SCALES:
                value = max(value, 1) * _SCALES[word]
            else:
                value += number or 1
        elif run:
            if any(w not in _SCALES for w in run):  # "several thousand" is not an amount
                found.append(str(value))
            value, run = 0, []
    return found


def _digits(text: str) -> list[str]:
    return [n.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", n) else n for n in _NUMBER.findall(text)]


def _both_differ(left: set[str], right: set[str]) -> bool:
    # One side naming nothing is usually a rewording ("how long" vs "how many hours"), not a change.
    return bool(left) and bool(right) and left != right


def numbers(a: str, b: str) -> bool:
    """Different numbers, in digits or words: a changed year, version, amount, port or size."""
    return sorted(_digits(a) + _number_words(_words(a))) != sorted(_digits(b) + _number_words(_words(b)))


def units(a: str, b: str) -> bool:
    """Different units of measure or currency (singular and plural are one unit)."""
    return _both_differ(
        {w.removesuffix("s") for w in _words(a) if w in UNITS},
        {w.removesuffix("s") for w in _words(b) if w in UNITS},
    )


def calendar(a: str, b: str) -> bool:
    """Different days, months or relative dates."""
    return _both_differ({w for w in _words(a) if w in CALENDAR}, {w for w in _words(b) if w in CALENDAR})


def _opposites_of(word: str) -> set[str]:
    # Not to/into, port/import: the short prefixes need a word of 4 letters, im-/il-/ir- one of 5.
    negated = {p + word for p in _NEGATING_PREFIXES if len(word) >= (5 if p[0] == "i" and p != "in" else 4)}
    return _OPPOSITE.get(word, set()) | negated


def opposites(a: str, b: str) -> bool:
    """One side says a word, the other its opposite (antonym or un-/in-/dis-/non- form) and not the word."""
    left, right = set(_words(a)), set(_words(b))
    for one, other in ((left, right), (right, left)):
        if any(w not in other and (_opposites_of(w) & other) - one for w in one):
            return True
    return False


def languages(a: str, b: str) -> bool:
    """Different programming or natural languages."""
    return _both_differ({w for w in _words(a) if w in LANGUAGES}, {w for w in _words(b) if w in LANGUAGES})


def identifiers(a: str, b: str) -> bool:
    """Different code identifiers (snake_case, lowerCamelCase, `code`) or file names."""
    return _both_differ(set(_IDENTIFIER.findall(a)), set(_IDENTIFIER.findall(b)))


def swapped(a: str, b: str) -> bool:
    """After the common beginning and end, both middles hold the same words in another order."""
    left, right = _words(a), _words(b)
    start = 0
    while start < min(len(left), len(right)) and left[start] == right[start]:
        start += 1
    end = 0
    while end < min(len(left), len(right)) - start and left[-1 - end] == right[-1 - end]:
        end += 1
    middle_left, middle_right = left[start : len(left) - end], right[start : len(right) - end]
    if _SYMMETRIC & set(middle_left):
        return False
    return (
        len(middle_left) >= 3
        and middle_left != middle_right
        and Counter(middle_left) == Counter(middle_right)
    )


GUARDS: dict[str, Callable[[str, str], bool]] = {
    "numbers": numbers, "units": units, "calendar": calendar, "opposites": opposites,
    "identifiers": identifiers, "languages": languages, "swapped": swapped,
}  # fmt: skip


def tripped(a: str, b: str) -> str | None:
    """The name of the first guard the pair trips, or None."""
    return next((name for name, guard in GUARDS.items() if guard(a, b)), None)
