"""Who may do what: keys (made, hashed, verified), the principal a request acts as, whether auth is on,
and per-key rate limits. The HTTP layer applies it (:mod:`semcache.http.auth`)."""
