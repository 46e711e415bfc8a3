"""Request validation and cache keys: what must and must not share an entry."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semcache.errors import InvalidRepo, InvalidRequest, PromptTooLarge
from semcache.keys import normalize_prompt, parse_chat_request

BASE = {
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "How do I reverse a list in Python?"},
    ],
}


def parse(body: dict, repo: str = "acme") -> object:
    return parse_chat_request(body, header_repo=repo)


def changed(path: str, value: object) -> dict:
    body = copy.deepcopy(BASE)
    target = body
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return body


@pytest.mark.parametrize(
    "variant",
    [
        changed("model", "gpt-4o"),
        changed("temperature", 0.9),
        changed("top_p", 0.5),
        changed("max_tokens", 10),
        changed("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        changed("response_format", {"type": "json_object"}),
        changed("messages.0.content", "You are a terse assistant."),
        {**BASE, "messages": BASE["messages"][1:]},
        {
            **BASE,
            "messages": [
                *BASE["messages"][:1],
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                *BASE["messages"][1:],
            ],
        },
        {**BASE, "semcache": {"context_files": [{"path": "src/a.py", "sha": "abc"}]}},
    ],
    ids=[
        "model",
        "temperature",
        "top_p",
        "max_tokens",
        "tools",
        "response_format",
        "system",
        "no-system",
        "earlier-turns",
        "context-files",
    ],
)
def test_every_answer_changing_dimension_changes_the_scope(variant: dict) -> None:
    base, other = parse(BASE), parse(variant)
    assert other.prompt == base.prompt
    assert other.scope_key != base.scope_key
    assert other.exact_key != base.exact_key


def test_repo_and_context_file_content_change_the_scope() -> None:
    files = [{"path": "src/a.py", "sha": "abc"}]
    one = parse({**BASE, "semcache": {"context_files": files}})
    edited = parse({**BASE, "semcache": {"context_files": [{"path": "src/a.py", "sha": "def"}]}})
    assert one.scope_key != edited.scope_key
    assert parse(BASE, "acme").scope_key != parse(BASE, "other").scope_key


def test_delivery_fields_do_not_change_the_keys() -> None:
    variant = {
        **BASE,
        "stream": True,
        "user": "u1",
        "stream_options": {"include_usage": True},
        "semcache": {"ttl_s": 60, "no_store": True, "min_similarity": 0.99},
    }
    assert parse(variant).exact_key == parse(BASE).exact_key


def test_only_the_last_user_message_is_the_prompt() -> None:
    body = changed("messages.1.content", "  How do   I reverse\na list in Python? ")
    request = parse(body)
    assert request.prompt == "How do I reverse a list in Python?"
    assert request.exact_key == parse(BASE).exact_key


def test_context_file_order_does_not_matter() -> None:
    a, b = {"path": "a.py", "sha": "1"}, {"path": "b.py", "sha": "2"}
    one = parse({**BASE, "semcache": {"context_files": [a, b]}})
    two = parse({**BASE, "semcache": {"context_files": [b, a]}})
    assert one.scope_key == two.scope_key


def test_text_parts_are_the_prompt() -> None:
    body = changed("messages.1.content", [{"type": "text", "text": "How do I reverse a list in Python?"}])
    assert parse(body).prompt == "How do I reverse a list in Python?"


@pytest.mark.parametrize(
    ("body", "error", "needle"),
    [
        ([], InvalidRequest, "JSON object"),
        ({"model": "m"}, InvalidRequest, "messages"),
        ({"model": "m", "messages": []}, InvalidRequest, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, InvalidRequest, "model"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, InvalidRequest, "role"),
        ({"model": "m", "messages": [{"role": "system", "content": "x"}]}, InvalidRequest, "role 'user'"),
        ({**BASE, "semcache": {"min_similarity": 1.5}}, InvalidRequest, "min_similarity"),
        ({**BASE, "semcache": {"ttl_s": -1}}, InvalidRequest, "ttl_s"),
        ({**BASE, "semcache": {"bogus": 1}}, InvalidRequest, "bogus"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(body: object, error: type, needle: str) -> None:
    with pytest.raises(error, match=needle):
        parse(body)


@pytest.mark.parametrize("repo", [None, "", "a/b", "../etc", "-x", "x" * 200, "has space"])
def test_bad_repo_names_are_refused(repo: str | None) -> None:
    with pytest.raises(InvalidRepo):
        parse_chat_request(BASE, header_repo=repo)


def test_header_and_body_repo_must_agree() -> None:
    with pytest.raises(InvalidRepo, match="differ"):
        parse_chat_request({**BASE, "semcache": {"repo": "b"}}, header_repo="a")
    assert parse_chat_request({**BASE, "semcache": {"repo": "b"}}).repo == "b"


def test_oversize_prompt_is_refused() -> None:
    with pytest.raises(PromptTooLarge):
        parse_chat_request(changed("messages.1.content", "x" * 1000), header_repo="a", max_prompt_chars=500)


@given(st.text(max_size=200))
def test_normalization_is_idempotent(text: str) -> None:
    assert normalize_prompt(normalize_prompt(text)) == normalize_prompt(text)


@given(st.dictionaries(st.sampled_from(["temperature", "top_p", "seed", "n"]), st.integers(0, 5)))
def test_scope_key_ignores_field_order(params: dict) -> None:
    forward = {**BASE, **params}
    backward = dict(reversed(list(forward.items())))
    assert parse(forward).scope_key == parse(backward).scope_key
