"""Who is asking, at zero SQL: principals cached in Redis (`principals`), DRF's authentication
classes over them (`drf`), their invalidation (`invalidation`), and the budget of database
reads for unknown tokens (`token_misses`). See docs/explanation/invariants.md, invariants 1,
10 and 11."""
