"""The SQLite schema of the store, as migrations applied in order (``PRAGMA user_version`` counts
them); append a migration, never edit one that has shipped."""

MIGRATIONS: list[str] = [
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
    """
    CREATE TABLE purges (
        repo TEXT PRIMARY KEY,
        requested_at REAL NOT NULL
    );
    """,
    """
    ALTER TABLE entries ADD COLUMN tokens BLOB;
    ALTER TABLE entries ADD COLUMN tokens_model TEXT;
    """,
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
    """
    ALTER TABLE repo_stats ADD COLUMN purges INTEGER NOT NULL DEFAULT 0;
    """,
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
]
