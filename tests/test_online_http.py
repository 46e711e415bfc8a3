"""Online calibration end to end over real HTTP and real SQLite: a clustered stream's near misses, judged
against the stub's per-cluster answers, move a repo's threshold from a setting that serves nothing to one
that serves paraphrases within the budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from stub_upstream import create_stub_app

from semcache.http.app import create_app
from tests.helpers import sidecar_settings
from tests.servers import serve, wait_for

TOPICS = [
    "reverse a list",
    "sort a dictionary by value",
    "read a CSV file",
    "merge two dictionaries",
    "convert a string to an integer",
    "get the current date",
    "check if a file exists",
    "count the words in a string",
    "download a web page",
    "parse a JSON document",
    "create a virtual environment",
    "generate a random number",
]
TEMPLATES = [
    "How do I {} in Python?",
    "How can I {} using Python?",
    "What is the best way to {} in Python?",
    "Python: how to {}?",
    "In Python, how would I {}?",
    "How to {} with Python",
    "Show me how to {} in Python.",
    "What's the Python code to {}?",
]
# Each phrasing in turn over every topic: a topic's first prompt meets only other topics (a wrong near
# miss), its later ones their own (right near misses, once the fit takes over, right hits).
STREAM = [(template.format(topic), topic) for template in TEMPLATES for topic in TOPICS]
REPO = {"X-Semcache-Repo": "acme"}


@pytest.fixture(scope="module")
def topic_stub() -> Iterator[str]:
    with serve(create_stub_app(dict(STREAM))) as url:
        yield url


def test_a_clustered_stream_moves_the_threshold_to_serve_within_the_budget(
    tmp_path: Path, model_dir: Path, embedder, topic_stub: str
) -> None:
    # The cosine setting 0.99 serves no paraphrase; 60 labels from the exact judge are enough to fit.
    settings = sidecar_settings(
        tmp_path / "data",
        model_dir,
        topic_stub,
        min_similarity=0.99,
        decision_min_similarity=0.5,
        audit_rate=1.0,
        audit_judge="exact",
        online_min_labels=60,
    )
    served: list[tuple[str, str]] = []  # (topic asked, answer served) for every semantic hit
    with serve(create_app(settings, embedder=embedder)) as url:
        for prompt, topic in STREAM:
            body = {"model": "stub", "messages": [{"role": "user", "content": prompt}]}
            response = httpx.post(f"{url}/v1/chat/completions", json=body, headers=REPO, timeout=30)
            assert response.status_code == 200, response.text
            if response.headers["X-Semcache"] == "hit-semantic":
                served.append((topic, response.json()["choices"][0]["message"]["content"]))
        stats = f"{url}/v1/cache/repos/acme/stats"
        wait_for(lambda: httpx.get(stats).json()["decision"]["source"] == "online")
        decision = httpx.get(stats).json()["decision"]
    share = decision["labels"]["false_hit_share"]
    assert decision["threshold"] is not None and decision["semantic_hits"], decision
    assert share["estimate"] <= decision["false_hit_budget"]
    assert len(served) >= 10  # paraphrases the 0.99 setting would have missed
    wrong = [hit for hit in served if hit[1] != f"cluster {hit[0]}"]
    assert len(wrong) <= 0.05 * len(served) + 1, wrong
