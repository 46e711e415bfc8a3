"""Tier classification: (tier, confidence) from a chat request.

Two classifiers share one interface. The heuristic scores structural signals (code blocks, files in
context, tracebacks, a JSON response format, prompt length) and intent patterns (word-bounded regexes
weighted per intent, so "json" inside an identifier or "test" inside "latest" do not count). The
trained classifier is a logistic regression over prompt embeddings (see ``router.train``). Both
produce *intents* named after the default tiers; ``intent_tiers`` maps them onto the configured tier
names. A confidence under ``min_confidence`` sends the request to the default tier.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from router.errors import ConfigError
from router.tokens import estimate_prompt_tokens, message_text

Embed = Callable[[list[str]], np.ndarray]

INTENTS = ("bulk", "standard", "structured", "complex")


@dataclass(frozen=True)
class Classification:
    """The tier chosen for a request, how sure the classifier was, and why."""

    tier: str
    confidence: float
    source: str
    scores: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Signals:
    """The structural facts the heuristic reads from a request."""

    text: str
    prompt_tokens: int
    code_blocks: int
    files: int
    traceback: bool
    json_format: bool


_P = re.IGNORECASE | re.MULTILINE
# (pattern, intent, weight). Weights are relative: one clear intent phrase outweighs the standard prior.
_INTENT_PATTERNS: list[tuple[re.Pattern[str], str, float]] = [
    (re.compile(p, _P), intent, w)
    for p, intent, w in [
        (r"\bdocstrings?\b|\bjsdoc\b|\bdoc ?comments?\b|\badd (?:type hints|comments)\b", "bulk", 1.6),
        (r"\b(?:write|add|generate|create)\b[^.?!\n]{0,40}\b(?:unit |integration )?tests?\b", "bulk", 1.5),
        (r"\bpytest\b|\bjest\b|\btest cases?\b|\bunit tests?\b", "bulk", 0.8),
        (
            r"\blint(?:er|ing)?\b|\bflake8\b|\beslint\b|\bruff\b|\bpep ?8\b|\bformat(?:ting)? (?:this|the) code\b",
            "bulk",
            1.4,
        ),
        (
            r"\btranslat(?:e|ion)\b|\bin(?:to)? (?:french|german|spanish|japanese|italian|portuguese|chinese)\b",
            "bulk",
            1.5,
        ),
        (r"\bboilerplate\b|\bscaffold\b|\bstub(?:s)? out\b|\bgetters? and setters?\b|\bcrud\b", "bulk", 1.3),
        (
            r"\brename\b|\bconvert (?:this|these|the)\b[^.?!\n]{0,30}\b(?:to|into) (?:typescript|python|async)\b|"
            r"\bchangelog\b|\bcommit message\b|\breadme\b",
            "bulk",
            1.0,
        ),
        (r"\b(?:json|yaml|csv|xml)\b", "structured", 1.0),
        (r"\bschema\b|\bkey[- ]value\b|\bfields?\b|\bcolumns?\b|\btable\b", "structured", 0.6),
        (
            r"\bextract\b|\bparse\b|\bnormali[sz]e\b|\bstructured\b|\bclassify\b|\blabel each\b",
            "structured",
            1.0,
        ),
        (
            r"\b(?:format|reformat|output|return|respond)\b[^.?!\n]{0,30}\b(?:as|in|into) (?:a |an )?"
            r"(?:json|yaml|csv|table|list|markdown table|array|object)\b",
            "structured",
            1.6,
        ),
        (
            r"\barchitect(?:ure)?\b|\bdesign (?:a|the|an)\b|\bsystem design\b|\bmicroservices?\b|\bscal(?:e|ability)\b",
            "complex",
            1.4,
        ),
        (
            r"\bdebug\b|\broot cause\b|\brace condition\b|\bdeadlock\b|\bmemory leak\b|\bsegfault\b|"
            r"\bintermittent(?:ly)?\b|\bflaky\b|\bwhy (?:does|is|do)\b[^?\n]{0,80}\b(?:fail|crash|hang|slow|wrong)",
            "complex",
            1.5,
        ),
        (
            r"\bsecurity\b|\bvulnerab\w*\b|\binjection\b|\bthreat model\b|\bxss\b|\bcsrf\b|\bauth(?:n|z|entication|"
            r"orization)\b",
            "complex",
            1.4,
        ),
        (
            r"\btrade-?offs?\b|\bpros and cons\b|\bcompare\b[^.?!\n]{0,60}\b(?:vs\.?|versus|or)\b|\bshould (?:we|i) "
            r"(?:use|choose|migrate|switch)\b",
            "complex",
            1.3,
        ),
        (
            r"\brefactor\b[^.?!\n]{0,40}\b(?:module|codebase|service|whole|entire|across)\b|\bmigrat(?:e|ion) plan\b|"
            r"\bconcurren\w*\b|\bdistributed\b|\bconsisten(?:t|cy)\b",
            "complex",
            1.2,
        ),
        (r"^\s*(?:what|who|when|where|how|why|is|are|can|does|do)\b", "standard", 0.5),
        (
            r"\bexplain\b|\bwhat(?:'s| is) the difference\b|\bsummari[sz]e\b|\brecommend\b|\bthanks?\b|\bhello\b",
            "standard",
            0.7,
        ),
    ]
]
_FENCE = re.compile(r"^\s*```", re.MULTILINE)
_FILE = re.compile(
    r"(?:^|[\s`'\"(])((?:[\w.-]+/)*[\w-]+\.(?:py|js|ts|tsx|jsx|go|rs|java|kt|rb|php|cs|cpp|cc|"
    r"c|h|hpp|swift|scala|sql|yaml|yml|toml|json|sh|tf|proto))\b",
    re.MULTILINE,
)
_TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)|\bException in thread\b|\bpanic:|"
    r"^\s+at [\w.$]+\(|\b\w+Error: ",
    re.MULTILINE,
)
_STANDARD_PRIOR = 0.6
_SOFTMAX_SCALE = 1.6


def read_signals(body: Mapping[str, Any]) -> Signals:
    """Extract the structural signals of a request (last user message plus all context)."""
    messages = list(body.get("messages") or [])
    text = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    context = "\n".join(message_text(m) for m in messages)
    response_format = body.get("response_format") or {}
    json_format = isinstance(response_format, Mapping) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )
    return Signals(
        text=text,
        prompt_tokens=estimate_prompt_tokens(messages),
        code_blocks=len(_FENCE.findall(context)) // 2,
        files=len(set(_FILE.findall(context))),
        traceback=bool(_TRACEBACK.search(context)),
        json_format=json_format,
    )


def heuristic_scores(signals: Signals) -> dict[str, float]:
    """Score each intent from the request's signals; higher means more likely."""
    scores = dict.fromkeys(INTENTS, 0.0)
    scores["standard"] = _STANDARD_PRIOR
    for pattern, intent, weight in _INTENT_PATTERNS:
        if pattern.search(signals.text):
            scores[intent] += weight
    if signals.json_format:
        scores["structured"] += 3.0
    if signals.traceback:
        scores["complex"] += 1.2
    if signals.files >= 3:
        scores["complex"] += 0.4 * min(signals.files, 6)
    if signals.code_blocks >= 1 and max(scores["bulk"], scores["complex"]) == 0:
        # Code with no stated intent is usually a quick edit or explanation: lean cheap, not premium.
        scores["bulk"] += 0.5
    if signals.prompt_tokens > 3000:
        scores["complex"] += 2.0
    elif signals.prompt_tokens > 1200:
        scores["complex"] += 0.8
    return scores


def softmax_confidence(scores: Mapping[str, float], scale: float = _SOFTMAX_SCALE) -> tuple[str, float]:
    """The best-scoring intent and its softmax share of all scores."""
    top = max(scores, key=lambda k: scores[k])
    peak = scores[top]
    total = sum(math.exp(scale * (s - peak)) for s in scores.values())
    return top, 1.0 / total


class TrainedTierModel:
    """A multinomial logistic regression over prompt embeddings, stored as a small ``.npz`` file."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, labels: Sequence[str]) -> None:
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.labels = [str(label) for label in labels]

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities per row, columns in ``labels`` order."""
        logits = np.asarray(embeddings, dtype=np.float32) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def save(self, path: str | Path) -> None:
        """Write the model as an ``.npz`` (no pickle, so loading never runs code)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, coef=self.coef, intercept=self.intercept, labels=np.array(self.labels))

    @classmethod
    def load(cls, path: str | Path) -> TrainedTierModel:
        """Read a model written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["coef"], data["intercept"], [str(x) for x in data["labels"]])
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot load tier classifier {path}: {exc}") from exc


class TierClassifier:
    """Classifies requests into configured tiers, with the trained model when one is given."""

    def __init__(
        self,
        tiers: Sequence[str],
        default_tier: str,
        min_confidence: float = 0.5,
        intent_tiers: Mapping[str, str] | None = None,
        trained: TrainedTierModel | None = None,
        embed: Embed | None = None,
    ) -> None:
        self.tiers = list(tiers)
        self.default_tier = default_tier
        self.min_confidence = min_confidence
        self.intent_tiers = {i: t for i, t in (intent_tiers or {}).items()}
        for intent in INTENTS:
            self.intent_tiers.setdefault(intent, intent if intent in self.tiers else default_tier)
        self.trained = trained if embed is not None else None
        self._embed = embed

    def classify(self, body: Mapping[str, Any]) -> Classification:
        """Classify one request."""
        return self.classify_many([body])[0]

    def classify_many(self, bodies: Sequence[Mapping[str, Any]]) -> list[Classification]:
        """Classify several requests (embedding them in one batch when the trained model is used)."""
        signals = [read_signals(b) for b in bodies]
        if self.trained is None or self._embed is None:
            raw = [
                (*softmax_confidence(heuristic_scores(s)), "heuristic", heuristic_scores(s)) for s in signals
            ]
        else:
            probs = self.trained.predict_proba(self._embed([s.text or " " for s in signals]))
            raw = []
            for row in probs:
                scores = dict(zip(self.trained.labels, (float(p) for p in row), strict=True))
                best = max(scores, key=lambda k: scores[k])
                raw.append((best, scores[best], "trained", scores))
        return [self._decide(s, *r) for s, r in zip(signals, raw, strict=True)]

    def _decide(
        self, signals: Signals, intent: str, confidence: float, source: str, scores: Mapping[str, float]
    ) -> Classification:
        if signals.json_format:
            # A response_format is an explicit contract, stronger than any text signal.
            return Classification(self.intent_tiers["structured"], 1.0, "response_format", scores)
        tier = self.intent_tiers.get(intent, intent)
        if confidence < self.min_confidence or tier not in self.tiers:
            return Classification(self.default_tier, confidence, f"{source}:below_confidence", scores)
        return Classification(tier, confidence, source, scores)
