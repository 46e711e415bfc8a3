"""Purging a repo: at once from the cache's point of view, in the background for the store.

A purge first marks the repo in the store and empties its index, so from then on the repo serves and
stores nothing. Its rows then go in short batches (a purge of 1 M entries takes about a minute): other
repos wait for one batch at most. The mark survives a restart, and the next start finishes the purge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from semcache.index.sets import IndexSet
from semcache.store.sqlite import Store

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 5.0


class Purges:
    """The purges under way in this process, run in the caller's thread or in background threads."""

    def __init__(
        self,
        store: Store,
        indexes: IndexSet,
        clock: Callable[[], float] = time.time,
        on_finished: Callable[[str], None] = lambda repo: None,
    ) -> None:
        self._store = store
        self._on_finished = on_finished  # called with the repo once its rows are gone
        self._indexes = indexes
        self._clock = clock
        self._remaining: dict[str, int] = {}  # repo -> rows not yet deleted, while purged
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def __contains__(self, repo: str) -> bool:
        return repo in self._remaining

    def remaining(self, repo: str) -> int | None:
        """Rows a purge under way has still to delete (kept as it goes, so asking reads no rows;
        counting a 1 M-entry repo under the store's lock slowed its purge from 64 s to 79 s when polled
        ten times a second); None when the repo is not being purged."""
        return self._remaining.get(repo)

    def begin(self, repo: str) -> int:
        """Mark the repo as purged and empty its index; returns how many entries it still holds."""
        with self._indexes.lock:
            self._store.mark_purge(repo, self._clock())
            self._indexes.empty(repo)
            self._remaining[repo] = entries = self._store.count(repo)
            return entries

    def finish(self, repo: str, batch: int = 500) -> int:
        """Delete the repo's rows in batches of ``batch``, then its counters, feedback and index file;
        returns the entries removed. Stops early (the mark stays) when the cache closes."""
        removed, started = 0, time.monotonic()
        reported = started
        while not self._stopping.is_set() and (deleted := self._store.delete_some(repo, batch)):
            removed += deleted
            self._remaining[repo] = left = max(self._remaining.get(repo, 0) - deleted, 0)
            if time.monotonic() - reported >= PROGRESS_EVERY_S:  # a big repo takes a minute: say how far
                reported = time.monotonic()
                eta = left * (reported - started) / removed
                log.info("purging repo %s: %d rows left, about %.0f s to go", repo, left, eta)
            time.sleep(0.002)  # let waiting lookups take the store's lock before the next batch does
        if self._stopping.is_set():
            return removed
        with self._indexes.lock:
            removed += self._store.purge_repo(repo)  # also clears the mark
            self._indexes.drop(repo)
            self._remaining.pop(repo, None)
        self._on_finished(repo)
        return removed

    def run(self, repo: str, batch: int = 500) -> int:
        """Purge a repo now, in the calling thread; returns the entries removed."""
        self.begin(repo)
        return self.finish(repo, batch)

    def start(self, repo: str) -> int:
        """Begin a purge and finish it in a background thread (one per repo); returns the entries the
        repo held when it began."""
        entries = self.begin(repo)
        with self._lock:
            running = self._threads.get(repo)
            if running is None or not running.is_alive():
                thread = threading.Thread(
                    target=self._finish_logged, args=(repo,), name=f"purge-{repo}", daemon=True
                )
                self._threads[repo] = thread
                thread.start()
        return entries

    def resume(self) -> list[str]:
        """Finish, in the background, the purges a previous run marked but did not finish."""
        pending = self._store.pending_purges()
        for repo in pending:
            log.info("finishing the purge of repo %s", repo)
            self.start(repo)
        return pending

    def stop(self) -> None:
        """Stop background purges after their current batch (their marks stay for the next start)."""
        self._stopping.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join()

    def _finish_logged(self, repo: str) -> None:
        started = time.perf_counter()
        try:
            removed = self.finish(repo)
        except Exception:  # a background thread has no caller to raise to; the mark stays
            log.exception("purge of repo %s failed; it is retried at the next start", repo)
            return
        if not self._stopping.is_set():
            log.info("purged repo %s: %d entries in %.1f s", repo, removed, time.perf_counter() - started)
