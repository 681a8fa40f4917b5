"""The sources tree: ``source.txt``, ``packages.txt``, per-source settings, the package query language, and the
imports that write a tree (the seed's YAML, the host's APT sources). Imports ``upstream`` (key armor) and below."""
