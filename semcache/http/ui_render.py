"""The dashboard's repo panel as HTML: cards, the hit-rate chart (inline SVG), hits by kind, the decision,
spend per tier and the latest hits. Every value from a request or the store is escaped here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from html import escape
from typing import Any

from semcache.http.recent import MinuteCounts, RecentHit
from semcache.store.records import RepoStats

CHART_W, CHART_H, CHART_PAD = 640, 150, 24
PANEL_HITS = 20  # the latest hits the panel lists (the activity API gives all that are kept)


@dataclass(frozen=True)
class RepoView:
    """Everything the panel of one repo shows."""

    repo: str
    stats: RepoStats
    purging: bool
    decision: dict[str, Any]
    spend: dict[str, Any]
    minutes: list[MinuteCounts]
    hits: list[RecentHit]


def render_panel(view: RepoView) -> str:
    """The whole panel of one repo."""
    entries = view.stats.entries
    note = "purging…" if view.purging else f"{entries:,} {'entry' if entries == 1 else 'entries'}"
    return "\n".join(
        [
            '<div class="title">',
            f"<h2>{escape(view.repo)}</h2><span class='note'>{note}</span>",
            '<button class="danger" data-action="purge">Purge repo</button>',
            "</div>",
            _cards(view),
            '<div class="grid"><div>',
            _section("Hit rate, last 60 minutes (this sidecar)", _hit_rate_chart(view.minutes)),
            _section("Latest hits (this sidecar)", _latest_hits(view.hits[:PANEL_HITS])),
            "</div><div>",
            _section("Hits by kind (all time)", _hits_by_kind(view.stats)),
            _section("Decision", _decision(view.decision)),
            _section("Spend per tier", _spend(view.spend)),
            "</div></div>",
        ]
    )


def _section(title: str, body: str) -> str:
    return f"<section><h3>{escape(title)}</h3>{body}</section>"


def _card(label: str, value: str) -> str:
    return f'<div class="card"><div class="value">{escape(value)}</div><div class="label">{escape(label)}</div></div>'


def _usd(value: float | None) -> str:
    return "—" if value is None else f"${value:,.4f}"


def _cards(view: RepoView) -> str:
    stats, total = view.stats, view.spend.get("total") or {}
    rate = "—" if stats.hit_rate is None else f"{stats.hit_rate:.1%}"
    cards = [
        _card("entries", f"{stats.entries:,}"),
        _card("hit rate", rate),
        _card("hits (exact / semantic)", f"{stats.hits_exact:,} / {stats.hits_semantic:,}"),
        _card("misses", f"{stats.misses:,}"),
        _card("tokens saved", f"{stats.tokens_saved:,}"),
        _card("cost saved", _usd(total.get("saved_usd"))),
        _card("spend (miss path)", _usd(total.get("spend_usd"))),
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def _hit_rate_chart(minutes: list[MinuteCounts]) -> str:
    """Lookups per minute as stacked bars (exact, semantic, miss) and the hit rate as a line (0-100 %)."""
    if not any(m.lookups for m in minutes):
        return '<p class="empty">No lookups in the last hour.</p>'
    width, height = CHART_W - 2 * CHART_PAD, CHART_H - 2 * CHART_PAD
    peak = max(m.lookups for m in minutes)
    step = width / len(minutes)
    parts, points = [], []
    for i, minute in enumerate(minutes):
        x, y = CHART_PAD + i * step, CHART_PAD + height
        label = time.strftime("%H:%M", time.gmtime(minute.start))
        for kind in ("hit-exact", "hit-semantic", "miss"):
            count = minute.counts.get(kind, 0)
            if count:
                bar = height * count / peak
                y -= bar
                parts.append(
                    f'<rect class="{kind}" x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                    f'height="{bar:.1f}" fill="{_FILL[kind]}"><title>{label} UTC: {count} {kind}</title></rect>'
                )
        if minute.hit_rate is not None:
            points.append(f"{x + step / 2:.1f},{CHART_PAD + height * (1 - minute.hit_rate):.1f}")
    axis = [
        f'<text x="{CHART_PAD}" y="{CHART_H - 6}">{time.strftime("%H:%M", time.gmtime(minutes[0].start))} UTC</text>',
        f'<text x="{CHART_W - CHART_PAD}" y="{CHART_H - 6}" text-anchor="end">now</text>',
        f'<text x="{CHART_PAD}" y="{CHART_PAD - 8}">{peak} lookups/min · hit rate 0-100 %</text>',
        f'<line x1="{CHART_PAD}" x2="{CHART_W - CHART_PAD}" y1="{CHART_PAD + height}" '
        f'y2="{CHART_PAD + height}" stroke="#d9dee5"/>',
    ]
    line = (
        f'<polyline class="hit-rate" fill="none" stroke="#1d2430" stroke-width="1.5" points="{" ".join(points)}"/>'
        if points
        else ""
    )
    legend = _legend([("exact", "exact"), ("semantic", "semantic"), ("miss", "miss"), ("rate", "hit rate")])
    svg = f'<svg viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="hit rate over time">'
    return f"{svg}{''.join(axis)}{''.join(parts)}{line}</svg>{legend}"


_FILL = {"hit-exact": "#1f6feb", "hit-semantic": "#57a773", "miss": "#c7ced8"}


def _legend(items: list[tuple[str, str]]) -> str:
    spans = "".join(f'<span><i class="swatch {cls}"></i>{escape(text)}</span>' for cls, text in items)
    return f'<div class="legend">{spans}</div>'


def _hits_by_kind(stats: RepoStats) -> str:
    counts = [("hit-exact", stats.hits_exact), ("hit-semantic", stats.hits_semantic), ("miss", stats.misses)]
    total = sum(count for _, count in counts)
    if not total:
        return '<p class="empty">No lookups yet.</p>'
    x, bars = 0.0, []
    for kind, count in counts:
        width = 400 * count / total
        bars.append(
            f'<rect x="{x:.1f}" y="0" width="{width:.1f}" height="22" fill="{_FILL[kind]}">'
            f"<title>{count} {kind}</title></rect>"
        )
        x += width
    legend = _legend(
        [
            ("exact", f"exact {stats.hits_exact:,}"),
            ("semantic", f"semantic {stats.hits_semantic:,}"),
            ("miss", f"misses {stats.misses:,}"),
        ]
    )
    return f'<svg viewBox="0 0 400 22" role="img" aria-label="hits by kind">{"".join(bars)}</svg>{legend}'


def _rows(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _decision(decision: dict[str, Any]) -> str:
    threshold = decision["threshold"]
    labels, audit = decision["labels"], decision["audit"]
    share = labels.get("false_hit_share")
    if share is None:
        estimate = f"none yet ({labels['total']} labels)"
    else:
        low, high = share["interval"]
        estimate = f"{share['estimate']:.1%} (95 % {low:.1%}-{high:.1%}, {share['labels']} labels)"
    rows = [
        ("decision", f"{decision['decision']} ({decision['model']})"),
        ("false-hit budget", f"{decision['false_hit_budget']:g}"),
        ("threshold", "none: exact hits only" if threshold is None else f"{threshold:.4f}"),
        ("threshold from", str(decision["source"])),
        ("live false-hit estimate", estimate),
        ("labels", f"{labels['total']} (own threshold from {labels['min_for_online']})"),
        (
            "audit",
            f"rate {audit['rate']:g}, {audit.get('audits', 0)} audits, {audit.get('overflow', 0)} dropped",
        ),
    ]
    if audit.get("judge"):
        moves = "" if audit.get("judge_moves_threshold", True) else " (labels shown, threshold not moved)"
        rows.append(("judge", f"{audit['judge']}{moves}"))
    return _rows(rows)


def _spend(spend: dict[str, Any]) -> str:
    if not spend.get("tiers"):
        return '<p class="empty">No spend recorded: misses go to one endpoint, or no call was made yet.</p>'
    head = "".join(f'<th class="num">{h}</th>' for h in ("requests", "spend", "audit", "hits", "saved"))
    rows = []
    for row in [*spend["tiers"], {**spend["total"], "tier": "total"}]:
        cells = [
            f"{row['requests']:,}",
            _usd(row["spend_usd"]),
            _usd(row["audit_spend_usd"]),
            f"{row['hits']:,}",
            _usd(row["saved_usd"]),
        ]
        tds = "".join(f'<td class="num">{escape(c)}</td>' for c in cells)
        rows.append(f"<tr><td>{escape(str(row['tier']))}</td>{tds}</tr>")
    return f"<table><tr><th>tier</th>{head}</tr>{''.join(rows)}</table>"


def _latest_hits(hits: list[RecentHit]) -> str:
    if not hits:
        return '<p class="empty">No hits since this sidecar started.</p>'
    head = (
        "<tr><th>time (UTC)</th><th>kind</th><th class='num'>similarity</th><th class='num'>score</th>"
        "<th>prompt</th><th>matched prompt</th><th class='num'>entry</th><th></th></tr>"
    )
    rows = []
    for hit in hits:
        action = (
            '<span class="reported">reported</span>'
            if hit.reported
            else f'<button data-action="report" data-entry="{hit.entry_id}" data-prompt="{escape(hit.prompt)}" '
            f'data-similarity="{hit.similarity:.4f}">Wrong hit</button>'
        )
        rows.append(
            "<tr class='hit'>"
            f"<td>{time.strftime('%H:%M:%S', time.gmtime(hit.at))}</td>"
            f"<td><span class='kind {escape(hit.kind)}'>{escape(hit.kind)}</span></td>"
            f"<td class='num'>{hit.similarity:.3f}</td><td class='num'>{hit.score:.3f}</td>"
            f"<td class='prompt'>{escape(hit.prompt)}</td><td class='prompt'>{escape(hit.matched_prompt)}</td>"
            f"<td class='num'>{hit.entry_id}</td><td>{action}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"
