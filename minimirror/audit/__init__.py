"""Reviewing a lock change: the diff of two lock sets, its renderings (table, Markdown, JSON, plot), ``why``, and
where the two sides come from (files, folders, ``git:REF``). Imports ``lock`` and below; never ``publish``."""
