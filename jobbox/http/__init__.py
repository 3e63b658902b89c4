"""jobbox's HTTP surface: the job and box views (`views`), metrics and
health (`ops`), their routes (`urls`), the 503 of an
unreachable database (`errors`), the shapes of the answers for an OpenAPI schema (`schema`),
and the event stream as a plain ASGI app in front of a project's own (`asgi`)."""
