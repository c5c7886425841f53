"""A real SMTP server for tests (aiosmtpd on loopback) that can go down and come back on the
same port, and the messages it accepted."""

from __future__ import annotations

import re
import socket
import time
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """What the SMTP server accepted: (envelope recipients, parsed message), in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        #: when each message was accepted (``time.monotonic()``), in the same order
        self.accepted_at: list[float] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        msg = message_from_bytes(content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), msg))
        self.accepted_at.append(time.monotonic())
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.messages if address in rcpt]

    @staticmethod
    def link(msg: Message, path: str) -> str:
        """The first http(s) URL in the message's text whose path contains ``path``."""
        assert isinstance(msg, EmailMessage)
        body = msg.get_body(("plain",))
        assert body is not None, msg
        text = body.get_content()
        found = re.search(rf"https?://\S+{re.escape(path)}\S*", text)
        assert found, text
        return found.group(0)


class SmtpServer:
    """aiosmtpd on a fixed loopback port; ``stop()`` and ``start()`` again on that port."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
