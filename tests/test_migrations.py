"""The store's named migrations, and stores made before migrations had names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from semcache.store.migrations import SCHEMA
from semcache.store.sqlite import Store


def test_a_new_store_applies_every_migration_once(tmp_path: Path) -> None:
    Store(tmp_path / "a.db").close()
    store = Store(tmp_path / "a.db")
    names = [row[0] for row in store.read("SELECT name FROM _sqlite_migrations ORDER BY id", plain=True)]
    assert names == [name for name, _ in SCHEMA]
    store.close()


def test_a_store_counted_by_user_version_keeps_its_rows_and_gets_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)  # what the numbered migrations left: six applied, user_version 6
    for _, sql in SCHEMA[:6]:
        conn.executescript(sql)
    conn.execute(
        "INSERT INTO feedback (repo, scope_key, entry_id, query_prompt, cached_prompt, label, created_at) "
        "VALUES ('acme', 's', 1, 'q', 'c', 0, 1.0)"
    )
    conn.execute("PRAGMA user_version = 6")
    conn.commit()
    conn.close()
    store = Store(path)
    assert len(store.feedback("acme")) == 1
    assert store.read("SELECT COUNT(*) FROM api_keys", plain=True)[0][0] == 0  # the 7th ran
    assert store.read("SELECT COUNT(*) FROM _sqlite_migrations", plain=True)[0][0] == len(SCHEMA)
    store.close()
