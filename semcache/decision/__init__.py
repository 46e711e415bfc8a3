"""The hit decision: which cached answer is right for a request, at a false-hit budget.

- :mod:`~semcache.decision.base`: the :class:`Decision` protocol, the cosine decision, the registry;
- :mod:`~semcache.decision.learned` / :mod:`~semcache.decision.head`: the shipped learned decision, an
  interaction head over the token states of the one embedding pass;
- :mod:`~semcache.decision.literals`: literal input features (numbers, identifiers);
- :mod:`~semcache.decision.calibration`: thresholds from labelled pairs or replayed streams (pure maths);
- :mod:`~semcache.decision.replay`: replaying a clustered stream through a cache, for calibration;
- :mod:`~semcache.decision.thresholds`: which threshold serves a budget, for a repo.
"""

from semcache.decision.base import DECISIONS, CosineDecision, Decision, DecisionPolicy, Encoded, make_decision
from semcache.decision.thresholds import Thresholds

__all__ = [
    "DECISIONS",
    "CosineDecision",
    "Decision",
    "DecisionPolicy",
    "Encoded",
    "Thresholds",
    "make_decision",
]
