"""Screenshots of the dashboard with real data: a sidecar behind the tiered router, every tier a model
of the stub provider, answers by cluster (so the audit's judge labels hits right or wrong), a few minutes
of paraphrased questions from a clustered stream, then /ui in headless Chromium: the panel, and the
panel after a wrong hit was reported from it.

    .venv/bin/python scripts/dashboard_screenshots.py --minutes 6 --out docs/dashboard.png

The shipped threshold is kept (a repo's own threshold needs labels from a million requests here), as in
benchmarks/latency.py: the stub's near misses are mostly of other clusters, and on them the online fit
soon turns semantic hits off, which the page would then show.

Needs the dev extra (selenium) and Debian's chromium + chromium-driver (`make browser`); reads the
stream from ../shared/data (never copied into the repository).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a file: the checkout's benchmarks package holds the server helpers

from benchmarks.common import free_port, process  # noqa: E402

STREAM = ROOT.parent / "shared" / "data" / "qqp_dev_stream.jsonl"
# Per million tokens: input, output (the example registry's models, rounded).
TIERS = {"bulk": (0.1, 0.4), "standard": (0.4, 1.6), "structured": (2.0, 8.0), "complex": (10.0, 40.0)}


def traffic(stream: Path, count: int, seed: int) -> list[dict]:
    """``count`` prompts of clusters with 2 to 6 prompts, each cluster's first prompt early and its
    paraphrases spread over the rest of the run (so the hit rate rises as the cache fills)."""
    clusters: dict[int, list[str]] = defaultdict(list)
    for line in stream.open():
        row = json.loads(line)
        clusters[row["cluster"]].append(row["prompt"])
    rng = random.Random(seed)
    chosen = [c for c, prompts in clusters.items() if 2 <= len(prompts) <= 6]
    rng.shuffle(chosen)
    rows: list[tuple[float, dict]] = []
    for cluster in chosen:
        for i, prompt in enumerate(clusters[cluster]):
            rows.append((rng.random() * (0.3 if i == 0 else 1.0), {"prompt": prompt, "cluster": cluster}))
        if len(rows) >= count:
            break
    ordered = [row for _, row in sorted(rows, key=lambda item: item[0])][:count]
    for i in range(len(ordered) // 3, len(ordered), 7):  # some questions asked again word for word
        ordered.insert(i, ordered[rng.randrange(i)])
    return ordered[:count]


def registry(path: Path, stub: str) -> Path:
    lines = [
        '[router]\ndefault_tier = "standard"',
        "[budgets]\nglobal_monthly_usd = 5.0\nrepo_monthly_usd = 2.0",
    ]
    for tier, (price_in, price_out) in TIERS.items():
        lines.append(f'[tiers.{tier}]\nmodel = "demo-{tier}"')
        lines.append(
            f'[[models]]\nid = "demo-{tier}"\nbase_url = "{stub}/v1"\ntier = "{tier}"\n'
            f"input_per_1m = {price_in}\noutput_per_1m = {price_out}\nmax_context_tokens = 32000\ntimeout_s = 10.0"
        )
    path.write_text("\n\n".join(lines))
    return path


def send(url: str, rows: list[dict], minutes: float, repos: list[str]) -> None:
    """Send every row, evenly over ``minutes``, most to the first repo."""
    pause = minutes * 60 / len(rows)
    with httpx.Client(timeout=60) as client:
        for number, row in enumerate(rows, start=1):
            repo = repos[0] if number % 5 else repos[-1]
            body = {"model": "auto", "messages": [{"role": "user", "content": row["prompt"]}]}
            client.post(f"{url}/v1/chat/completions", json=body, headers={"X-Semcache-Repo": repo})
            if number % 50 == 0:
                print(f"sent {number}/{len(rows)}", file=sys.stderr, flush=True)
            time.sleep(pause)


def screenshot(url: str, out: Path, width: int, height: int) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        browser.set_window_size(width, height)
        browser.get(url)
        wait = WebDriverWait(browser, 30)
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "tr.hit")))
        browser.execute_script("document.getElementById('refresh').checked = false")
        time.sleep(0.5)
        browser.save_screenshot(str(out))
        # Report the latest semantic hit as wrong, from the page, and show the page after it.
        browser.find_element(
            By.XPATH, "//tr[.//span[text()='semantic']]//button[@data-action='report']"
        ).click()
        wait.until(expected_conditions.alert_is_present()).accept()
        wait.until(lambda b: "reported entry" in b.find_element(By.ID, "status").text)
        browser.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.5)
        reported = out.with_name(f"{out.stem}-report{out.suffix}")
        browser.set_window_size(width, height * 2 // 3)
        browser.save_screenshot(str(reported))
    finally:
        browser.quit()
    shrink(out)
    shrink(reported)


def shrink(path: Path) -> None:
    """A flat page keeps its look in 256 colours at a fraction of the size."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {image.size[0]}x{image.size[1]}, {path.stat().st_size // 1024} KB", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long the traffic runs")
    parser.add_argument("--requests", type=int, default=900)
    parser.add_argument("--stream", type=Path, default=STREAM)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1300)
    parser.add_argument("--model-dir", type=Path, help="an ONNX export to reuse (else made on first start)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rows = traffic(args.stream, args.requests, args.seed)
    work = Path(tempfile.mkdtemp(prefix="semcache-dashboard-"))
    clusters = work / "clusters.jsonl"
    clusters.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stub_port, port = free_port(), free_port()
    stub = f"http://127.0.0.1:{stub_port}"
    stub_cmd = [sys.executable, str(ROOT / "scripts" / "stub_upstream.py"), "--port", str(stub_port)]
    env = {
        "HF_HUB_OFFLINE": "1",
        "SEMCACHE_ROUTER_CONFIG": str(registry(work / "models.toml", stub)),
        "SEMCACHE_AUDIT_RATE": "0.3",
        "SEMCACHE_ONLINE_MIN_LABELS": "1000000",
    }
    if args.model_dir:
        env["SEMCACHE_EMBEDDING_DIR"] = str(args.model_dir)
    serve = [
        sys.executable,
        "-m",
        "semcache.cli",
        "serve",
        "--data-dir",
        str(work / "data"),
        "--port",
        str(port),
    ]
    with (
        process([*stub_cmd, "--clusters", str(clusters)], f"{stub}/_stub/calls", timeout_s=180),
        process(serve, f"http://127.0.0.1:{port}/healthz", env, timeout_s=180),
    ):
        send(f"http://127.0.0.1:{port}", rows, args.minutes, ["acme.api", "acme.docs"])
        time.sleep(2)  # the audit's last labels and the savings' last booking
        screenshot(f"http://127.0.0.1:{port}/ui?repo=acme.api", args.out, args.width, args.height)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
