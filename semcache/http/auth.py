"""Auth over HTTP: the key a request carries (``Authorization: Bearer``, as the OpenAI SDK sends its
``api_key``), the principal it stands for, and the checks routes make before they touch the cache.

With auth off every request acts as nobody (``None``) and every check passes."""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import Request

from semcache.access.keyring import Keyring, Principal
from semcache.access.limits import RateLimit
from semcache.access.mode import AuthMode
from semcache.errors import Forbidden, RateLimited, Unauthorized
from semcache.http.metrics import SidecarMetrics

# Slow-hash verifications at once (each takes a core for about 50 ms): a flood of made-up keys queues
# here instead of taking every worker thread.
VERIFY_AT_ONCE = 2


class Access:
    """Authenticates requests and checks what their key may do."""

    def __init__(
        self, mode: AuthMode, keyring: Keyring | None, feedback: RateLimit, metrics: SidecarMetrics
    ) -> None:
        self.mode = mode
        self.keyring = keyring if mode.on else None
        self._feedback = feedback
        self._metrics = metrics
        self._verifying = anyio.Semaphore(VERIFY_AT_ONCE)

    async def principal(self, request: Request) -> Principal | None:
        """The key's principal, or :class:`Unauthorized`; None when auth is off."""
        if self.keyring is None:
            return None
        token = bearer(request)
        if token is None:
            self._metrics.auth_denials.labels("401").inc()
            raise Unauthorized("this sidecar needs a key: send it as Authorization: Bearer <key>")
        known, principal = self.keyring.recall(token)
        if not known:
            async with self._verifying:
                principal = await anyio.to_thread.run_sync(self.keyring.verify, token)
        if principal is None:
            self._metrics.auth_denials.labels("401").inc()
            raise Unauthorized("the key is not valid (wrong, or revoked)")
        return principal

    async def attempt(self, request: Request) -> tuple[Principal | None, Unauthorized | None]:
        """Like :meth:`principal`, but the refusal is returned, not raised: a route can do the work a
        403 needs before raising it, so a wrong key and a right key for another repo take one time."""
        try:
            return await self.principal(request), None
        except Unauthorized as refused:
            return None, refused

    def check_repo(self, principal: Principal | None, repo: str) -> None:
        """:class:`Forbidden` unless the key reaches ``repo``."""
        if principal is not None and not principal.may_use(repo):
            self._deny(principal)
            raise Forbidden(f"key {principal.name!r} may not use repo {repo!r}")

    def check_admin(self, principal: Principal | None) -> None:
        """:class:`Forbidden` unless the key is an admin key."""
        if principal is not None and not principal.admin:
            self._deny(principal)
            raise Forbidden(f"key {principal.name!r} is not an admin key; this needs one")

    def check_feedback(self, principal: Principal | None) -> None:
        """:class:`RateLimited` when the key sent too many wrong-hit reports this minute (with auth off
        there is no key to limit)."""
        if principal is None:
            return
        wait = self._feedback.take(principal.key_id)
        if wait > 0:
            raise RateLimited(f"too many wrong-hit reports; try again in {wait:.0f} s", wait)

    def count(self, principal: Principal | None, hit: bool) -> None:
        """Count a served chat request (and whether it was a hit) for its key."""
        if principal is not None and self.keyring is not None:
            self.keyring.count(principal.key_id, "requests")
            if hit:
                self.keyring.count(principal.key_id, "hits")
            self._metrics.key_requests.labels(principal.name, "hit" if hit else "other").inc()

    def _deny(self, principal: Principal) -> None:
        self._metrics.auth_denials.labels("403").inc()
        if self.keyring is not None:
            self.keyring.count(principal.key_id, "denied")


def access_of(request: Request) -> Access:
    """The app's :class:`Access`."""
    return request.app.state.access


async def require_repo(request: Request, repo: str) -> Principal | None:
    """The request's key, which must reach ``repo`` (401 / 403 otherwise)."""
    access = access_of(request)
    principal = await access.principal(request)
    access.check_repo(principal, repo)
    return principal


async def require_admin(request: Request) -> Principal | None:
    """The request's key, which must be an admin key (401 / 403 otherwise)."""
    access = access_of(request)
    principal = await access.principal(request)
    access.check_admin(principal)
    return principal


def bearer(request: Request) -> str | None:
    """The Bearer token of the Authorization header, if any."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def actor(principal: Principal | None) -> str:
    """How the admin log names whoever made a write."""
    return principal.actor if principal is not None else "anonymous (auth off)"


async def log_admin_write(
    request: Request, principal: Principal | None, action: str, target: str, detail: str = ""
) -> None:
    """Record an admin write in the store's admin log (who, what, on what, when)."""
    keys = request.app.state.keys
    await anyio.to_thread.run_sync(keys.log, actor(principal), action, target, detail)
