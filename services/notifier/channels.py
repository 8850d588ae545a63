"""The two ways a notification leaves the system: an HTTP POST (webhook) and an e-mail.

Each send returns a :class:`SendResult` and never raises for a failure of the far end
(unreachable, refused, non-2xx, SMTP error): the caller records it as a failed attempt
and schedules the retry, or, when ``permanent``, dead-letters it at once.

A webhook is POSTed to the address :class:`shared.webhooks.WebhookPolicy` checked just
before (the connection is pinned to it: no second DNS look-up), with the URL's host in the
``Host`` header and, for https, in TLS (SNI and certificate check). Redirects are not
followed, no proxy is used, and at most :data:`MAX_ANSWER` bytes of the answer are read.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpcore

from shared.config import Settings
from shared.webhooks import CheckedTarget

__all__ = ["DELIVERY_HEADER", "MAX_ANSWER", "SIGNATURE_HEADER", "SendResult", "post_webhook", "send_email", "sign"]

SIGNATURE_HEADER = "X-DMS-Signature"
DELIVERY_HEADER = "X-DMS-Delivery"
MAX_ANSWER = 4096  # bytes of a webhook's answer read (for the error message); the rest is dropped


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    duration_seconds: float = 0.0
    permanent: bool = False  # retrying cannot help (e.g. the target is refused by policy)


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body bytes, keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class _PinnedBackend(httpcore.SyncBackend):
    """Connects to one checked address whatever host name the request names."""

    def __init__(self, address: str):
        self.address = address

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        return super().connect_tcp(self.address, port, timeout=timeout, local_address=local_address,
                                   socket_options=socket_options)


def post_webhook(target: CheckedTarget, body: bytes, *, secret: str | None, batch_id: str, content_type: str,
                 timeout: float, user_agent: str = "jwst-dms-notifier") -> SendResult:
    """POST ``body`` to the checked address of ``target``; any 2xx is delivered, anything
    else (or no answer) a failure. A 3xx is a failure too: redirects are not followed."""
    url = target.url
    headers = [(b"Host", url.host_header.encode("ascii")), (b"Content-Type", content_type.encode("ascii")),
               (b"Content-Length", str(len(body)).encode("ascii")), (DELIVERY_HEADER.encode(), batch_id.encode()),
               (b"User-Agent", user_agent.encode("ascii"))]
    if secret:
        headers.append((SIGNATURE_HEADER.encode(), sign(secret, body).encode("ascii")))
    request_url = httpcore.URL(scheme=url.scheme.encode(), host=url.host.encode("ascii"), port=url.port,
                               target=url.target.encode("ascii"))
    started = time.perf_counter()
    try:
        with httpcore.ConnectionPool(network_backend=_PinnedBackend(target.address), max_connections=1) as pool:
            with pool.stream("POST", request_url, headers=headers, content=body,
                             extensions={"timeout": {k: timeout for k in ("connect", "read", "write", "pool")}}
                             ) as response:
                status, answer = response.status, b""
                for chunk in response.iter_stream():
                    answer += chunk
                    if len(answer) >= MAX_ANSWER:
                        break
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
        name = type(exc).__name__
        return SendResult(False, None, f"{name}: {exc} ({target.address})" if str(exc) else f"{name} ({target.address})",
                          time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    if 200 <= status < 300:
        return SendResult(True, status, None, elapsed)
    snippet = answer[:200].decode("utf-8", "replace").strip()
    if 300 <= status < 400:
        snippet = "redirects are not followed" + (f"; {snippet}" if snippet else "")
    return SendResult(False, status, f"HTTP {status}{': ' + snippet if snippet else ''}", elapsed)


def send_email(settings: Settings, to: str, subject: str, text: str, *, attachment_name: str | None = None,
               attachment: bytes | None = None, batch_id: str) -> SendResult:
    """Send a text e-mail, with one JSON attachment when given, through ``settings.smtp_host``
    (STARTTLS and login when configured; ``settings.webhook_timeout`` bounds the session)."""
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=batch_id, domain=settings.mail_from.rsplit("@", 1)[-1] or None)
    msg[DELIVERY_HEADER] = batch_id
    msg.set_content(text)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="json", filename=attachment_name)
    started = time.perf_counter()
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.webhook_timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        return SendResult(False, getattr(exc, "smtp_code", None), f"{type(exc).__name__}: {exc}",
                          time.perf_counter() - started)
    return SendResult(True, 250, None, time.perf_counter() - started)
