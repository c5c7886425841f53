"""Notifications by e-mail through ``aiosmtplib``: one message per call, to its targets.

A subject or an address with a carriage return or a line feed is refused before anything is
sent (header injection); the SMTP password comes from the settings and is never logged; the
message id is deterministic, so a retried delivery is recognisable as the same message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib
from hms_contracts.config.escalation import check_email

from .errors import DeliveryFailed, InvalidMessage
from .settings import EscalationSettings

log = logging.getLogger(__name__)


def check_header(value: str, what: str) -> str:
    if "\r" in value or "\n" in value:
        raise InvalidMessage(f"{what} {value[:60]!r} contains a line break; refused")
    return value


def check_targets(targets: Sequence[str]) -> tuple[str, ...]:
    if not targets:
        raise InvalidMessage("a notification needs at least one target address")
    for address in targets:
        check_header(address, "address")
        try:
            check_email(address)
        except ValueError as exc:
            raise InvalidMessage(str(exc)) from None
    return tuple(targets)


class EmailSender:
    """Sends notifications through the SMTP server of the settings."""

    def __init__(self, settings: EscalationSettings) -> None:
        self.settings = settings
        check_header(settings.smtp_from, "smtp_from")

    def message(
        self,
        namespace: str,
        incident_id: str,
        subject: str,
        body: str,
        targets: Sequence[str],
        *,
        message_id: str,
    ) -> EmailMessage:
        """The message, checked: no line break in the subject or an address."""
        to = check_targets(targets)
        msg = EmailMessage()
        msg["From"] = self.settings.smtp_from
        msg["To"] = ", ".join(to)
        msg["Subject"] = check_header(subject, "subject")
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = check_header(message_id, "message id")
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-HMS-Namespace"] = namespace
        msg["X-HMS-Incident"] = incident_id
        msg.set_content(body)
        return msg

    async def send(
        self,
        namespace: str,
        incident_id: str,
        subject: str,
        body: str,
        targets: Sequence[str],
        *,
        message_id: str | None = None,
    ) -> str:
        """Send one message to ``targets``; returns its message id once the server accepted it.
        InvalidMessage before any I/O for a bad header; DeliveryFailed when the server did not
        take it (``permanent`` when every recipient was refused)."""
        message_id = message_id or make_msgid(domain="hms-ops")
        msg = self.message(namespace, incident_id, subject, body, targets, message_id=message_id)
        s = self.settings
        try:
            await aiosmtplib.send(
                msg,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=None if s.smtp_password is None else s.smtp_password.get_secret_value(),
                use_tls=s.smtp_security == "tls",
                start_tls=s.smtp_security == "starttls",
                timeout=s.smtp_timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(r.recipient for r in exc.recipients)
            raise DeliveryFailed(f"the SMTP server refused {refused}", permanent=True) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryFailed(f"SMTP authentication failed ({exc.code})") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            where = f"{s.smtp_host}:{s.smtp_port}"
            raise DeliveryFailed(f"SMTP server {where}: {type(exc).__name__}: {exc}") from None
        log.info(
            "sent %s to %d recipient(s) for %s/%s",
            message_id,
            len(msg["To"].split(",")),
            namespace,
            incident_id,
        )
        return message_id
