"""The end-to-end layer: real worker processes, servers, browsers, fresh installs and a
Redis Cluster. It runs on the service, with the service layer's fixtures."""

from tests.service.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    alice,
    bob,
    clean_redis,
    suites_redis_cluster,
    worker,
)
