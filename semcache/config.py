"""Settings: the only module that reads the environment (prefix ``SEMCACHE_``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from semcache.errors import ConfigError

# The cosine a candidate needs before the learned decision scores it: a cache's nearest neighbours under
# it are almost never the same question (in an earlier stream measurement, 81 % of the hits served at
# cosine 0.5-0.7 were wrong), and the shipped thresholds are calibrated by lookup with this floor.
DECISION_FLOOR = 0.7


class Settings(BaseSettings):
    """Everything the sidecar and the CLI can be configured with.

    Every field can be set as ``SEMCACHE_<FIELD>`` in the environment (or a ``.env`` file).
    """

    model_config = SettingsConfigDict(env_prefix="SEMCACHE_", env_file=".env", extra="ignore")

    @field_validator("online_judges", "router_aliases", mode="before")
    @classmethod
    def _list_from_text(cls, value: object) -> object:
        """A list setting from the environment: a JSON list, or names separated by commas."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("audit_rates")
    @classmethod
    def _rates_are_shares(cls, rates: dict[str, float]) -> dict[str, float]:
        bad = {repo: rate for repo, rate in rates.items() if not 0 <= rate <= 1}
        if bad:
            raise ValueError(f"audit rates must be between 0 and 1: {bad}")
        return rates

    data_dir: Path = Field(Path("~/.semcache").expanduser(), description="SQLite store, FAISS indexes")
    embedding_dir: Path | None = Field(
        None, description="where the ONNX export of the embedding model is kept; default <data_dir>/model"
    )
    embedding_backend: str = Field("onnx", description="'onnx' (default) or 'torch'")
    embedding_precision: Literal["int8", "fp32"] = Field(
        "int8", description="ONNX weights: int8 (per-channel dynamic quantization, ~2x faster) or fp32"
    )
    embedding_threads: int = Field(2, gt=0, le=64, description="onnxruntime threads of one embedding pass")
    store_url: str | None = Field(
        None,
        description="postgresql://… puts the store and the vector search in PostgreSQL with pgvector, "
        "shared by every replica; unset: SQLite + FAISS under the data dir",
    )
    store_pool_size: int = Field(8, gt=0, le=256, description="PostgreSQL connections per replica")
    host: str = "127.0.0.1"
    port: int = 8765
    auth: Literal["auto", "required", "off"] = Field(
        "auto", description="keys: auto = required when bound off loopback or once any key exists"
    )
    feedback_per_minute: float = Field(
        30.0, gt=0, description="wrong-hit reports a key may send a minute (each evicts an entry)"
    )

    upstream_base_url: str = "https://api.openai.com/v1"
    upstream_api_key_env: str = Field("OPENAI_API_KEY", description="name of the env var holding the key")
    upstream_timeout_s: float = 60.0

    default_ttl_s: float = Field(7 * 24 * 3600, gt=0, description="absolute lifetime of an entry")
    max_ttl_s: float = Field(365 * 24 * 3600, gt=0, description="largest ttl_s a request may ask for")
    max_entries_per_repo: int = Field(100_000, gt=0, description="past this, least recently hit go")
    min_similarity: float = Field(
        0.90, gt=0, le=1, description="cosine threshold of the cosine decision when no tuned one applies"
    )
    top_k: int = Field(4, gt=0, le=64, description="candidates the decision looks at")
    ann_min_entries: int = Field(
        50_000, gt=0, description="past this many entries a repo's index becomes approximate (exact below)"
    )
    ann_structure: Literal["ivf", "hnsw"] = Field(
        "ivf", description="the approximate structure: IVF lists of int8 vectors, or an HNSW graph"
    )
    ann_nprobe: int = Field(96, gt=0, description="IVF: lists scanned per query (latency vs recall)")
    ann_m: int = Field(32, ge=4, le=128, description="HNSW: graph neighbours per node (memory vs recall)")
    ann_ef_construction: int = Field(
        40, gt=0, description="HNSW: build-time search width (build time vs recall)"
    )
    ann_ef_search: int = Field(128, gt=0, description="HNSW: query-time search width (latency vs recall)")
    ann_max_tombstone_fraction: float = Field(
        0.1, gt=0, le=1, description="HNSW: rebuild the graph once removed entries pass this share of it"
    )
    max_prompt_chars: int = Field(200_000, gt=0, description="larger requests are refused with 413")
    max_store_mb: float | None = Field(
        None,
        gt=0,
        description="largest size of the SQLite store; past it writes fail as on a full disk "
        "and the cache degrades: it serves what it holds and stops storing",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="larger request bodies are refused with 413 before they are read"
    )
    max_messages: int = Field(1024, gt=0, description="chat requests with more messages are refused with 400")
    sweep_interval_s: float = Field(60.0, gt=0, description="how often expired entries are swept")
    embed_max_batch: int = Field(
        1, gt=0, description="most texts one forward pass embeds (on 2 cores batching costs more per text)"
    )
    embed_workers: int = Field(2, gt=0, le=16, description="threads running embedding passes side by side")
    embed_max_wait_ms: float = Field(
        0.0, ge=0, description="extra wait for company; 0 = batch whatever queued during the last pass"
    )
    metrics_max_repos: int = Field(
        100, gt=0, description='repos given series of their own on /metrics; the rest share repo="(other)"'
    )
    access_log: bool = Field(
        False, description="log every HTTP request (uvicorn's access log); the metrics count them anyway"
    )
    worker_threads: int = Field(
        8, gt=0, le=256, description="threads that run lookups and stores off the event loop"
    )
    decision: str = Field(
        "learned", description="the hit decision: 'learned' (shipped) or 'cosine'; see semcache.decision"
    )
    decision_dir: Path | None = Field(
        None,
        description="a decision model trained with training.train_head and calibrated with "
        "training.calibrate, used instead of the shipped one (default: semcache/decision/model)",
    )
    false_hit_budget: float = Field(
        0.05, gt=0, lt=1, description="largest share of served hits that may be wrong (per request too)"
    )
    decision_min_similarity: float = Field(
        DECISION_FLOOR, gt=0, le=1, description="cosine pre-filter: candidates below it are never scored"
    )
    decision_top_n: int = Field(
        2,
        gt=0,
        le=16,
        description="most candidates the decision scores per lookup, best first, until one hits",
    )

    audit_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        description="share of semantic hits also asked upstream in the background and judged; "
        "0 turns the audit and online calibration off",
    )
    audit_rates: dict[str, float] = Field(
        {}, description='per-repo audit rates, e.g. {"acme.api": 0.1} (JSON in the environment)'
    )
    audit_judge: Literal["exact", "embedding", "llm"] | None = Field(
        None,
        description="how answers are compared: 'exact', 'embedding' or 'llm'; default llm with a "
        "router or an audit_judge_model, else embedding",
    )
    audit_judge_model: str | None = Field(
        None,
        description="without a router, the model the llm judge asks through the one upstream (e.g. "
        "gpt-4o-mini); with a router the judge asks its cheapest tier",
    )
    audit_queue_size: int = Field(
        256, gt=0, description="audit jobs waiting at most; more are dropped and counted"
    )
    online_judges: Annotated[list[Literal["exact", "embedding", "llm"]], NoDecode] = Field(
        ["exact", "llm"],
        description="judges whose labels may move a repo's threshold (comma-separated or a JSON list); "
        "the embedding judge's labels are kept and shown but move nothing unless it is listed: it calls "
        "most right answers worded apart wrong, which would switch semantic hits off",
    )
    online_min_labels: int = Field(
        200, gt=0, description="labels a repo needs before its own threshold replaces the offline one"
    )
    online_window: int = Field(5000, gt=0, description="most recent labels a repo's online fit uses")

    router_config: Path | None = Field(
        None, description="router registry TOML; when set, misses go through the tiered router"
    )
    router_aliases: Annotated[list[str], NoDecode] = Field(
        ["auto"], description="model names that let the router pick the tier"
    )
    router_classifier: Path | None = Field(
        None,
        description="trained tier classifier (.npz); default: the registry's classifier_path, else heuristic",
    )

    def judge_name(self, routed: bool | None = None) -> str:
        """The audit's judge: the one set, else ``llm`` when misses go through the router (``routed``;
        default: a router is configured) or a judge model is named, else ``embedding``."""
        routed = self.router_config is not None if routed is None else routed
        return self.audit_judge or ("llm" if routed or self.audit_judge_model else "embedding")

    def ann_params(self) -> dict[str, object]:
        """The ``ann_*`` settings without their prefix: the keyword arguments of the index's
        ``AnnParams``."""
        return {name[4:]: getattr(self, name) for name in type(self).model_fields if name.startswith("ann_")}

    @property
    def db_path(self) -> Path:
        """The SQLite file that is the cache's source of truth."""
        return self.data_dir / "semcache.db"

    @property
    def index_dir(self) -> Path:
        """Where each repo's FAISS index is persisted."""
        return self.data_dir / "index"

    @property
    def ledger_path(self) -> Path:
        """The router's ledger (calls, spend, savings)."""
        return self.data_dir / "ledger.db"

    @property
    def model_dir(self) -> Path:
        """Where the embedding model's ONNX export lives."""
        return self.embedding_dir or self.data_dir / "model"

    def upstream_api_key(self) -> str:
        """The upstream key, read from the env var that ``upstream_api_key_env`` names."""
        import os

        return os.environ.get(self.upstream_api_key_env, "")


def load_settings(**values: object) -> Settings:
    """The settings from the environment, with ``values`` over them; a value that does not parse raises
    :class:`ConfigError` with one line per bad setting, named as it is set (``SEMCACHE_<FIELD>``)."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        lines = [f"SEMCACHE_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors() if e["loc"]]
        raise ConfigError("bad setting: " + "; ".join(lines or [str(exc)])) from exc
    except SettingsError as exc:  # the environment held a value that is not valid JSON for its field
        raise ConfigError(f"bad setting: {exc}") from exc
