"""``semcache keys`` (create, list, revoke) and ``semcache admin-log``: keys and the admin log live in
the store, so these work on the data directory of a running server (and of every replica sharing it)."""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from semcache.access.issuing import issue_key
from semcache.config import Settings, load_settings
from semcache.errors import SemcacheError
from semcache.store.api_keys import KeyStore
from semcache.store.sqlite import Store


def open_store(settings: Settings) -> Store:
    """The store alone (no vector search): SQLite under the data dir, or the shared PostgreSQL."""
    if settings.store_url:
        from semcache.embedding import DIM
        from semcache.store.postgres import PostgresStore

        return PostgresStore(settings.store_url, DIM)
    return Store(settings.db_path)


keys_app = typer.Typer(help="API keys: create, list and revoke.", no_args_is_help=True)
console = Console(stderr=True)  # the key itself goes alone to stdout
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="overrides SEMCACHE_DATA_DIR")]


def cli_actor() -> str:
    """How the admin log names a write made through the CLI."""
    return f"cli:{getpass.getuser()}"


@contextmanager
def key_store(data_dir: Path | None, store_url: str | None = None) -> Iterator[KeyStore]:
    """The keys of the store (the data directory's, or the shared database's), opened and closed after."""
    values = {"data_dir": data_dir, "store_url": store_url}
    try:
        store = open_store(load_settings(**{k: v for k, v in values.items() if v is not None}))
    except SemcacheError as exc:
        console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from exc
    try:
        yield KeyStore(store)
    except SemcacheError as exc:
        console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from exc
    finally:
        store.close()


@keys_app.command("create")
def create(
    repo: Annotated[list[str], typer.Option("--repo", help="repo pattern (glob: acme.*); repeatable")] = [],  # noqa: B006
    admin: Annotated[bool, typer.Option("--admin", help="may manage every repo and the keys")] = False,
    name: Annotated[str | None, typer.Option(help="a name for the key (default: made from its id)")] = None,
    default_repo: Annotated[str | None, typer.Option(help="the repo of requests that name none")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a key and print it once, alone on the last line (it is stored only as a hash)."""
    with key_store(data_dir) as keys:
        label = name or f"{'admin' if admin else 'client'}-{len(keys.all()) + 1}"
        token, record = issue_key(keys, label, repo, admin, default_repo)
        keys.log(cli_actor(), "create key", record.name, ",".join(record.repos))
    scope = "admin" if record.admin else f"repos {', '.join(record.repos)}"
    console.print(f"created key {record.name} (id {record.id}, {scope}); it is shown only now:")
    print(token)


@keys_app.command("list")
def list_keys(data_dir: DataDir = None) -> None:
    """Every key: id, name, scope, created / revoked, and its counts."""
    with key_store(data_dir) as keys:
        records = keys.all()
    table = Table("id", "name", "scope", "default repo", "created", "revoked", "requests", "hits", "denied")
    for r in records:
        scope = "admin" if r.admin else ", ".join(r.repos)
        table.add_row(
            r.id,
            r.name,
            scope,
            r.default_repo or "",
            _when(r.created_at),
            _when(r.revoked_at),
            str(r.requests),
            str(r.hits),
            str(r.denied),
        )
    Console().print(table)


@keys_app.command("revoke")
def revoke(id_or_name: str, data_dir: DataDir = None) -> None:
    """Revoke a key by id or name: every server sharing the store refuses it within a second or two."""
    with key_store(data_dir) as keys:
        record = keys.revoke(id_or_name)
        keys.log(cli_actor(), "revoke key", record.name)
    console.print(f"revoked key {record.name} (id {record.id})")


def admin_log(
    limit: Annotated[int, typer.Option(help="how many of the latest writes")] = 50, data_dir: DataDir = None
) -> None:
    """The latest admin writes (who, what, on what, when), newest first."""
    with key_store(data_dir) as keys:
        entries = keys.log_entries(max(1, limit))
    table = Table("when", "who", "action", "target", "detail")
    for e in entries:
        table.add_row(_when(e["at"]), e["actor"], e["action"], e["target"], e["detail"])
    Console().print(table)


def _when(at: float | None) -> str:
    return dt.datetime.fromtimestamp(at).isoformat(timespec="seconds") if at else ""
