"""Email notifications: ``smtp://`` and ``smtps://`` targets, read and sent.

A target names the server and the recipients, never a password::

    smtp://[user@]host[:port]?to=a@x.org,b@y.org[&from=nbops@x.org]
    smtps://...                       # TLS from the first byte (port 465)

The password comes from ``NBOPS_SMTP_PASSWORD`` (and the user from
``NBOPS_SMTP_USER`` when the URL names none) when the message is sent, so a
schedule stored in a team database holds no credential. ``smtp://`` (port 587,
mail submission) upgrades with STARTTLS whenever the server offers it, and
refuses to send a password over a connection that stayed in clear text.
Certificates are checked against the system's CAs (``SSL_CERT_FILE`` adds
another, as for every OpenSSL client).
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, quote, unquote, urlsplit

from nbops.errors import UsageError

__all__ = ["SmtpTarget", "DeliveryError", "parse_smtp", "send_email", "smtp_secrets", "PASSWORD_ENV", "USER_ENV"]

PASSWORD_ENV = "NBOPS_SMTP_PASSWORD"
USER_ENV = "NBOPS_SMTP_USER"
DEFAULT_PORT = {"smtp": 587, "smtps": 465}
# Deliberately loose: the server has the last word; this catches a missing '@' or a stray space.
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+$")
_EXAMPLE = "smtp://alerts@mail.example.org:587?to=team@example.org"


class DeliveryError(Exception):
    """A notification that did not go through; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool):
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True)
class SmtpTarget:
    scheme: str  # smtp | smtps
    host: str
    port: int
    user: str | None  # from the URL; NBOPS_SMTP_USER is read at send time
    to: tuple[str, ...]
    sender: str | None

    def url(self) -> str:
        """The normalized target, as stored in a schedule."""
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = "to=" + ",".join(self.to) + (f"&from={self.sender}" if self.sender else "")
        return f"{self.scheme}://{user}{host}:{self.port}?{query}"


def parse_smtp(text: str) -> SmtpTarget:
    """Read an ``smtp://`` or ``smtps://`` target; UsageError naming what is wrong and how to write it."""
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORT:
        raise UsageError(f"{text!r} is not an smtp:// or smtps:// URL", f"e.g. {_EXAMPLE}")
    if parts.password is not None:
        raise UsageError(
            f"the email target {scheme}://{parts.username or ''}:***@{parts.hostname or ''} has a password in it: a schedule must not store one",
            f"remove it from the URL and export {PASSWORD_ENV} where the scheduler runs",
        )
    if not parts.hostname:
        raise UsageError(f"the email target {text!r} names no server", f"e.g. {_EXAMPLE}")
    try:
        port = parts.port or DEFAULT_PORT[scheme]
    except ValueError:
        raise UsageError(f"the email target {text!r} has an invalid port", f"e.g. {_EXAMPLE}") from None
    if parts.path not in ("", "/"):
        raise UsageError(f"the email target {text!r} has a path ({parts.path}); recipients go in ?to=", f"e.g. {_EXAMPLE}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"to", "from"})
    if unknown:
        raise UsageError(f"the email target {text!r} has unknown option(s) {', '.join(unknown)}", "the options are to= (required) and from=")
    to = tuple(a.strip() for v in query.get("to", []) for a in v.split(",") if a.strip())
    if not to:
        raise UsageError(f"the email target {text!r} names no recipient", f"add ?to=ADDRESS[,ADDRESS...], e.g. {_EXAMPLE}")
    senders = [s.strip() for s in query.get("from", []) if s.strip()]
    if len(senders) > 1:
        raise UsageError(f"the email target {text!r} has {len(senders)} from= addresses", "give one sender")
    for address in (*to, *senders):
        if not _ADDRESS.match(address):
            raise UsageError(f"{address!r} in the email target is not an email address", "write name@domain, several separated by commas")
    user = unquote(parts.username) if parts.username else None
    return SmtpTarget(scheme, parts.hostname, port, user, to, senders[0] if senders else None)


def smtp_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The credential values an email notification may read: to be masked wherever text is recorded."""
    environ = os.environ if environ is None else environ
    return [v for v in (environ.get(PASSWORD_ENV),) if v]


def _credentials(target: SmtpTarget, environ: Mapping[str, str]) -> tuple[str, str] | None:
    user = target.user or environ.get(USER_ENV) or None
    password = environ.get(PASSWORD_ENV) or None
    if user and not password:
        raise DeliveryError(f"the server wants user {user!r} to log in, but {PASSWORD_ENV} is not set where the scheduler runs", retry=False)
    if password and not user:
        raise DeliveryError(f"{PASSWORD_ENV} is set but no user is: name one in the URL (smtp://USER@host) or in {USER_ENV}", retry=False)
    return (user, password) if user else None


def _sender(target: SmtpTarget, credentials: tuple[str, str] | None) -> str:
    if target.sender:
        return target.sender
    if credentials and "@" in credentials[0]:
        return credentials[0]
    return f"nbops@{socket.gethostname() or 'localhost'}"  # not getfqdn(): a reverse DNS lookup can hang for seconds


def build_message(target: SmtpTarget, sender: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(target.to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")  # with no domain it asks DNS
    msg["X-Mailer"] = "nbops"
    msg.set_content(body)
    return msg


def send_email(target: SmtpTarget, subject: str, body: str, *, timeout: float, environ: Mapping[str, str] | None = None) -> None:
    """Send one message; DeliveryError (``retry`` set for what may pass later: a refused
    connection, a timeout, a 4xx reply) for anything that did not go through."""
    environ = os.environ if environ is None else environ
    credentials = _credentials(target, environ)
    msg = build_message(target, _sender(target, credentials), subject, body)
    context = ssl.create_default_context()
    try:
        if target.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=timeout)
        with client:
            client.ehlo()
            if target.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
                encrypted = True
            else:
                encrypted = target.scheme == "smtps"
            if credentials:
                if not encrypted:
                    raise DeliveryError(
                        f"{target.host}:{target.port} offers no STARTTLS: the password is not sent in clear text (use smtps:// or a server with TLS)",
                        retry=False,
                    )
                client.login(*credentials)
            client.send_message(msg)
    except DeliveryError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"the server refused the login of {credentials[0] if credentials else '?'}: {_reply(exc)}", retry=False) from None
    except smtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(f"{a} ({_reply_of(code, text)})" for a, (code, text) in exc.recipients.items())
        raise DeliveryError(f"the server refused the recipient(s) {refused}", retry=False) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"the server replied {_reply(exc)}", retry=400 <= exc.smtp_code < 500) from None
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(f"the certificate of {target.host}:{target.port} is not trusted: {exc.verify_message}", retry=False) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"{target.host}:{target.port}: {exc}", retry=False) from None
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, TLS broken: may pass later
        raise DeliveryError(f"{target.host}:{target.port}: {type(exc).__name__}: {exc}", retry=True) from None


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return _reply_of(exc.smtp_code, exc.smtp_error)


def _reply_of(code: int, text: bytes | str) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {text}".strip()
