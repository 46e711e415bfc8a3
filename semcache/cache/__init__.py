"""The cache core: one lookup (exact, then semantic, then the hit decision), what it returns, purges,
counters, write health and the per-repo calibration. It never imports :mod:`semcache.http`."""
