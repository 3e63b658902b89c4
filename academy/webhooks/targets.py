"""Which webhook targets may be reached, and the one way a delivery reaches one.

A target is refused when its URL is not plain `http`/`https`, carries credentials, or names a
host whose addresses include anything but public unicast (loopback, private, link-local,
multicast, reserved, shared, unspecified; IPv4-mapped IPv6 is judged as IPv4). The check runs
when the endpoint is registered and again when each delivery connects, on the addresses that
connection then uses (a name that resolved to a public address at registration and to
127.0.0.1 later — DNS rebinding — is refused then). `WEBHOOK_ALLOWED_HOSTS` names `host:port`
pairs let through anyway: a test's local receiver, an on-premises system. Redirects are never
followed; a response body is read up to a few KiB.
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

# Far longer than a healthy receiver's acknowledgement (it should queue and answer at once);
# short enough that a dead endpoint holds a sending thread for seconds, not minutes.
CONNECT_TIMEOUT_SECONDS = 3.0
TOTAL_TIMEOUT_SECONDS = 10.0
# The status line is what matters; a few KiB of body is kept for the delivery log's sake.
RESPONSE_READ_MAX_BYTES = 4 * 1024
URL_MAX_CHARS = 2048


class TargetRefused(ValueError):
    """A URL or address that webhooks must not reach; `code` is stable, the text is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    status_code: int
    elapsed_ms: int


def parse(url: str) -> Target:
    """The target a URL names, or `TargetRefused` for a URL no delivery may use."""
    if len(url) > URL_MAX_CHARS:
        raise TargetRefused("url_too_long", f"The URL is longer than {URL_MAX_CHARS} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("invalid_url", "The URL cannot be parsed.") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("scheme_not_allowed", "Only http and https URLs are allowed.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("credentials_in_url", "The URL must not carry a user or password.")
    if not parts.hostname:
        raise TargetRefused("invalid_url", "The URL names no host.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=parts.scheme, host=parts.hostname.lower(),
                  port=port or (443 if parts.scheme == "https" else 80), path=path)


def resolve(host: str, port: int) -> list[str]:
    """Every address the host name resolves to (replaced by a stub in the tests)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def allowed_addresses(target: Target) -> list[str]:
    """The addresses a delivery to `target` may connect to now; `TargetRefused` if none may."""
    try:
        addresses = resolve(target.host, target.port)
    except OSError:
        raise TargetRefused("unresolvable", "The host name does not resolve.") from None
    if not addresses:
        raise TargetRefused("unresolvable", "The host name does not resolve.")
    if target.host_port in allowed_hosts():
        return addresses
    if not all(_public(address) for address in addresses):
        raise TargetRefused(
            "address_not_allowed",
            "The host resolves to a loopback, private, link-local or reserved address.")
    return addresses


def allowed_hosts() -> frozenset[str]:
    return frozenset(host.strip().lower() for host in settings.WEBHOOK_ALLOWED_HOSTS if host)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def post(target: Target, body: bytes, headers: dict[str, str]) -> Answer:
    """POST once to an address checked just now; raises `TargetRefused` or urllib3's errors."""
    address = allowed_addresses(target)[0]
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, total=TOTAL_TIMEOUT_SECONDS)
    host_header = target.host if target.port in (80, 443) else target.host_port
    with _pool(target, address, timeout) as pool:
        started = time.monotonic()
        response = pool.urlopen(
            "POST", target.path, body=body, headers={**headers, "Host": host_header},
            redirect=False, retries=False, preload_content=False, assert_same_host=False)
        try:
            response.read(RESPONSE_READ_MAX_BYTES)
        finally:
            response.release_conn()
        elapsed_ms = round((time.monotonic() - started) * 1000)
    return Answer(status_code=response.status, elapsed_ms=elapsed_ms)


def _pool(target: Target, address: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    # The pool connects to the checked address itself; TLS still checks the host's name.
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address, target.port, timeout=timeout, maxsize=1, retries=False,
            server_hostname=target.host, assert_hostname=target.host)
    return urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, maxsize=1,
                                      retries=False)
