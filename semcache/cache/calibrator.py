"""Which threshold, and which weighing of the decision's signals, decides a repo's lookups.

In order: the repo's online fit (once it holds ``online_min_labels`` live labels made by a judge of
``online_judges`` or by a wrong-hit report, and its audit is on),
then a tuned threshold (``semcache tune``), then the table shipped with the model, then, for the cosine
decision only, the ``min_similarity`` setting. Online fits are refitted off the serving path as labels
arrive (``add_label``, called by the audit's worker) and when labels expire (the cache's sweep), so a
lookup only reads the latest fit.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from semcache.config import Settings
from semcache.decision import Decision, DecisionPolicy, Thresholds
from semcache.decision.online import Combiner, OnlineFit, fit_online
from semcache.store.labels import REPORT, Label, LabelStore
from semcache.store.records import GLOBAL
from semcache.store.sqlite import Store

log = logging.getLogger(__name__)
REFIT_EVERY = 5  # labels; past 250 labels a repo is refitted every 2 % of its labels


class Calibrator:
    """Per-repo decision policies from offline thresholds and online fits; thread-safe."""

    def __init__(
        self, store: Store, decision: Decision, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.labels = LabelStore(store)
        # Tuned thresholds are kept per model: one fitted for another model is never applied to this one.
        self.thresholds = Thresholds(store, decision.model_id, decision.shipped_thresholds())
        self._decision = decision
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._fits: dict[str, OnlineFit] = {}
        self._sizes: dict[str, int] = {}  # labels seen at each repo's last fit
        self._pending: dict[str, int] = {}  # labels added since
        self._refits: dict[str, threading.Lock] = {}  # one refit (or forget) of a repo at a time
        self._judge = settings.judge_name()

    def use_judge(self, name: str) -> None:
        """The audit's judge is ``name`` (the serving app says which it built, before serving)."""
        self._judge = name

    @property
    def online_moves(self) -> bool:
        """Whether the current judge's labels may move thresholds (``online_judges``)."""
        return self._judge in self._settings.online_judges

    @property
    def fitted_judges(self) -> tuple[str, ...]:
        """The judges whose labels a fit reads: ``online_judges`` and the people who report wrong hits."""
        return (*self._settings.online_judges, REPORT)

    def load(self) -> None:
        """Fit every repo that holds labels for this decision model (at start)."""
        for repo in self.labels.repos(self._decision.model_id):
            self.refit(repo)

    def audit_rate(self, repo: str) -> float:
        """The share of a repo's semantic hits audited; 0 turns its audit and online calibration off."""
        return self._settings.audit_rates.get(repo, self._settings.audit_rate)

    def policy(self, repo: str, budget: float, floor: float | None = None) -> DecisionPolicy:
        """The policy for a lookup in ``repo`` at ``budget``; ``floor`` is a request's own cosine floor
        (and, for the cosine decision, its threshold)."""
        audited = self.audit_rate(repo) > 0
        near_floor = floor or self._settings.decision_min_similarity
        with self._lock:
            fit = self._fits.get(repo) if audited else None
        if fit is not None:
            return DecisionPolicy(near_floor, fit.threshold(budget), fit.combiner, "online")
        tuned, source = self.thresholds.resolve_with_source(repo, budget)
        if self._decision.name == "cosine":
            threshold = floor or (tuned if tuned is not None else self._settings.min_similarity)
            source = "request" if floor else source
            # With the audit on, candidates under the threshold are scored too: they are its near misses.
            return DecisionPolicy(
                min(near_floor, threshold) if audited else threshold, threshold, None, source
            )
        return DecisionPolicy(near_floor, tuned if tuned is not None else math.inf, None, source)

    def add_label(self, label: Label) -> None:
        """Keep a label and refit its repo when enough new ones arrived since the last fit."""
        self.labels.add(label, self._clock())
        with self._lock:
            pending = self._pending[label.repo] = self._pending.get(label.repo, 0) + 1
            due = pending >= max(REFIT_EVERY, self._sizes.get(label.repo, 0) // 50)
        if due and label.judge in self.fitted_judges:  # other judges' labels change no fit
            self.refit(label.repo)

    def refit(self, repo: str) -> None:
        """Fit a repo's weights and thresholds from its live labels now (one refit of a repo at a time,
        so the audit's and the sweep's never store an older fit over a newer one)."""
        with self._guard(repo):
            self._refit(repo)

    def _guard(self, repo: str) -> threading.Lock:
        with self._lock:
            return self._refits.setdefault(repo, threading.Lock())

    def _refit(self, repo: str) -> None:
        arrays = self.labels.arrays(
            repo, self._decision.model_id, self._clock(), self._settings.online_window, self.fitted_judges
        )
        fit = fit_online(
            arrays.score, arrays.similarity, arrays.label, arrays.weight, self._settings.online_min_labels
        )
        with self._lock:
            self._sizes[repo], self._pending[repo] = len(arrays), 0
            if fit is None:
                self._fits.pop(repo, None)
            else:
                self._fits[repo] = fit

    def forget(self, repo: str) -> None:
        """Drop a repo's fit (its labels went with a purge); a refit under way finishes first, so it
        cannot put back a fit of the purged labels."""
        with self._guard(repo), self._lock:
            for table in (self._fits, self._sizes, self._pending):
                table.pop(repo, None)

    def refit_fitted(self, repos: list[str]) -> None:
        """Refit those of ``repos`` that have an online fit (the sweep calls this with the repos whose
        labels expired); one that fails is logged and keeps its fit."""
        with self._lock:
            fitted = [repo for repo in repos if repo in self._fits]
        for repo in fitted:
            try:
                self.refit(repo)
            except Exception:  # the store may be briefly unreachable: the next sweep tries again
                log.exception("refitting repo %s after its labels expired failed", repo)

    def describe(self, repo: str = GLOBAL) -> dict[str, Any]:
        """How a request with the default budget is decided in ``repo``, and what its labels say."""
        budget = self._settings.false_hit_budget
        policy = self.policy(repo, budget)
        threshold = None if math.isinf(policy.threshold) else policy.threshold
        combiner = policy.combiner or Combiner()
        return {
            "decision": self._decision.name,
            "model": self._decision.model_id,
            "false_hit_budget": budget,
            "threshold": threshold,
            "source": policy.source,
            "semantic_hits": threshold is not None,
            "calibrated_budgets": self.thresholds.budgets(repo),
            "weights": {"score": combiner.a, "cosine": combiner.b, "bias": combiner.c},
            "labels": self._label_report(repo, policy),
            "audit": {
                "rate": self.audit_rate(repo),
                "judge": self._judge,
                "judge_moves_threshold": self.online_moves,
                **self.labels.counters(repo),
            },
        }

    def _label_report(self, repo: str, policy: DecisionPolicy) -> dict[str, Any]:
        """Labels per source and the estimated false-hit share of what the policy serves."""
        now, model = self._clock(), self._decision.model_id
        counts = self.labels.counts(repo, model, now)
        report: dict[str, Any] = {
            "total": sum(counts.values()),
            **counts,
            "min_for_online": self._settings.online_min_labels,
        }
        if math.isinf(policy.threshold) or not report["total"]:
            return report
        with self._lock:  # the repo's own fit already ranks its labels; else rank them by the score
            fit = self._fits.get(repo) if policy.source == "online" else None
        if fit is None:
            arrays = self.labels.arrays(repo, model, now, self._settings.online_window)
            fit = OnlineFit.of(Combiner(), arrays.score, arrays.similarity, arrays.label, arrays.weight)
        estimate = fit.estimate(policy.threshold)
        report["false_hit_share"] = {
            "estimate": estimate.share,
            "interval": [estimate.low, estimate.high],
            "labels": estimate.labels,
            "effective_labels": estimate.effective,
        }
        return report
