"""Request normalization: the scope fingerprint, the exact-match key, and the text that is embedded.

The scope key hashes everything that changes the right answer except the last user message: repo,
model and sampling parameters, tools and response format, system prompt and earlier turns, and the
context files (path + content hash). Two requests share a cache entry only if their scopes are equal;
within a scope the last user message is matched exactly (exact key) or semantically (embedding).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from semcache.errors import InvalidRepo, InvalidRequest, PromptTooLarge

REPO_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # matched whole: no trailing newline
SCOPE_VERSION = 1
# Fields that change how an answer is delivered or billed, never what it says.
_DELIVERY_FIELDS = frozenset(
    {"messages", "stream", "stream_options", "user", "metadata", "store", "service_tier", "semcache"}
)


# The chat-completions fields the sidecar forwards upstream (OpenAI's API reference); a body with any
# other field is refused, so nothing unknown travels upstream unchecked.
CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
        "semcache",
    }
)


class ContextFile(BaseModel):
    """A file the answer depends on, by path and content hash."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=1024)
    sha: str = Field(min_length=1, max_length=128)


class CacheOptions(BaseModel):
    """Per-request cache options, sent as ``extra_body={"semcache": {...}}``."""

    model_config = ConfigDict(extra="forbid")
    repo: str | None = None
    context_files: list[ContextFile] = Field(default_factory=list, max_length=1000)
    ttl_s: float | None = Field(None, gt=0)
    min_similarity: float | None = Field(None, gt=0, le=1)
    false_hit_budget: float | None = Field(None, gt=0, lt=1)
    no_cache: bool = False
    no_store: bool = False
    tier: str | None = Field(None, min_length=1, max_length=64, description="force a router tier")


class Message(BaseModel):
    """One chat message; unknown fields (name, tool_calls, ...) are kept."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatBody(BaseModel):
    """The OpenAI chat-completions body, validated only as far as the cache needs."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    semcache: CacheOptions | None = None


@dataclass(frozen=True)
class CacheRequest:
    """A validated chat request with its cache keys."""

    repo: str
    body: dict[str, Any]
    prompt: str
    scope_key: str
    exact_key: str
    stream: bool = False
    options: CacheOptions = field(default_factory=CacheOptions)

    @property
    def model(self) -> str:
        """The model the client asked for."""
        return str(self.body["model"])

    @property
    def cacheable(self) -> bool:
        """Whether the request has text to match on (image-only prompts bypass the cache)."""
        return bool(self.prompt)


def validate_repo(repo: str | None) -> str:
    """Return ``repo`` if it is an allowed repo name, else raise :class:`InvalidRepo`."""
    if not repo:
        raise InvalidRepo("a repo is required: send the X-Semcache-Repo header or semcache.repo")
    if not isinstance(repo, str) or not REPO_PATTERN.fullmatch(repo):
        raise InvalidRepo(
            f"invalid repo name {repo[:80]!r}: use 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (write 'org/name' as 'org.name')"
        )
    return repo


def normalize_prompt(text: str) -> str:
    """The form used for exact matching: Unicode NFC, whitespace runs collapsed, ends trimmed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def parse_chat_request(
    payload: Any,
    *,
    header_repo: str | None = None,
    default_repo: str | None = None,
    max_prompt_chars: int = 200_000,
    max_messages: int = 1024,
) -> CacheRequest:
    """Validate an OpenAI chat body and compute its keys; raise :class:`InvalidRequest` if bad. The repo
    is the header's or the body's; ``default_repo`` (the key's) when neither names one."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    unknown = sorted(set(payload) - CHAT_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown chat-completions fields: {', '.join(map(repr, unknown[:10]))}")
    messages = payload.get("messages")
    if isinstance(messages, list) and len(messages) > max_messages:
        raise InvalidRequest(f"{len(messages)} messages; the limit is {max_messages}")
    try:
        chat = ChatBody.model_validate(payload)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from exc
    options = chat.semcache or CacheOptions()
    if header_repo and options.repo and header_repo != options.repo:
        raise InvalidRepo(f"X-Semcache-Repo {header_repo!r} and semcache.repo {options.repo!r} differ")
    repo = validate_repo(header_repo or options.repo or default_repo)
    total_chars = sum(len(json.dumps(m.content)) if m.content else 0 for m in chat.messages)
    if total_chars > max_prompt_chars:
        raise PromptTooLarge(f"the messages hold {total_chars} characters; the limit is {max_prompt_chars}")
    messages = [m.model_dump(mode="json", exclude_unset=True) for m in chat.messages]
    last_user = _last_user_index(messages)
    body = {k: v for k, v in payload.items() if k != "semcache"}
    body["messages"] = messages
    scope = scope_key(repo, body, last_user, options.context_files, options.tier)
    prompt = normalize_prompt(_text_of(messages[last_user].get("content")))
    return CacheRequest(
        repo=repo,
        body=body,
        prompt=prompt,
        scope_key=scope,
        exact_key=exact_key(scope, prompt),
        stream=chat.stream,
        options=options,
    )


def scope_key(
    repo: str, body: dict[str, Any], last_user: int, files: list[ContextFile], tier: str | None = None
) -> str:
    """Hash everything but the last user message's text that can change the right answer."""
    params = {k: v for k, v in body.items() if k not in _DELIVERY_FIELDS}
    messages = list(body["messages"])
    last = dict(messages[last_user])
    # Non-text parts (images, audio) of the last user message must match exactly, so they stay.
    content = last.get("content")
    last["content"] = [p for p in content if p.get("type") != "text"] if isinstance(content, list) else None
    messages[last_user] = {**last, "is_prompt": True}
    fingerprint = {
        "v": SCOPE_VERSION,
        "repo": repo,
        "params": params,
        "messages": messages,
        "context_files": sorted((f.path, f.sha) for f in files),
    }
    if tier is not None:  # a forced tier picks another model, so another answer
        fingerprint["tier"] = tier
    return _sha256(fingerprint)


def exact_key(scope: str, prompt: str) -> str:
    """The exact-match key: the scope plus the normalized last user message."""
    return _sha256({"scope": scope, "prompt": prompt})


def _sha256(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _last_user_index(messages: list[dict[str, Any]]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "user":
            return i
    raise InvalidRequest("messages must contain at least one message with role 'user'")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    return ""


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{where}: {error['msg']}")
    return "invalid request: " + "; ".join(problems)
