"""``python -m fixtures_locks`` (from ``tests/``): rewrite the committed lock pairs."""

from fixtures_locks import write_pairs

for path in write_pairs():
    print(path)
