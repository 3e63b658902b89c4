"""The django-cachalot server: bench.settings plus cachalot, in its own process.

Cachalot patches the ORM for the whole process, so it runs in a server of its own and never
touches the other variants. Its cache is Django's Redis cache on the benchmark's private
Redis (another database number), shared by the server's worker processes as cachalot needs.

Serves docs/explanation/architecture.md, "What we measured": "An ORM cache is not the answer".
"""

import os

from bench.settings import *  # noqa: F403
from bench.settings import INSTALLED_APPS, REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "cachalot"]
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("BENCH_CACHE_URL") or REDIS_URL,
    }
}
