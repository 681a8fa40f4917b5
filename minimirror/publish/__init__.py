"""From locks to a served APT repository: fetch into the cache, the published tree, signing, verify, serve, and
the build's clock (SOURCE_DATE_EPOCH). Imports ``lock`` and below; never ``audit``."""
