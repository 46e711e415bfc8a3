"""Pre-flight token estimates, without a network call or a provider tokenizer.

The providers' BPE tokenizers are not installed, so the estimate is a heuristic that errs high: it
takes the larger of a character count (English prose runs ~4 characters per token; code and non-Latin
text run denser, so 3.5 is used) and a word count (~1.3 tokens per word), plus the per-message framing
the chat format adds. Erring high only means a borderline request skips to a model with a larger
window, never that an oversized request is sent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

CHARS_PER_TOKEN = 3.5
TOKENS_PER_WORD = 1.3
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3
DEFAULT_REPLY_TOKENS = 512

_WORD = re.compile(r"\w+|[^\w\s]")


def estimate_text_tokens(text: str) -> int:
    """Estimate the tokens of one string."""
    if not text:
        return 0
    words = len(_WORD.findall(text))
    return max(math.ceil(len(text) / CHARS_PER_TOKEN), math.ceil(words * TOKENS_PER_WORD))


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def estimate_prompt_tokens(messages: Iterable[Mapping[str, Any]], tools: Any = None) -> int:
    """Estimate the input tokens of a chat request: every message (system prompt included) and tools."""
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS + estimate_text_tokens(message_text(message))
        if message.get("tool_calls"):
            total += estimate_text_tokens(json.dumps(message["tool_calls"]))
    if tools:
        total += estimate_text_tokens(json.dumps(tools))
    return total


def estimate_request_tokens(body: Mapping[str, Any]) -> int:
    """Input estimate plus the reply the request asks room for (``max_tokens`` or a default)."""
    reply = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_REPLY_TOKENS
    return estimate_prompt_tokens(body.get("messages") or [], body.get("tools")) + int(reply)
