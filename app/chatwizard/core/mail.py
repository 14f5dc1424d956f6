"""Outgoing mail over SMTP (aiosmtplib): plain-text messages, one connection per message.

Invitations and sign-in links are rare (a soft launch of tens of learners), so there is no queue: a
message is handed to the SMTP server before the request answers, and a failure is the caller's to
report (``MailUnavailable``). Locally and in tests the server is the estate's sink (estate/mail.py).
"""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from chatwizard.core.settings import Settings


class MailUnavailable(Exception):
    """The SMTP server could not be reached or refused the message."""


async def send_mail(settings: Settings, to: str, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.smtp_sender, to, subject
    message.set_content(body, cte="8bit")  # not quoted-printable: the link stays whole in the raw mail
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(message, hostname=settings.smtp_host, port=settings.smtp_port,
                              username=settings.smtp_user, password=password,
                              start_tls=settings.smtp_starttls, cert_bundle=settings.smtp_ca_file,
                              timeout=settings.smtp_timeout_s)
    except (aiosmtplib.SMTPException, OSError) as exc:
        # The kind only: a refusal's text may name the recipient, and addresses stay out of logs.
        raise MailUnavailable(type(exc).__name__) from exc
