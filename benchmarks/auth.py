"""What auth costs, and what its timing gives away, over loopback HTTP against ``semcache serve``.

1. **Exact-hit cost.** One data directory warmed with ``--prompts`` answers; the sidecar is started with
   ``SEMCACHE_AUTH=off`` and with ``required`` in turns (``--rounds`` each), and one client asks exact
   repeats. Reported: p50 / p99 of each and the ratio on / off, per round and over all.
2. **Timing.** With auth on, the same request (to repo ``acme``) alternates between keys:
   a wrong key sent again and again, and a right key for another repo sent again and again (both
   remembered after their first check); then fresh wrong keys and fresh right keys for another repo
   (each seen for the first time: each pays the slow hash). Reported: percentiles and the two-sample
   Kolmogorov-Smirnov distance of each pair.

    python -m benchmarks.auth                      # about two minutes
    python -m benchmarks.auth --rounds 2 --single 200 --timing 200
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.common import ROOT, machine, percentiles_ms, sidecar, stub, ticking, write_json
from semcache.access.issuing import issue_key
from semcache.store.api_keys import KeyStore
from semcache.store.sqlite import Store

MODEL = "bench-auth"


def make_keys(data_dir: Path, fresh: int) -> dict[str, object]:
    """An admin key, a client key for ``acme``, one for ``beta`` and ``fresh`` more for ``beta``."""
    store = Store(data_dir / "semcache.db")
    keys = KeyStore(store)
    made = {
        "admin": issue_key(keys, "admin", [], admin=True)[0],
        "acme": issue_key(keys, "acme", ["acme"])[0],
        "beta": issue_key(keys, "beta", ["beta"])[0],
        "fresh_beta": [issue_key(keys, f"beta-{i}", ["beta"])[0] for i in range(fresh)],
    }
    store.close()
    return made


def body(i: int) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": f"benchmark question number {i}"}]}


def timed(http: httpx.Client, url: str, payload: dict, headers: dict[str, str], expect: int) -> float:
    started = time.perf_counter()
    response = http.post(f"{url}/v1/chat/completions", json=payload, headers=headers)
    elapsed = time.perf_counter() - started
    assert response.status_code == expect, (response.status_code, response.text[:200])
    return elapsed


def exact_hits(url: str, key: str | None, prompts: int, n: int) -> list[float]:
    headers = {"X-Semcache-Repo": "acme"} | ({"Authorization": f"Bearer {key}"} if key else {})
    with httpx.Client(timeout=30) as http:
        for i in range(prompts):  # warm (misses the first time, hits after)
            timed(http, url, body(i), headers, 200)
        return [timed(http, url, body(i % prompts), headers, 200) for i in ticking(range(n), "exact hits")]


def ks_distance(a: list[float], b: list[float]) -> float:
    """Largest gap between the two samples' empirical distribution functions."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def timing(url: str, keys: dict, n: int) -> dict[str, object]:
    """Wrong key vs right key for another repo: repeated (remembered) and fresh (first check)."""
    repo = {"X-Semcache-Repo": "acme"}
    wrong = "sck-0123456789ab-" + "w" * 43
    samples: dict[str, list[float]] = {
        "wrong": [],
        "other_repo": [],
        "fresh_wrong": [],
        "fresh_other_repo": [],
    }
    rng = np.random.default_rng(7)
    with httpx.Client(timeout=30) as http:
        for _ in ticking(range(n), "401/403 pairs"):
            samples["wrong"].append(timed(http, url, body(0), repo | _bearer(wrong), 401))
            samples["other_repo"].append(timed(http, url, body(0), repo | _bearer(keys["beta"]), 403))
        for i, fresh in enumerate(ticking(keys["fresh_beta"], "fresh keys")):
            made_up = f"sck-{rng.integers(16**12):012x}-" + "".join(rng.choice(list("abcdef"), 43))
            samples["fresh_wrong"].append(timed(http, url, body(i), repo | _bearer(made_up), 401))
            samples["fresh_other_repo"].append(timed(http, url, body(i), repo | _bearer(fresh), 403))
    return {
        "percentiles_ms": {name: percentiles_ms(s) for name, s in samples.items()},
        "ks_repeated": ks_distance(samples["wrong"], samples["other_repo"]),
        "ks_fresh": ks_distance(samples["fresh_wrong"], samples["fresh_other_repo"]),
    }


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="semcache-auth-"))
    try:
        data = work / "data"
        data.mkdir()
        keys = make_keys(data, args.fresh)
        if args.model_dir:
            (data / "model").symlink_to(args.model_dir.resolve(), target_is_directory=True)
        rounds = []
        with stub() as upstream:
            for r in range(args.rounds):
                row = {}
                for mode in ("off", "required"):
                    with sidecar(data, upstream, auth=mode, audit_rate="0") as (url, _):
                        key = keys["acme"] if mode == "required" else None
                        row[mode] = percentiles_ms(exact_hits(url, key, args.prompts, args.single))
                row["ratio_p50"] = row["required"]["p50"] / row["off"]["p50"]
                row["ratio_mean"] = row["required"]["mean"] / row["off"]["mean"]
                rounds.append(row)
                print(
                    f"round {r + 1}: exact-hit p50 off {row['off']['p50']:.2f} ms, on "
                    f"{row['required']['p50']:.2f} ms, ratio {row['ratio_p50']:.3f}"
                )
            with sidecar(data, upstream, auth="required", audit_rate="0") as (url, _):
                times = timing(url, keys, args.timing)
        report(rounds, times, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(rounds: list[dict], times: dict, args: argparse.Namespace) -> None:
    ratios = [r["ratio_p50"] for r in rounds]
    print(
        f"\nexact hit, auth on / off, p50 ratio per round: {', '.join(f'{x:.3f}' for x in ratios)}; "
        f"median {float(np.median(ratios)):.3f} (target <= 1.1)"
    )
    print(f"\n{'401/403 timing':<18} {'p50':>7} {'p95':>7} {'p99':>7} {'mean':>7}  (ms)")
    for name, p in times["percentiles_ms"].items():
        print(f"{name:<18} {p['p50']:>7.2f} {p['p95']:>7.2f} {p['p99']:>7.2f} {p['mean']:>7.2f}")
    print(
        f"KS distance wrong vs other repo: repeated {times['ks_repeated']:.3f}, fresh {times['ks_fresh']:.3f}"
    )
    payload = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "rounds": rounds,
        "median_ratio_p50": float(np.median(ratios)),
        "timing": times,
    }
    write_json(args.out, payload)
    print(f"wrote {args.out}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs of the exact-hit measurement")
    parser.add_argument("--prompts", type=int, default=50, help="distinct prompts asked again and again")
    parser.add_argument("--single", type=int, default=500, help="exact hits per measurement")
    parser.add_argument("--timing", type=int, default=400, help="requests per repeated-key sample")
    parser.add_argument(
        "--fresh", type=int, default=60, help="fresh keys of each kind (each costs a slow hash)"
    )
    parser.add_argument("--model-dir", type=Path, help="an existing ONNX export (skips building it)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "auth.json")
    return parser.parse_args()


if __name__ == "__main__":
    main()
