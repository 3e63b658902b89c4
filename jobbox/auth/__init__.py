"""Who is asking, at zero SQL: principals cached in Redis (`principals`), DRF's authentication
classes over them (`drf`), and their invalidation (`invalidation`). DESIGN.md, invariants 1
and 11."""
