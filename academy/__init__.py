"""The reference service: the academy platform of the seed, thin on top of jobbox.

Tenants and users (`tenants`), videos transcoded to HLS (`videos`), the demo commands (`demo`), and
the embedded default's Redis (`embedded`). docs/explanation/architecture.md, "The three parts".
"""

from academy.celery import app as celery_app

__all__ = ["celery_app"]
