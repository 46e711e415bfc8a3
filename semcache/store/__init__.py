"""The source of truth: entries and their vectors, repo stats, thresholds, labels, and the schema's
migrations. The indexes under :mod:`semcache.index` are rebuilt from it."""
