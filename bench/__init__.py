"""The load and database-load benchmark (docs/explanation/architecture.md, "The three parts":
`bench`).

`make bench` (`python -m bench.run`) reproduces the seed's Before/After table and scales it:
it serves the same data four ways (the "before", the seed as written, django-cachalot, and
jobbox), drives load from a separate process on loopback, counts database work with
PostgreSQL's own statistics views and backend CPU, and writes a dated report under
bench/results/.
"""
