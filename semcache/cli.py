"""The ``semcache`` command: serve the sidecar, and inspect or purge the cache it serves from.

The management commands work on the same data directory as a running server; the server notices
their changes (SQLite's data_version) and reconciles its indexes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from semcache.cache import SemanticCache
from semcache.config import Settings
from semcache.errors import SemcacheError
from semcache.keys import validate_repo

app = typer.Typer(help="semcache: a semantic response cache for LLM traffic.", no_args_is_help=True)
console = Console()

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="overrides SEMCACHE_DATA_DIR")]


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=1)


def _open_cache(data_dir: Path | None) -> SemanticCache:
    try:
        return SemanticCache(_settings(data_dir))
    except SemcacheError as exc:
        _fail(exc.message)
        raise


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="overrides SEMCACHE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides SEMCACHE_PORT")] = None,
) -> None:
    """Start the sidecar (loads the embedding model, exporting it to ONNX on first start)."""
    import uvicorn

    from semcache.server import create_app

    settings = _settings(data_dir, host=host, port=port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console.print(f"semcache on http://{settings.host}:{settings.port}  data: {settings.data_dir}")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


@app.command()
def purge(
    repo: str,
    context_file: Annotated[str | None, typer.Option(help="only entries that depended on this path")] = None,
    data_dir: DataDir = None,
) -> None:
    """Delete a repo's cache, or only the entries that depended on one context file."""
    cache = _open_cache(data_dir)
    try:
        validate_repo(repo)
        if context_file is None:
            console.print(f"purged repo {repo}: {cache.purge(repo)} entries removed")
        else:
            removed = cache.purge_context_file(repo, context_file)
            console.print(f"purged {removed} entries of {repo} that depended on {context_file}")
    except SemcacheError as exc:
        _fail(exc.message)
    finally:
        cache.close()


@app.command()
def stats(repo: Annotated[str | None, typer.Argument()] = None, data_dir: DataDir = None) -> None:
    """Entries, hits, misses, hit rate and tokens saved per repo; spend and savings per tier if routed."""
    settings = _settings(data_dir)
    cache = _open_cache(data_dir)
    try:
        repos = [validate_repo(repo)] if repo else list(cache.repos())
        table = Table("repo", "entries", "hits (exact/semantic)", "misses", "hit rate", "tokens saved")
        for name in repos:
            s = cache.stats(name)
            rate = f"{s.hit_rate:.1%}" if s.hit_rate is not None else "-"
            table.add_row(name, str(s.entries), f"{s.hits} ({s.hits_exact}/{s.hits_semantic})", str(s.misses),
                          rate, str(s.tokens_saved))  # fmt: skip
        console.print(table)
        if settings.router_config is not None and settings.ledger_path.exists():
            console.print(_spend_table(settings, repo))
    except SemcacheError as exc:
        _fail(exc.message)
    finally:
        cache.close()


def _spend_table(settings: Settings, repo: str | None) -> Table:
    from prometheus_client import CollectorRegistry

    from router import Ledger, load_registry

    ledger = Ledger(settings.ledger_path, load_registry(settings.router_config), CollectorRegistry())
    try:
        rows = ledger.stats(repo)
    finally:
        ledger.close()
    table = Table(
        "repo", "tier", "routed requests", "spend $", "cache hits", "saved $", "hit rate", title="router"
    )
    for row in rows:
        table.add_row(row.repo, row.tier, str(row.requests), f"{row.spend_usd:.4f}", str(row.hits),
                      f"{row.saved_usd:.4f}", f"{row.hit_rate:.1%}")  # fmt: skip
    return table


@app.command("router-train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def router_train(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """Train the router's tier classifier on prompt embeddings and report held-out accuracy.

    Options after the command go to ``python -m router.train`` (--examples, --out, --test-size, --seed);
    with a router configured, the ledger's routing feedback is added to the examples.
    """
    from router.train import main as train_main

    settings = _settings(data_dir)
    args = list(ctx.args)
    if settings.router_config is not None and settings.ledger_path.exists() and "--ledger" not in args:
        args += ["--ledger", str(settings.ledger_path), "--registry", str(settings.router_config)]
    raise typer.Exit(code=train_main(args))


@app.command()
def repos(data_dir: DataDir = None) -> None:
    """List the repos in the cache with their entry counts."""
    cache = _open_cache(data_dir)
    try:
        table = Table("repo", "entries")
        for name, count in cache.repos().items():
            table.add_row(name, str(count))
        console.print(table)
    finally:
        cache.close()


if __name__ == "__main__":
    app()
