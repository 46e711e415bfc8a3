"""The hand audit's threshold fit (``training.audit.fit``): what the shipped thresholds come from."""

from __future__ import annotations

from training.audit import fit


def row(
    threshold: float, served: int, corrected: float, audited: tuple[int, int], sides: tuple[int, int]
) -> dict:
    return {
        "threshold": threshold,
        "served": served,
        "corrected": corrected,
        "audited": list(audited),
        "sides": list(sides),
    }


def test_fit_takes_the_loosest_threshold_before_the_corrected_share_first_passes_the_budget() -> None:
    table = [
        row(0.95, 100, 0.01, (20, 20), (30, 70)),
        row(0.90, 200, 0.04, (25, 30), (60, 140)),
        row(0.80, 300, 0.08, (40, 40), (90, 210)),
        row(0.70, 400, 0.03, (50, 50), (120, 280)),  # a lucky dip below a threshold that failed
    ]
    chosen = fit(table, least=20)
    assert chosen["0.02"]["threshold"] == 0.95
    assert chosen["0.05"]["threshold"] == 0.90
    assert chosen["0.1"]["threshold"] == 0.70


def test_a_threshold_serving_nothing_certifies_no_budget() -> None:
    # Above every hit nothing is served and nothing is wrong, but nothing is measured either: the budget
    # stays uncalibrated rather than shipping a threshold that never hits.
    table = [
        row(0.9995, 0, 0.0, (0, 0), (0, 0)),
        row(0.90, 200, 0.04, (25, 30), (60, 140)),
    ]
    chosen = fit(table, least=20)
    assert "0.02" not in chosen
    assert chosen["0.05"]["threshold"] == 0.90
