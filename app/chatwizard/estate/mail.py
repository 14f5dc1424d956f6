"""The local SMTP sink (aiosmtpd): accepts every message and writes it, as received, into a mailbox folder
(one ``.eml`` file per message), so a developer opens the invitation link and the tests read real mail."""

from __future__ import annotations

import logging
import ssl
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from itertools import count
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Mailbox:
    """aiosmtpd's handler: each message's bytes go to ``folder/<time>-<n>.eml`` (names sort by arrival)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.numbers = count()
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{next(self.numbers):06d}.eml"
        partial = self.folder / f".{name}.part"  # not *.eml: pathlib's glob matches dot files too
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(self.folder / name)  # readers never see half a message
        return "250 Message accepted for delivery"


class MailSink:
    """With a TLS context it stands in for a production relay: STARTTLS offered and required."""

    def __init__(self, folder: Path, port: int, host: str = "127.0.0.1",
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.folder, self.host, self.port = folder, host, port
        self.mailbox = Mailbox(folder)
        self.tls = {"tls_context": tls_context, "require_starttls": True} if tls_context else {}
        self.controller: Controller | None = None

    def start(self) -> None:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO
        # A new controller per start: aiosmtpd cannot restart one.
        self.controller = Controller(self.mailbox, hostname=self.host, port=self.port, **self.tls)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def messages(self) -> list[EmailMessage]:
        """Every message received so far, oldest first."""
        parser = BytesParser(policy=policy.default)
        return [parser.parsebytes(f.read_bytes()) for f in sorted(self.folder.glob("*.eml"))]
