"""Rule-based hard negatives and easy positives, made from a question by small edits that change (or
keep) its meaning: negation, antonyms, swapped roles, changed numbers, identifiers, file names and
languages, swapped words, changed units. Used to teach the hit decision the traps that paraphrase corpora
rarely show."""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

NEGATABLE = [
    (r"\bcan\b", "cannot"),
    (r"\bshould\b", "should not"),
    (r"\bis\b", "is not"),
    (r"\bare\b", "are not"),
    (r"\bdoes\b", "does not"),
    (r"\bdo\b", "do not"),
    (r"\bwill\b", "will not"),
    (r"\bwas\b", "was not"),
]
NEGATIONS = [
    (r"\bcannot\b", "can"),
    (r"\bcan't\b", "can"),
    (r"\bdon't\b", "do"),
    (r"\bdoesn't\b", "does"),
    (r"\bisn't\b", "is"),
    (r"\bshould not\b", "should"),
    (r"\bshouldn't\b", "should"),
    (r"\bnot\s", ""),
    (r"\bwon't\b", "will"),
    (r"\bnever\b", "always"),
    (r"\bwithout\b", "with"),
]
ANTONYMS = [
    ("increase", "decrease"),
    ("enable", "disable"),
    ("add", "remove"),
    ("start", "stop"),
    ("open", "close"),
    ("before", "after"),
    ("minimum", "maximum"),
    ("true", "false"),
    ("buy", "sell"),
    ("leave", "remain"),
    ("import", "export"),
    ("upload", "download"),
    ("encrypt", "decrypt"),
    ("best", "worst"),
    ("win", "lose"),
    ("love", "hate"),
    ("cheap", "expensive"),
    ("fast", "slow"),
    ("easy", "hard"),
    ("good", "bad"),
    ("advantages", "disadvantages"),
    ("pros", "cons"),
    ("first", "last"),
    ("gain", "lose"),
    ("push", "pull"),
    ("serialize", "deserialize"),
    ("compress", "decompress"),
    ("install", "uninstall"),
    ("ascending", "descending"),
    ("lowercase", "uppercase"),
    ("inner", "outer"),
    ("left", "right"),
    ("public", "private"),
    ("rich", "poor"),
    ("positive", "negative"),
    ("male", "female"),
    ("older", "younger"),
    ("more", "less"),
    ("above", "below"),
    ("accept", "reject"),
    ("allow", "deny"),
    ("subscribe", "unsubscribe"),
    ("cancel", "renew"),
    ("merge", "split"),
]
LANGUAGES = [
    "Python",
    "Java",
    "JavaScript",
    "TypeScript",
    "C++",
    "C#",
    "Go",
    "Rust",
    "Ruby",
    "PHP",
    "Kotlin",
    "Swift",
    "Scala",
    "Haskell",
    "SQL",
    "Bash",
    "English",
    "French",
    "German",
    "Spanish",
    "Chinese",
    "Japanese",
    "Hindi",
    "Russian",
    "Italian",
    "Portuguese",
]
_IDENT = re.compile(r"\b[A-Za-z_]+[A-Z_][A-Za-z0-9_]*\b|\b\w+\.\w{1,5}\b|`[^`]+`")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_FROM_TO = re.compile(r"\bfrom ([\w.#+]+(?: [\w.#+]+)?) to ([\w.#+]+(?: [\w.#+]+)?)", re.IGNORECASE)
_VERB_X_TO_Y = re.compile(
    r"\b(convert|port|migrate|translate|move|switch|cast|map|upgrade)( (?:\w+ ){0,3}?)([\w.#+]+) (to|into) ([\w.#+]+)",
    re.IGNORECASE,
)


def _swap_case(word: str, like: str) -> str:
    return word.capitalize() if like[:1].isupper() else word


def negate(text: str, rng: random.Random) -> str | None:
    """Add or remove a negation."""
    for pattern, repl in rng.sample(NEGATIONS, len(NEGATIONS)):
        if re.search(pattern, text, re.IGNORECASE):
            return re.sub(pattern, repl, text, count=1, flags=re.IGNORECASE)
    for pattern, repl in rng.sample(NEGATABLE, len(NEGATABLE)):
        if re.search(pattern, text, re.IGNORECASE):
            return re.sub(pattern, repl, text, count=1, flags=re.IGNORECASE)
    return None


def antonym(text: str, rng: random.Random) -> str | None:
    """Replace one word by its opposite."""
    for a, b in rng.sample(ANTONYMS, len(ANTONYMS)):
        for src, dst in ((a, b), (b, a)):
            match = re.search(rf"\b{src}\b", text, re.IGNORECASE)
            if match:
                return text[: match.start()] + _swap_case(dst, match.group()) + text[match.end() :]
    return None


def swap_roles(text: str, rng: random.Random) -> str | None:
    """Swap the sides of a directed phrase: 'from X to Y', 'convert X to Y' ('X vs Y' is symmetric)."""
    match = _FROM_TO.search(text)
    if match:
        return text[: match.start()] + f"from {match.group(2)} to {match.group(1)}" + text[match.end() :]
    match = _VERB_X_TO_Y.search(text)
    if match and match.group(3).lower() != match.group(5).lower():
        verb, gap, x, to, y = match.groups()
        return text[: match.start()] + f"{verb}{gap}{y} {to} {x}" + text[match.end() :]
    return None


def change_number(text: str, rng: random.Random) -> str | None:
    """Change one number (or add one where there was none is not done: that is another question)."""
    numbers = list(_NUMBER.finditer(text))
    if not numbers:
        return None
    match = rng.choice(numbers)
    value = float(match.group())
    new = value + rng.choice([1, 2, 5, 10, 100]) if value < 1900 else value + rng.choice([-3, -1, 1, 2])
    rendered = str(int(new)) if "." not in match.group() else f"{new:.{len(match.group().split('.')[1])}f}"
    return text[: match.start()] + rendered + text[match.end() :]


def change_language(text: str, rng: random.Random) -> str | None:
    """Replace a programming or natural language by another."""
    for language in rng.sample(LANGUAGES, len(LANGUAGES)):
        match = re.search(rf"(?<![\w+#]){re.escape(language)}(?![\w+#])", text)
        if match:
            other = rng.choice([x for x in LANGUAGES if x != language])
            return text[: match.start()] + other + text[match.end() :]
    return None


def change_identifier(text: str, rng: random.Random) -> str | None:
    """Change a code identifier or file name (camelCase, snake_case, name.ext, `code`)."""
    found = list(_IDENT.finditer(text))
    if not found:
        return None
    match = rng.choice(found)
    token = match.group()
    suffixes = ["2", "_old", "V2", "Async", "_id", "s"]
    if "." in token and not token.startswith("`"):
        stem, ext = token.rsplit(".", 1)
        new = f"{stem}{rng.choice(['_test', '2', '_utils'])}.{ext}"
    else:
        new = token.rstrip("`") + rng.choice(suffixes) + ("`" if token.endswith("`") else "")
    return text[: match.start()] + new + text[match.end() :]


_STOP = set(
    [
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "do",
        "does",
        "did",
        "how",
        "what",
        "why",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "i",
        "you",
        "he",
        "she",
        "it",
        "we",
        "they",
        "me",
        "my",
        "your",
        "our",
        "their",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "from",
        "by",
        "at",
        "as",
        "about",
        "into",
        "than",
        "then",
        "so",
        "if",
        "not",
        "no",
        "yes",
        "any",
        "some",
        "all",
        "more",
        "most",
        "very",
        "just",
        "also",
        "get",
        "got",
        "has",
        "have",
        "had",
        "its",
        "it's",
    ]
)
# Where two words may change places without changing the question ("the difference between A and B").
_SYMMETRIC = re.compile(r"\b(between|and|or|vs|versus|compare|compared|difference|same|similar|both)\b", re.I)
_BEFORE_NOUN = set(
    [
        "the",
        "a",
        "an",
        "my",
        "your",
        "his",
        "her",
        "our",
        "their",
        "its",
        "from",
        "at",
        "by",
        "on",
        "with",
        "for",
        "of",
        "in",
        "into",
        "do",
        "does",
        "did",
        "can",
        "should",
        "will",
        "would",
        "are",
        "is",
        "was",
        "were",
    ]
)


@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    text: str


UNIT_GROUPS = [
    ["KB", "MB", "GB", "TB"],
    ["millimeters", "centimeters", "meters", "kilometers", "inches", "feet", "miles"],
    ["grams", "kilograms", "ounces", "pounds"],
    ["milliliters", "liters", "cups", "gallons"],
    ["seconds", "minutes", "hours", "days", "weeks", "months", "years"],
    ["celsius", "fahrenheit"],
    ["dollars", "euros", "rupees", "pounds"],
    ["mph", "km/h"],
    ["MHz", "GHz"],
    ["watts", "kilowatts"],
]


def swap_words(text: str, rng: random.Random) -> str | None:
    """Exchange two content words ("the buyer pays the seller" -> "the seller pays the buyer"), unless the
    question is symmetric in them."""
    if _SYMMETRIC.search(text):
        return None
    # Words after a determiner, a preposition or an auxiliary are mostly nouns: swapping two of them keeps
    # the sentence well formed ("Why do cats hiss at dogs?" -> "Why do dogs hiss at cats?").
    words = list(re.finditer(r"[A-Za-z][A-Za-z-]*", text))
    content = [
        _Word(w.start(), w.end(), w.group())
        for before, w in itertools.pairwise(words)
        if before.group().lower() in _BEFORE_NOUN and len(w.group()) > 2 and w.group().lower() not in _STOP
    ]
    if len(content) < 2:
        return None
    first, second = sorted(rng.sample(content, 2), key=lambda w: w.start)
    if first.text.lower() == second.text.lower():
        return None
    return (
        text[: first.start] + second.text + text[first.end : second.start] + first.text + text[second.end :]
    )


def change_unit(text: str, rng: random.Random) -> str | None:
    """Replace a unit of measure by another of its kind (MB by GB, meters by feet)."""
    for group in rng.sample(UNIT_GROUPS, len(UNIT_GROUPS)):
        for unit in group:
            match = re.search(rf"(?<![\w/]){re.escape(unit)}(?![\w/])", text, re.IGNORECASE)
            if match:
                other = rng.choice([u for u in group if u.lower() != unit.lower()])
                return text[: match.start()] + other + text[match.end() :]
    return None


HARD_NEGATIVES = [
    negate,
    antonym,
    swap_roles,
    change_number,
    change_language,
    change_identifier,
    swap_words,
    change_unit,
]


def hard_negative(text: str, rng: random.Random) -> str | None:
    """One meaning-changing edit of ``text``, or None when no rule applies."""
    for rule in rng.sample(HARD_NEGATIVES, len(HARD_NEGATIVES)):
        changed = rule(text, rng)
        if changed and changed.strip() != text.strip():
            return changed
    return None


_FILLERS = ["Please tell me: ", "Can you tell me ", "Quick question: ", "I was wondering, ", "Hey, "]


def easy_positive(text: str, rng: random.Random) -> str:
    """A meaning-preserving edit: case, punctuation, a polite prefix."""
    edits = [
        lambda t: t.lower(),
        lambda t: t.rstrip("?.! ") + ("?" if not t.endswith("?") else ""),
        lambda t: rng.choice(_FILLERS) + t[:1].lower() + t[1:],
        lambda t: t + " Thanks!",
        lambda t: re.sub(r"\s+", "  ", t),
    ]
    return rng.choice(edits)(text)
