"""Makes training data for the hit decision, trains it and calibrates it. Never imported at run time."""
