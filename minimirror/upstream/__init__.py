"""Reading an upstream APT archive: downloads, the Release and its signature, Packages and Sources indices, the cache.

The lowest stage: it knows nothing of the sources tree or of locks. Imports only the shared modules at the top."""
