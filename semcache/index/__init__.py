"""Per-repo vector indexes: the structure protocol and its flat, HNSW and IVF kinds, their files, and
the set of all repos' indexes kept in step with the store."""
