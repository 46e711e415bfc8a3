"""Whether auth is on: ``SEMCACHE_AUTH`` is ``required``, ``off`` or ``auto`` (the default: on when the
sidecar binds to an address other than loopback, or once any key exists)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from semcache.errors import ConfigError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


@dataclass(frozen=True)
class AuthMode:
    """Whether requests need a key, and why (shown at start and in ``/healthz``)."""

    on: bool
    reason: str


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` reaches only this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def auth_mode(setting: str, host: str, active_keys: int) -> AuthMode:
    """Resolve the setting for a bind address; raises :class:`ConfigError` when auth must be on and no
    key exists yet (nobody could use the sidecar)."""
    loopback = is_loopback(host)
    if setting == "off":
        where = "loopback" if loopback else f"{host}, reachable from other machines"
        return AuthMode(False, f"off (SEMCACHE_AUTH=off, bound to {where})")
    if setting == "required":
        mode = AuthMode(True, "on (SEMCACHE_AUTH=required)")
    elif not loopback:
        mode = AuthMode(True, f"on (bound to {host}, not loopback)")
    elif active_keys:
        mode = AuthMode(True, "on (keys exist)")
    else:
        return AuthMode(False, "off (loopback only and no keys: anyone on this machine can use every repo)")
    if not active_keys:
        raise ConfigError(
            f"auth is {mode.reason[3:-1]} but no key exists: create one first with "
            "`semcache keys create --admin --name admin` (or set SEMCACHE_AUTH=off to run open)"
        )
    return mode
