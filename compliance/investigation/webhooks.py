"""Webhook delivery that cannot be turned against our own network (SSRF).

A webhook URL must be http(s), carry no credentials, and its host must resolve only to
public addresses: loopback, private, link-local (the cloud metadata service at
169.254.169.254 among them), shared, reserved, unspecified and multicast addresses are
refused, unless they fall in TRACELEDGER_WEBHOOK_ALLOWED_NETWORKS (CIDRs, comma-
separated; empty by default). The URL is checked when a rule is saved and again at each
delivery, and the delivery connects to the very address it checked, so a name that
re-resolves elsewhere meanwhile (DNS rebinding) gains nothing. Redirects are not
followed; each delivery has a timeout (TRACELEDGER_WEBHOOK_TIMEOUT_S) and reads at most
TRACELEDGER_WEBHOOK_MAX_RESPONSE_BYTES of the answer.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from urllib.parse import urlsplit

from django.conf import settings


class WebhookRefused(ValueError):
    pass


def _allowed_networks() -> list:
    return [ipaddress.ip_network(n.strip(), strict=False) for n in settings.TRACELEDGER_WEBHOOK_ALLOWED_NETWORKS
            if n.strip()]


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in _allowed_networks()):
        return True
    return ip.is_global and not ip.is_multicast


def _target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an acceptable webhook URL."""
    if not isinstance(url, str) or len(url) > 500 or any(c in url for c in "\x00\r\n\t "):
        raise WebhookRefused("the webhook URL is malformed")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused(f"the webhook URL is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("the webhook must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("the webhook URL must not carry a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookRefused("the webhook URL has no host")
    if host == "localhost" or host.endswith(".localhost"):
        raise WebhookRefused(f"the webhook host {host} is this machine")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to; all must be allowed."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise WebhookRefused(f"the webhook host {host} does not resolve here: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    refused = [a for a in addresses if not address_allowed(a)]
    if refused or not addresses:
        raise WebhookRefused(f"the webhook host {host} resolves to {', '.join(refused) or 'nothing'}: loopback, "
                             "private, link-local and multicast addresses are refused "
                             "(TRACELEDGER_WEBHOOK_ALLOWED_NETWORKS allows chosen ones)")
    return addresses


def check_url(url: str) -> list[str]:
    """Refuse (WebhookRefused, one line) a URL we must not send to; else its addresses."""
    _, host, port, _ = _target(url)
    return resolve(host, port)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[bool, str]:
    """POST `body` once; (delivered, detail). Never follows a redirect."""
    try:
        scheme, host, port, path = _target(url)
        address = resolve(host, port)[0]
    except WebhookRefused as exc:
        return False, f"refused: {exc}"
    timeout = settings.TRACELEDGER_WEBHOOK_TIMEOUT_S
    connection = (_PinnedHTTPS if scheme == "https" else _PinnedHTTP)(host, port, address, timeout)
    try:
        connection.request("POST", path, body=body, headers=headers | {"Content-Length": str(len(body))})
        response = connection.getresponse()
        response.read(settings.TRACELEDGER_WEBHOOK_MAX_RESPONSE_BYTES)
        if 300 <= response.status < 400:
            return False, f"HTTP {response.status}: redirects are not followed"
        return 200 <= response.status < 300, f"HTTP {response.status}"
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        return False, (str(exc) or type(exc).__name__)[:400]
    finally:
        connection.close()
