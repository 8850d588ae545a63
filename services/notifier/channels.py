"""The two ways a notification leaves the system: an HTTP POST (webhook) and an e-mail.

Each send returns a :class:`SendResult` and never raises for a failure of the far end
(unreachable, refused, non-2xx, SMTP error): the caller records it as a failed attempt
and schedules the retry.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpx

from shared.config import Settings

__all__ = ["SIGNATURE_HEADER", "DELIVERY_HEADER", "SendResult", "post_webhook", "send_email", "sign"]

SIGNATURE_HEADER = "X-DMS-Signature"
DELIVERY_HEADER = "X-DMS-Delivery"


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    duration_seconds: float = 0.0


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body bytes, keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def post_webhook(url: str, body: bytes, *, secret: str | None, batch_id: str, content_type: str,
                 timeout: float, user_agent: str = "jwst-dms-notifier") -> SendResult:
    """POST ``body``; any 2xx is delivered, anything else (or no answer) a failure."""
    headers = {"Content-Type": content_type, DELIVERY_HEADER: batch_id, "User-Agent": user_agent}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    started = time.perf_counter()
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return SendResult(False, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                          time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    if 200 <= response.status_code < 300:
        return SendResult(True, response.status_code, None, elapsed)
    snippet = response.text[:200].strip()
    return SendResult(False, response.status_code,
                      f"HTTP {response.status_code}{': ' + snippet if snippet else ''}", elapsed)


def send_email(settings: Settings, to: str, subject: str, text: str, *, attachment_name: str,
               attachment: bytes, batch_id: str) -> SendResult:
    """Send a text e-mail with one JSON attachment through ``settings.smtp_host``
    (STARTTLS and login when configured; ``settings.webhook_timeout`` bounds the session)."""
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=batch_id, domain=settings.mail_from.rsplit("@", 1)[-1] or None)
    msg[DELIVERY_HEADER] = batch_id
    msg.set_content(text)
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
