"""Webhooks: an academy's endpoints told when its jobs end (docs/how-to/webhooks.md).

`outbox` writes a delivery row in the transition's own transaction; `delivery` sends due
rows from the worker, signed by the Standard Webhooks scheme, with retries; `targets` decides
which addresses may be reached at all; `views` is the API."""
