"""The store's schema as named migrations, applied in order by sqlite-utils' ``Migrations`` (each once,
recorded by name in ``_sqlite_migrations``). Append a migration; never edit one that has shipped.

Stores made before the migrations had names counted them in ``PRAGMA user_version``; :func:`migrate`
records that many as applied before it applies the rest.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from sqlite_utils import Database, Migrations

SCHEMA: list[tuple[str, str]] = [
    (
        "0001_entries_stats_feedback",
        """
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        repo TEXT NOT NULL,
        scope_key TEXT NOT NULL,
        exact_key TEXT NOT NULL UNIQUE,
        prompt TEXT NOT NULL,
        response TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        embedding BLOB NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        hit_count INTEGER NOT NULL DEFAULT 0,
        last_hit_at REAL
    );
    CREATE INDEX entries_scope ON entries (repo, scope_key);
    CREATE INDEX entries_expiry ON entries (expires_at);
    CREATE INDEX entries_recency ON entries (repo, last_hit_at, created_at);
    CREATE TABLE context_files (
        entry_id INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
        repo TEXT NOT NULL,
        path TEXT NOT NULL,
        sha TEXT NOT NULL
    );
    CREATE INDEX context_files_path ON context_files (repo, path);
    CREATE INDEX context_files_entry ON context_files (entry_id);
    CREATE TABLE repo_stats (
        repo TEXT PRIMARY KEY,
        hits_exact INTEGER NOT NULL DEFAULT 0,
        hits_semantic INTEGER NOT NULL DEFAULT 0,
        misses INTEGER NOT NULL DEFAULT 0,
        tokens_saved INTEGER NOT NULL DEFAULT 0,
        generation INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        repo TEXT NOT NULL,
        scope_key TEXT NOT NULL,
        query_prompt TEXT NOT NULL,
        cached_prompt TEXT NOT NULL,
        entry_id INTEGER,
        similarity REAL,
        label INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX feedback_repo ON feedback (repo);
    """,
    ),
    (
        "0002_thresholds",
        """
    CREATE TABLE thresholds (
        repo TEXT NOT NULL,
        verifier TEXT NOT NULL,
        budget REAL NOT NULL,
        threshold REAL NOT NULL,
        pairs INTEGER NOT NULL,
        fitted_at REAL NOT NULL,
        PRIMARY KEY (repo, verifier, budget)
    );
    """,
    ),
    (
        "0003_purges",
        """
    CREATE TABLE purges (
        repo TEXT PRIMARY KEY,
        requested_at REAL NOT NULL
    );
    """,
    ),
    (
        "0004_token_states",
        """
    ALTER TABLE entries ADD COLUMN tokens BLOB;
    ALTER TABLE entries ADD COLUMN tokens_model TEXT;
    """,
    ),
    (
        "0005_labels_and_audit_stats",
        """
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        repo TEXT NOT NULL,
        entry_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        score REAL NOT NULL,
        similarity REAL NOT NULL,
        label INTEGER NOT NULL,
        weight REAL NOT NULL,
        source TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX labels_repo ON labels (repo, model, id);
    CREATE INDEX labels_expiry ON labels (expires_at);
    CREATE TABLE audit_stats (
        repo TEXT PRIMARY KEY,
        audits INTEGER NOT NULL DEFAULT 0,
        judge_failures INTEGER NOT NULL DEFAULT 0,
        overflow INTEGER NOT NULL DEFAULT 0
    );
    """,
    ),
    (
        "0006_purge_epochs",
        """
    ALTER TABLE repo_stats ADD COLUMN purges INTEGER NOT NULL DEFAULT 0;
    """,
    ),
    (
        "0007_api_keys_and_admin_log",
        """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        repos TEXT NOT NULL,
        default_repo TEXT,
        admin INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        revoked_at REAL,
        requests INTEGER NOT NULL DEFAULT 0,
        hits INTEGER NOT NULL DEFAULT 0,
        denied INTEGER NOT NULL DEFAULT 0,
        last_used_at REAL
    );
    CREATE TABLE admin_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    ),
    (
        "0008_label_judges",
        """
    ALTER TABLE labels ADD COLUMN judge TEXT NOT NULL DEFAULT '';
    """,
    ),
]

migrations = Migrations("semcache")


def _runs(sql: str) -> Callable[[Database], None]:
    def run(db: Database) -> None:
        # One statement at a time, inside the migration's transaction (executescript would commit).
        for statement in sql.split(";"):
            if statement.strip():
                db.execute(statement)

    return run


for _name, _sql in SCHEMA:
    migrations(name=_name)(_runs(_sql))


def migrate(db: Database) -> None:
    """Bring the store's schema up to date."""
    numbered = db.execute("PRAGMA user_version").fetchone()[0]
    if numbered and not migrations.applied(db):
        _adopt(db, numbered)
    migrations.apply(db)


def _adopt(db: Database, numbered: int) -> None:
    """Record the first ``numbered`` migrations as applied: a store from before migrations had names
    has them already (its ``user_version`` counted them)."""
    migrations.ensure_migrations_table(db)
    now = str(datetime.datetime.now(datetime.UTC))
    with db.atomic():
        db[migrations.migrations_table].insert_all(
            {"migration_set": migrations.name, "name": name, "applied_at": now}
            for name, _ in SCHEMA[:numbered]
        )
