"""Celery on Amazon SQS (`CELERY_BROKER_URL=sqs://`): the broker URL and transport options
the service runs with, from the environment (docs/how-to/celery-sqs.md).

`SQS_ENDPOINT_URL` points the transport at another SQS-compatible endpoint (a local server
in tests, a VPC endpoint in production); unset, the region's public endpoint is used.
Credentials come from boto3's usual chain (environment, profile, instance role), never
from the URL.
"""

import os
from typing import Any
from urllib.parse import urlsplit

# SQS long polling: a receive waits up to this long for a message (AWS allows 20 s), so an
# idle worker asks SQS a few times a minute instead of once a second.
SQS_WAIT_TIME_SECONDS_DEFAULT = 10
# An idle worker's pause between two empty receives, on top of the long poll.
SQS_POLLING_INTERVAL_SECONDS_DEFAULT = 1.0


def is_sqs(broker_url: str) -> bool:
    return broker_url.startswith("sqs://")


def broker_url(url: str, endpoint_url: str | None) -> str:
    """`sqs://` with the endpoint's host and port when one is set (kombu reads the endpoint
    from the URL's host)."""
    if not endpoint_url:
        return url
    endpoint = urlsplit(endpoint_url)
    port = f":{endpoint.port}" if endpoint.port else ""
    return f"sqs://@{endpoint.hostname}{port}"


def transport_options(*, endpoint_url: str | None, visibility_timeout_seconds: int,
                      environ: os._Environ | dict[str, str] = os.environ) -> dict[str, Any]:
    options: dict[str, Any] = {
        "region": environ.get("SQS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        # Every queue the service declares is named with this prefix (`academy-celery`), so
        # one AWS account can hold several installations.
        "queue_name_prefix": environ.get("SQS_QUEUE_NAME_PREFIX", "academy-"),
        # A message not acknowledged within this long is delivered again (a dead worker's
        # task). A live transcode that outlasts it is not run twice: the redelivered copy
        # finds the video leased by the live worker and does nothing.
        "visibility_timeout": visibility_timeout_seconds,
        "wait_time_seconds": int(environ.get("SQS_WAIT_TIME_SECONDS",
                                             SQS_WAIT_TIME_SECONDS_DEFAULT)),
        "polling_interval": float(environ.get("SQS_POLLING_INTERVAL_SECONDS",
                                              SQS_POLLING_INTERVAL_SECONDS_DEFAULT)),
    }
    if endpoint_url:
        options["is_secure"] = urlsplit(endpoint_url).scheme == "https"
    return options
