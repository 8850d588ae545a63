"""Where a webhook may POST: one policy, checked when a subscription is made (archive API,
``dms subscribe``) and again when each notification is sent (notifier).

A webhook URL is read strictly (:func:`parse_webhook_url`): ``http`` or ``https``, an ASCII
host, no user name or password, no fragment, no whitespace or control characters, at most
:data:`MAX_URL_LENGTH` characters. Its host is then resolved with the system resolver, as a
connection would resolve it — so ``2130706433``, ``0x7f.0.0.1`` or ``127.1`` are the
loopback address they are, whatever they look like — and *every* address it resolves to must
be public. Refused by default: loopback, private (RFC 1918, unique-local), link-local (cloud
metadata services live there), shared CGNAT space, multicast, unspecified, reserved and
anything else not globally routable; an IPv4 address inside IPv6 (mapped, 6to4, Teredo) is
judged as that IPv4 address.

An operator permits what the default refuses with ``DMS_WEBHOOK_ALLOW``: a comma-separated
list of networks (``10.20.0.0/16``, ``127.0.0.1``) and host names (``hooks.internal``, which
is then permitted whatever it resolves to).

The notifier connects to the address it checked (:class:`CheckedTarget`), not to a second
resolution of the name, so a host that changes its DNS answer between the check and the
connection (DNS rebinding) cannot steer the POST elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.config import Settings

__all__ = [
    "MAX_URL_LENGTH",
    "CheckedTarget",
    "TargetRefused",
    "TargetUnresolved",
    "WebhookPolicy",
    "WebhookURL",
    "address_refusal",
    "parse_webhook_url",
]

MAX_URL_LENGTH = 2048
_MAX_HOST = 253
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list]

# Named for the reason they give; the ranges below would refuse them anyway.
_METADATA = tuple(ipaddress.ip_network(n) for n in (
    "169.254.169.254/32",   # AWS, GCP, Azure, OpenStack instance metadata
    "169.254.170.2/32",     # AWS ECS task metadata
    "100.100.100.200/32",   # Alibaba Cloud metadata
    "fd00:ec2::254/128",    # AWS metadata over IPv6
))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class TargetRefused(ValueError):
    """The webhook target may not be used; the message says why."""


class TargetUnresolved(TargetRefused):
    """The target's host name did not resolve (possibly a passing DNS failure)."""


@dataclass(frozen=True)
class WebhookURL:
    """A webhook URL as read by :func:`parse_webhook_url`."""

    url: str
    scheme: str      # http or https
    host: str        # lower case; an IPv6 literal without its brackets
    port: int
    target: str      # path and query, at least "/"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class CheckedTarget:
    """A URL whose host resolved to permitted addresses only; connect to ``address``."""

    url: WebhookURL
    addresses: tuple[IPAddress, ...]

    @property
    def address(self) -> str:
        return str(self.addresses[0])


def parse_webhook_url(url: str) -> WebhookURL:
    """Read a webhook URL strictly.

    Raises
    ------
    TargetRefused
        The URL is too long, not http(s), carries user information, a fragment,
        whitespace, control or non-ASCII characters, or has no usable host or port.
    """
    if not isinstance(url, str) or not url:
        raise TargetRefused("a webhook URL is needed")
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"the webhook URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise TargetRefused("the webhook URL contains whitespace or control characters (CR, LF, ...)")
    if not url.isascii():
        raise TargetRefused("the webhook URL must be ASCII: give the host in punycode and percent-encode the path")
    if "\\" in url:
        raise TargetRefused("the webhook URL contains a backslash")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused(f"a webhook URL is http:// or https://, not {parts.scheme or 'scheme-less'}")
    if "@" in parts.netloc:
        raise TargetRefused("a webhook URL may not carry a user name or password (user:pass@host)")
    if parts.fragment or url.endswith("#"):
        raise TargetRefused("a webhook URL has no #fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise TargetRefused("the webhook URL has no host")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise TargetRefused(f"[{host}] is not an IPv6 address") from None
    elif len(host) > _MAX_HOST or not set(host) <= _HOST_CHARS or ".." in host or host.startswith("."):
        raise TargetRefused(f"{host!r} is not a host name")
    try:
        port = parts.port
    except ValueError:
        raise TargetRefused("the webhook URL's port is not a number from 1 to 65535") from None
    if port == 0:
        raise TargetRefused("the webhook URL's port is not a number from 1 to 65535")
    port = port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WebhookURL(url=url, scheme=scheme, host=host, port=port, target=target)


def _embedded_ipv4(ip: IPAddress) -> list[IPAddress]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo)."""
    if ip.version != 6:
        return []
    found = [ip.ipv4_mapped, ip.sixtofour]
    if ip.teredo:
        found.extend(ip.teredo)
    return [a for a in found if a is not None]


def address_refusal(ip: IPAddress) -> str | None:
    """Why the default policy refuses ``ip`` (None: it is a public address)."""
    for inner in _embedded_ipv4(ip):
        why = address_refusal(inner)
        if why:
            return f"{why} (inside {ip})"
    checks = (
        (any(ip in n for n in _METADATA if n.version == ip.version), "a cloud metadata address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.version == 4 and ip in _CGNAT, "shared (CGNAT) address space"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a globally routable address"),
    )
    return next((why for refused, why in checks if refused), None)


class WebhookPolicy:
    """Which webhook targets are permitted: public addresses, plus what the operator
    allows (``allow_networks``, ``allow_hosts``). ``resolver`` is
    :func:`socket.getaddrinfo` unless given."""

    def __init__(self, allow_networks: Iterable[IPNetwork] = (), allow_hosts: Iterable[str] = (),
                 resolver: Resolver | None = None):
        self.allow_networks = tuple(allow_networks)
        self.allow_hosts = frozenset(h.lower().rstrip(".") for h in allow_hosts)
        self._resolver = resolver or socket.getaddrinfo

    @classmethod
    def from_text(cls, text: str, resolver: Resolver | None = None) -> WebhookPolicy:
        """From ``DMS_WEBHOOK_ALLOW``: comma-separated networks and host names.

        Raises
        ------
        ValueError
            An entry is neither a network nor a host name.
        """
        networks, hosts = [], []
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not name or len(name) > _MAX_HOST or not set(name) <= _HOST_CHARS:
                raise ValueError(f"DMS_WEBHOOK_ALLOW: {entry!r} is neither a network (CIDR) nor a host name")
            hosts.append(name)
        return cls(networks, hosts, resolver)

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver | None = None) -> WebhookPolicy:
        return cls.from_text(settings.webhook_allow, resolver)

    def _allowed(self, ip: IPAddress) -> bool:
        candidates = [ip, *_embedded_ipv4(ip)]
        return any(c in n for c in candidates for n in self.allow_networks if n.version == c.version)

    def resolve(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """Every address ``host`` resolves to, in the resolver's order, without repeats."""
        try:
            infos = self._resolver(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError) as exc:
            raise TargetUnresolved(f"the webhook host {host} does not resolve: {exc}") from None
        out: list[IPAddress] = []
        for info in infos:
            text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
            ip = ipaddress.ip_address(text)
            if ip not in out:
                out.append(ip)
        if not out:
            raise TargetUnresolved(f"the webhook host {host} resolves to no address")
        return tuple(out)

    def check(self, url: str | WebhookURL) -> CheckedTarget:
        """Parse ``url``, resolve its host and check every address.

        Raises
        ------
        TargetUnresolved
            The host does not resolve.
        TargetRefused
            The URL is malformed, or the host resolves to an address the policy refuses
            (the message names the address and why).
        """
        parsed = url if isinstance(url, WebhookURL) else parse_webhook_url(url)
        addresses = self.resolve(parsed.host, parsed.port)
        if parsed.host.rstrip(".") in self.allow_hosts:
            return CheckedTarget(parsed, addresses)
        for ip in addresses:
            if self._allowed(ip):
                continue
            why = address_refusal(ip)
            if why:
                shown = parsed.host if parsed.host == str(ip) else f"{parsed.host} ({ip})"
                raise TargetRefused(f"webhook target {shown} is {why}; webhooks go to public addresses "
                                    "only (an operator may permit it with DMS_WEBHOOK_ALLOW)")
        return CheckedTarget(parsed, addresses)
