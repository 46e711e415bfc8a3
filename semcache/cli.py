"""The ``semcache`` command: serve the sidecar, and inspect or purge the cache it serves from.

The management commands work on the same data directory as a running server; the server notices
their changes (SQLite's data_version) and reconciles its indexes.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from semcache.access.mode import auth_mode
from semcache.cache.semantic import SemanticCache
from semcache.cli_keys import admin_log, cli_actor, key_store, keys_app
from semcache.config import Settings, load_settings
from semcache.errors import SemcacheError
from semcache.keys import validate_repo
from semcache.progress import phase_bars
from semcache.store.api_keys import KeyStore

app = typer.Typer(help="semcache: a semantic response cache for LLM traffic.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.command("admin-log")(admin_log)
console = Console()

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="overrides SEMCACHE_DATA_DIR")]


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return load_settings(**values)
    except SemcacheError as exc:
        _fail(exc.message)


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=1)


def _open_cache(data_dir: Path | None) -> SemanticCache:
    try:
        return SemanticCache(_settings(data_dir))
    except SemcacheError as exc:
        _fail(exc.message)
        raise


def _known(cache: SemanticCache, repo: str) -> str:
    """``repo``, which must be a valid name the store knows (entries, counts or wrong-hit reports),
    else exit 1."""
    validate_repo(repo)
    if repo not in cache.repos() and not cache.feedback(repo):
        _fail(f"no repo {repo!r} in {cache.settings.data_dir} (`semcache repos` lists them)")
    return repo


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="overrides SEMCACHE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides SEMCACHE_PORT")] = None,
    store_url: Annotated[
        str | None, typer.Option(help="postgresql://… shared by replicas; overrides SEMCACHE_STORE_URL")
    ] = None,
) -> None:
    """Start the sidecar (loads the embedding model, exporting it to ONNX on first start)."""
    import uvicorn

    from semcache.http.app import create_app

    settings = _settings(data_dir, host=host, port=port, store_url=store_url)
    with key_store(settings.data_dir, settings.store_url) as keys:
        try:  # refuse to start open off loopback before loading anything
            mode = auth_mode(settings.auth, settings.host, keys.active())
        except SemcacheError as exc:
            _fail(exc.message)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console.print(f"semcache on http://{settings.host}:{settings.port}  data: {settings.data_dir}")
    console.print(f"auth {mode.reason}", style=None if mode.on else "yellow")
    # uvicorn picks uvloop and httptools (both dependencies) over asyncio's loop and h11 when it can.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=settings.access_log,
    )


@app.command()
def purge(
    repo: str,
    context_file: Annotated[str | None, typer.Option(help="only entries that depended on this path")] = None,
    data_dir: DataDir = None,
) -> None:
    """Delete a repo's cache, or only the entries that depended on one context file."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a big repo's purge logs its progress
    cache = _open_cache(data_dir)
    try:
        _known(cache, repo)
        detail = f"context_file={context_file}" if context_file else ""
        KeyStore(cache.database).log(cli_actor(), "purge", repo, detail)
        if context_file is None:
            console.print(f"purged repo {repo}: {cache.purge(repo)} entries removed")
        else:
            removed = cache.purge_context_file(repo, context_file)
            console.print(f"purged {removed} entries of {repo} that depended on {context_file}")
    except SemcacheError as exc:
        _fail(exc.message)
    finally:
        cache.close()


@app.command()
def stats(repo: Annotated[str | None, typer.Argument()] = None, data_dir: DataDir = None) -> None:
    """Entries, hits, misses, hit rate and tokens saved per repo; spend and savings per tier if routed."""
    settings = _settings(data_dir)
    cache = _open_cache(data_dir)
    try:
        repos = [_known(cache, repo)] if repo else list(cache.repos())
        table = Table("repo", "entries", "hits (exact/semantic)", "misses", "hit rate", "tokens saved")
        decisions = []
        for name in repos:
            s = cache.stats(name)
            rate = f"{s.hit_rate:.1%}" if s.hit_rate is not None else "-"
            hits = f"{s.hits} ({s.hits_exact}/{s.hits_semantic})"
            table.add_row(name, str(s.entries), hits, str(s.misses), rate, str(s.tokens_saved))
            decisions.append((name, _decision_line(cache.decision(name))))
        console.print(table)
        for name, line in decisions:  # under the table: a column this long wraps to unreadable widths
            console.print(
                f"[bold]{escape(name)}[/bold] semantic decision: " + escape(line).replace("\n", "\n  ")
            )
        if settings.router_config is not None and settings.ledger_path.exists():
            console.print(_spend_table(settings, repo))
    except SemcacheError as exc:
        _fail(exc.message)
    finally:
        cache.close()


def _decision_line(decision: dict) -> str:
    """The decision in force for the default budget (or why no semantic hit is served), where its
    threshold came from, and what the repo's labels say of it."""
    budget = decision["false_hit_budget"]
    if not decision["semantic_hits"]:
        line = f"off: no threshold holds budget {budget} ({decision['source']}"
        line += f"; calibrated: {decision['calibrated_budgets']})"
    else:
        line = f"{decision['decision']}, budget {budget}, threshold {decision['threshold']:.3f} ({decision['source']})"
    labels, audit = decision["labels"], decision["audit"]
    line += (
        f"\nlabels {labels['total']} (online from {labels['min_for_online']}), audit rate {audit['rate']:g}"
    )
    line += f", audits {audit['audits']}, dropped {audit['overflow']}"
    if audit["rate"] > 0:  # the judge as this command's settings name it
        line += f"\njudge {audit['judge']}"
        if not audit["judge_moves_threshold"]:
            line += " (labels shown, not used: SEMCACHE_ONLINE_JUDGES)"
    if "false_hit_share" in labels:
        share = labels["false_hit_share"]
        low, high = share["interval"]
        line += f"\nfalse-hit share {share['estimate']:.1%} (95 % {low:.1%}-{high:.1%})"
    return line


def _spend_table(settings: Settings, repo: str | None) -> Table:
    from prometheus_client import CollectorRegistry

    from router import Ledger, load_registry

    ledger = Ledger(settings.ledger_path, load_registry(settings.router_config), CollectorRegistry())
    try:
        rows = ledger.stats(repo)
    finally:
        ledger.close()
    table = Table(
        "repo",
        "tier",
        "routed requests",
        "spend $",
        "audit $",
        "cache hits",
        "saved $",
        "hit rate",
        title="router",
    )
    for row in rows:
        table.add_row(
            row.repo,
            row.tier,
            str(row.requests),
            f"{row.spend_usd:.4f}",
            f"{row.audit_spend_usd:.4f}",
            str(row.hits),
            f"{row.saved_usd:.4f}",
            f"{row.hit_rate:.1%}",
        )
    return table


@app.command("router-train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def router_train(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """Train the router's tier classifier on prompt embeddings and report held-out accuracy.

    Options after the command go to ``python -m router.train`` (--examples, --out, --test-size, --seed);
    with a router configured, the ledger's routing feedback is added to the examples.
    """
    if importlib.util.find_spec("sklearn") is None:
        _fail("router-train needs the train extra: pip install 'semcache-sidecar[train]'")
    from router.train import main as train_main

    settings = _settings(data_dir)
    args = list(ctx.args)
    if settings.router_config is not None and settings.ledger_path.exists() and "--ledger" not in args:
        args += ["--ledger", str(settings.ledger_path), "--registry", str(settings.router_config)]
    raise typer.Exit(code=train_main(args))


@app.command()
def tune(
    pairs: Annotated[
        Path | None, typer.Option("--pairs", help="JSONL of {a, b, label}: 1 if one answer serves both")
    ] = None,
    stream: Annotated[
        Path | None,
        typer.Option("--stream", help="JSONL of {prompt, cluster} in arrival order: calibrate by lookup"),
    ] = None,
    budget: Annotated[float, typer.Option(help="largest share of served hits that may be wrong")] = 0.05,
    repo: Annotated[str | None, typer.Option(help="tune this repo only (adds its wrong-hit reports)")] = None,
    confidence: Annotated[float, typer.Option(help="Clopper-Pearson confidence of the bound")] = 0.95,
    report_dir: Annotated[Path | None, typer.Option(help="default <data_dir>/reports")] = None,
    save: Annotated[bool, typer.Option(help="store the fitted threshold")] = True,
    data_dir: DataDir = None,
) -> None:
    """Fit the hit threshold so the false-hit rate's upper bound stays within BUDGET; write a report.

    With --pairs, on labelled pairs; with --stream, by replaying a clustered prompt stream through a
    cache (a served answer is wrong when its prompt is of another cluster)."""
    from semcache.decision.tuning import TextEncoder, plot, report
    from semcache.store.records import GLOBAL

    if (pairs is None) == (stream is None):
        _fail("give exactly one of --pairs and --stream")
    if not 0 < budget < 1 or not 0.5 <= confidence < 1:
        _fail("--budget must be in (0, 1) and --confidence in [0.5, 1)")
    settings = _settings(data_dir)
    cache = _open_cache(data_dir)
    try:
        target = _known(cache, repo) if repo else GLOBAL
        decision = cache.decision_model
        floor = settings.decision_min_similarity if decision.name != "cosine" else 0.0
        console.print(f"scoring with {decision.model_id} ...")
        with phase_bars() as bars:
            encoder = TextEncoder(cache.embedder.encode_states, decision, progress=bars)
            result = _fit(pairs, stream, repo, cache, encoder, floor, budget, confidence)
        out = report_dir or settings.data_dir / "reports"
        stem = f"tune-{repo or 'global'}-{decision.name}-{budget:g}"
        _write_report(out / f"{stem}.json", report(result))
        if importlib.util.find_spec("matplotlib") is not None:
            plot(result, out / f"{stem}.png")
        else:
            console.print(
                "no plot: matplotlib comes with the train extra (pip install 'semcache-sidecar[train]')"
            )
        _print_tune(result, out / f"{stem}.json")
        if result.chosen is None:
            _fail(
                f"no threshold keeps the {confidence:.0%} upper bound of the false-hit rate within {budget} "
                f"on these {result.pairs} rows: add labelled data or allow a larger budget"
            )
        if save:
            cache.thresholds.save(target, budget, result.chosen.threshold, result.pairs)
            detail = f"budget {budget}: threshold {result.chosen.threshold:.4f} from {result.pairs} rows"
            KeyStore(cache.database).log(cli_actor(), "tune", target, detail)
            console.print(f"saved threshold {result.chosen.threshold:.4f} for {target} at budget {budget}")
    except (SemcacheError, ValueError, OSError) as exc:
        _fail(getattr(exc, "message", None) or str(exc))
    finally:
        cache.close()


def _fit(pairs, stream, repo, cache, encoder, floor, budget, confidence):
    """The tuning result from a pairs file (plus the repo's wrong-hit reports) or a stream file; data
    that cannot support a threshold for the budget is refused before anything is scored."""
    from semcache.decision import tuning

    name = cache.decision_model.name
    if stream is not None:
        rows = tuning.load_stream(stream)
        tuning.check_support(tuning.stream_support([c for _, c in rows]), budget, confidence, str(stream))
        top_n = cache.settings.decision_top_n
        return tuning.tune_stream(rows, encoder, name, budget, floor, top_n, confidence)
    labelled = tuning.load_pairs(pairs)
    source = str(pairs)
    if repo:
        reports = cache.feedback(repo)
        labelled += [tuning.LabelledPair(f["query_prompt"], f["cached_prompt"], 0) for f in reports]
        source += f" with {len(reports)} wrong-hit reports of {repo}"
    tuning.check_support(tuning.pair_support([p.label for p in labelled]), budget, confidence, source)
    return tuning.tune(tuning.score_pairs(labelled, encoder, floor), name, budget, confidence)


def _write_report(path: Path, payload: dict) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))


def _print_tune(result, report_path: Path) -> None:
    table = Table("decision", "threshold", "served", "precision", "recall", "false-hit rate", "upper bound")
    for name, point in ((result.decision, result.chosen), ("cosine", result.cosine_chosen)):
        if point is None:
            table.add_row(name, "none meets the budget", "", "", "", "", "")
        else:
            table.add_row(
                name,
                f"{point.threshold:.4f}",
                str(point.served),
                f"{point.precision:.3f}",
                f"{point.recall:.3f}",
                f"{point.false_hit_rate:.4f}",
                f"{point.false_hit_upper:.4f}",
            )
    console.print(table)
    console.print(
        f"{result.pairs} rows ({result.positives} with a right answer); report: {report_path} (+ .png)"
    )


@app.command()
def repos(data_dir: DataDir = None) -> None:
    """List the repos in the cache with their entry counts."""
    cache = _open_cache(data_dir)
    try:
        table = Table("repo", "entries")
        for name, count in cache.repos().items():
            table.add_row(name, str(count))
        console.print(table)
    finally:
        cache.close()


if __name__ == "__main__":
    app()
