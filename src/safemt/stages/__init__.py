"""One entry module per pipeline stage, in pipeline order; the CLI calls only these.

Each module's `run(params, ...)` is the stage's main step; a stage with more than one command has
its other verbs beside it (e.g. `inference.merge`). The helpers a stage uses live in the package it
names (data/, models/, judges/, moderation/, metrics/, figures/, report/).
"""

# Pipeline order (the stage tables of the README and docs/architecture.md, and `safemt --help`, follow it).
STAGES = ("dataset", "models", "inference", "judging", "moderation", "metrics", "figures", "paper", "report", "bundle")
