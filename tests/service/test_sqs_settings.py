"""The service's SQS settings (academy.sqs): the endpoint reaches kombu through the broker
URL's host, and nothing but the endpoint's own scheme decides TLS."""

from kombu import Connection

from academy import sqs


def test_a_local_endpoint_becomes_the_brokers_host_and_port_without_tls():
    url = sqs.broker_url("sqs://", "http://127.0.0.1:4566")
    options = sqs.transport_options(endpoint_url="http://127.0.0.1:4566",
                                    visibility_timeout_seconds=30, environ={})

    connection = Connection(url, transport_options=options)
    assert (connection.hostname, connection.port) == ("127.0.0.1", 4566)
    assert options["is_secure"] is False
    assert options["visibility_timeout"] == 30
    assert options["queue_name_prefix"] == "academy-"


def test_without_an_endpoint_the_regions_own_is_used():
    options = sqs.transport_options(endpoint_url=None, visibility_timeout_seconds=3600,
                                    environ={"SQS_REGION": "eu-west-1"})

    assert sqs.broker_url("sqs://", None) == "sqs://"
    assert options["region"] == "eu-west-1"
    assert "is_secure" not in options
