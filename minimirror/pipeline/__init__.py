"""Whole runs across the stages: ``build`` (fetch, publish, image), the build notebook's report, and the bundled
offline example. The highest stage; only ``cli`` sits above it."""
