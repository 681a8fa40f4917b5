"""The lock stage: package relations, resolution as apt would resolve, the lockfile, and the stage that writes it.
Imports ``sources`` and ``upstream``."""
