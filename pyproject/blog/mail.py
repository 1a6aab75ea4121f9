"""Email: messages built from templates, sent at most once by a job, by SMTP or to an outbox.

A view asks for a message with `queue_mail(db, kind=..., to=..., object_id=..., ...)`.
That builds the whole message now (a plain-text part and an HTML part from
`templates/email/<template>.txt` and `.html`), keeps its bytes in the `sent_messages`
table under the key "kind:recipient:object id", and enqueues the `send_mail` job in the
view's transaction. Asking again for the same key finds the row and queues nothing.

The job sends the stored bytes, through the server in SMTP_URL, or, without one, into
`<INSTANCE_PATH>/outbox/` as an .eml file that /admin/outbox shows. It claims the row
before sending and records the outcome right after, each in a short transaction of its
own (a write transaction held across a slow mail server would stop every save of a
SQLite site): a job that crashes between the send and the record leaves the claim, and
the retry after the claim has lapsed sends once more; a row marked sent is never sent
again. Errors (refused, timed out, 4xx or 5xx replies) raise, so the queue retries the
job and, when its retries run out, /admin/jobs shows it failed.

Names, subjects and addresses are checked before a message is built: any control
character (CR, LF, NUL...) is refused, so no value can add a header of its own.
"""

from __future__ import annotations

import contextlib
import email
import functools
import ipaddress
import logging
import os
import re
import smtplib
import ssl
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from jinja2 import Environment
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pyproject.blog import jobs
from pyproject.blog.auth import admin_required, current_user
from pyproject.blog.db import Database, begin_savepoint, get_database, get_db
from pyproject.blog.models import SentMessage, utcnow
from pyproject.lib import App, Request, Response, flash, redirect, render_template, url_for

log = logging.getLogger("pyproject.mail")

OUTBOX_SHOWN = 100  # messages /admin/outbox lists, newest first
OUTBOX_READ_LIMIT = 1024 * 1024  # bytes of one .eml the outbox page reads
MAX_SUBJECT = 250
MAX_NAME = 100
MAX_OBJECT_ID = 100

# Any control character (CR, LF and NUL among them) or Unicode line break: one of these
# in a header value could end the header and start another.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*\Z")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
_KIND = re.compile(r"[a-z0-9_-]{1,40}\Z")
_TEMPLATE = re.compile(r"[a-z0-9_]{1,60}\Z")
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}\Z")  # printable ASCII but the colon (RFC 5322)
# Headers the message makes itself; extra headers may not replace them.
# Headers we build are folded as usual; the extra ones set raw stay as given (they are
# checked for line breaks and kept under 998 characters, the limit of a line).
_POLICY = policy.SMTP.clone(refold_source="none")
_OWN_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "sender"}
)


# --- settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MailSettings:
    """How the site sends mail, from SMTP_URL, MAIL_FROM and SMTP_TIMEOUT."""

    smtp_url: str  # empty: write to the outbox folder
    sender: Address
    timeout: float
    outbox: Path
    domain: str  # the right side of every Message-ID: BASE_URL's host

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MailSettings:
        sender = str(config.get("MAIL_FROM") or "PyProject <noreply@localhost>")
        name, address = parseaddr(check_header_text(sender, "MAIL_FROM setting"))
        return cls(
            smtp_url=str(config.get("SMTP_URL") or "").strip(),
            sender=make_address(address, name),
            timeout=float(config.get("SMTP_TIMEOUT") or 10),
            outbox=Path(config["INSTANCE_PATH"]) / "outbox",
            domain=urlsplit(str(config["BASE_URL"])).hostname or "localhost",
        )

    @property
    def claim_lease(self) -> timedelta:
        """How long a job's claim on a message holds: longer than any send can take
        (each of a dozen steps of the SMTP conversation waits at most `timeout`)."""
        return timedelta(seconds=max(60.0, 12 * self.timeout))


def mail_settings(app: App) -> MailSettings:
    settings = app.extensions.get("mail_settings")
    if settings is None:
        settings = app.extensions["mail_settings"] = MailSettings.from_config(app.config)
    return settings


# --- checking what goes into headers ----------------------------------------------------------


class InvalidMail(ValueError):
    """A value cannot go into a message's headers; the message is not built."""


class HeaderInjection(InvalidMail):
    """A name, subject, address or header holds CR, LF, NUL or another control character."""


class InvalidAddress(InvalidMail):
    """An email address is not of the plain `local@domain` shape, or is too long."""


def check_header_text(value: str, what: str, *, limit: int = MAX_SUBJECT) -> str:
    """Give `value` if it may go into a header; raise HeaderInjection or InvalidMail."""
    if not isinstance(value, str):
        raise InvalidMail(f"the {what} must be text")
    if _UNSAFE.search(value):
        raise HeaderInjection(f"the {what} holds a line break or control character")
    if len(value) > limit:
        raise InvalidMail(f"the {what} is longer than {limit} characters")
    return value


def check_address(address: str) -> str:
    """Give `address` if it is a plain `local@domain` address of at most 254 characters."""
    check_header_text(address, "address", limit=len(address))
    if len(address) > 254:
        raise InvalidAddress("an email address is at most 254 characters long")
    local, at, domain = address.rpartition("@")
    if not at or len(local) > 64 or not _LOCAL_PART.match(local) or not _DOMAIN.match(domain):
        raise InvalidAddress(f"{address!r} is not an email address")
    return address


def make_address(address: str, name: str = "") -> Address:
    """Give a checked header Address for `name <address>`."""
    check_address(address)
    check_header_text(name, "name", limit=MAX_NAME)
    local, _, domain = address.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def message_key(kind: str, to: str, object_id: str | int) -> str:
    """Give the sent-messages key of one message: "kind:recipient:object id"."""
    if not _KIND.match(kind):
        raise InvalidMail(f"the kind {kind!r} must be 1 to 40 of a-z, 0-9, _ and -")
    object_id = check_header_text(str(object_id), "object id", limit=MAX_OBJECT_ID)
    return f"{kind}:{check_address(to).lower()}:{object_id}"


# --- building messages ------------------------------------------------------------------------


def _text_environment(app: App) -> Environment:
    """Give the app's template environment without autoescaping, for the .txt parts."""
    env = app.extensions.get("mail_text_env")
    if env is None:
        # A cache of its own: a template compiled with escaping must not be reused here.
        env = app.extensions["mail_text_env"] = app.jinja_env.overlay(
            autoescape=False, cache_size=50
        )
    return env


def render_parts(app: App, template: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """Give the text and HTML of `templates/email/<template>.txt` and `.html`.

    Templates get `site_name`, `base_url` and `external_url(endpoint, **values)` (an
    absolute URL from BASE_URL: a job has no request to take a host from).
    """
    if not _TEMPLATE.match(template):
        raise InvalidMail(f"no email template may be called {template!r}")
    from pyproject.blog.settings import site_settings  # (the title of /admin/settings, #17)

    values = {
        "site_name": site_settings(app).title,
        "base_url": app.config["BASE_URL"],
        "external_url": functools.partial(app.url_for, _external=True),
        **context,
    }
    text = _text_environment(app).get_template(f"email/{template}.txt").render(values)
    html = app.jinja_env.get_template(f"email/{template}.html").render(values)
    return text, html


def build_message(
    kind: str,
    to: str,
    subject: str,
    template: str,
    *,
    to_name: str = "",
    headers: Mapping[str, str] | None = None,
    app: App | None = None,
    **context: Any,
) -> EmailMessage:
    """Give the message `template` makes for `to`: text and HTML parts, every header set.

    Every name, address, subject and extra header is checked first; a control character
    in any of them raises HeaderInjection, a malformed address InvalidAddress.
    """
    app = app or jobs.current_app()
    settings = mail_settings(app)
    if not _KIND.match(kind):
        raise InvalidMail(f"the kind {kind!r} must be 1 to 40 of a-z, 0-9, _ and -")
    recipient = make_address(to, to_name)
    check_header_text(subject, "subject")
    extra = dict(headers or {})
    for name, value in extra.items():
        if not _HEADER_NAME.match(name) or name.lower() in _OWN_HEADERS:
            raise HeaderInjection(f"{name!r} cannot be added as a header")
        check_header_text(value, f"{name} header", limit=998)
    text, html = render_parts(
        app, template, {**context, "subject": subject, "recipient_name": to_name}
    )

    message = EmailMessage(policy=_POLICY)
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = recipient
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(idstring=kind, domain=settings.domain)
    for name, value in extra.items():
        if value.isascii():
            # As given: folding would turn a long URL (List-Unsubscribe) into an
            # encoded word, which mail clients do not read as a URL.
            message.set_raw(name, value)
        else:
            message[name] = value
    # Quoted-printable keeps every line short and the message 7-bit, whatever the server.
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message


def queue_mail(
    db: Session,
    *,
    kind: str,
    to: str,
    object_id: str | int,
    subject: str,
    template: str,
    to_name: str = "",
    headers: Mapping[str, str] | None = None,
    app: App | None = None,
    **context: Any,
) -> SentMessage:
    """Queue a message in `db`'s transaction, once per (kind, recipient, object id).

    Builds the message now (with `app`, by default the current one) and keeps its
    bytes; the `send_mail` job sends them after the transaction commits. Gives the
    row: the one already there if this message was asked for before (then nothing new
    is queued).
    """
    key = message_key(kind, to, object_id)
    existing = db.scalar(select(SentMessage).where(SentMessage.key == key))
    if existing is not None:
        return existing
    message = build_message(
        kind, to, subject, template, to_name=to_name, headers=headers, app=app, **context
    )
    row = SentMessage(
        key=key,
        kind=kind,
        recipient=to,
        subject=subject,
        message_id=str(message["Message-ID"]),
        message=message.as_bytes(),
        state="queued",
        attempts=0,
        last_error="",
        created_at=utcnow(),
    )
    try:
        with begin_savepoint(db):
            db.add(row)
    except IntegrityError:  # another request queued the same message a moment ago
        return db.scalars(select(SentMessage).where(SentMessage.key == key)).one()
    jobs.enqueue(db, send_mail, key)
    return row


# --- transports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """One message on its way: the bytes to send and the envelope."""

    raw: bytes
    sender: str
    recipient: str
    kind: str
    number: int  # the sent-messages row's id


class DeliveryFailed(Exception):
    """The mail server refused, failed or did not answer; the job will try again."""


class Transport(Protocol):
    def send(self, outgoing: Outgoing) -> None: ...


class SMTPTransport:
    """Sends through the server in SMTP_URL: `smtp://` (STARTTLS) or `smtps://` (TLS).

    `smtp://` upgrades with STARTTLS whenever the server offers it, and never sends a
    user name and password without TLS. Certificates are verified against the system's
    authorities (or `ssl_context`). Each step waits at most `timeout` seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        local_hostname: str = "localhost",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:password@host:587 or smtps://")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 587)
        self.user = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        self.timeout = timeout
        self.local_hostname = _ehlo_name(local_hostname)
        self.ssl_context = ssl_context
        self.where = f"{self.host}:{self.port}"  # for errors: never the password

    def send(self, outgoing: Outgoing) -> None:
        context = self.ssl_context or default_tls_context()
        try:
            if self.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=self.timeout,
                    context=context,
                )
            else:
                client = smtplib.SMTP(
                    self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
                )
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryFailed(f"{self.where}: {describe_error(error)}") from error
        try:
            client.ehlo()
            secure = self.implicit_tls
            if not secure and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
                secure = True
            if self.user:
                if not secure:
                    raise DeliveryFailed(
                        f"{self.where} offers no STARTTLS; the password is not sent in clear"
                    )
                client.login(self.user, self.password)
            client.sendmail(outgoing.sender, [outgoing.recipient], outgoing.raw)
        except (OSError, smtplib.SMTPException) as error:
            client.close()
            raise DeliveryFailed(f"{self.where}: {describe_error(error)}") from error
        except BaseException:
            client.close()
            raise
        # The server has the message: a failed goodbye must not make the job send it again.
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.quit()
        client.close()


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """Give the TLS context that verifies against the system's authorities, made once.

    Loading the authorities takes about 15 ms of CPU: made for every message, it was most
    of what sending a message cost (bench/mailing.py).
    """
    return ssl.create_default_context()


def _ehlo_name(host: str) -> str:
    """Give the name to greet the server with: the site's host, an address in brackets.

    Given explicitly so smtplib never asks the resolver for this machine's name.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"


def describe_error(error: BaseException) -> str:
    """Give a short, readable account of why a send failed (for the job's error)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = [f"{code} {_text(reply)}" for code, reply in error.recipients.values()]
        return "refused the recipient: " + "; ".join(replies)
    if isinstance(error, smtplib.SMTPResponseException):
        return f"answered {error.smtp_code} {_text(error.smtp_error)}"
    if isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
        return "did not answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "refused the connection"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return f"closed the connection ({error})"
    return f"{type(error).__name__}: {error}"


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return _UNSAFE.sub(" ", reply).strip()[:500]


class OutboxTransport:
    """Writes each message as `<timestamp>-<kind>-<id>.eml` in a folder (no SMTP_URL)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, outgoing: Outgoing) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        kind = re.sub(r"[^a-z0-9_-]", "_", outgoing.kind)[:40]
        target = self.folder / f"{stamp}-{kind}-{outgoing.number}.eml"
        # Written under a hidden name, then renamed: the outbox never shows half a message.
        fd, temp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(outgoing.raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def transport_for(settings: MailSettings) -> Transport:
    """Give the transport the settings ask for: the SMTP server, or the outbox folder."""
    if settings.smtp_url:
        return SMTPTransport(
            settings.smtp_url, timeout=settings.timeout, local_hostname=settings.domain
        )
    return OutboxTransport(settings.outbox)


# --- the job ----------------------------------------------------------------------------------


class MessageBusy(Exception):
    """Another job claimed this message a moment ago; try again once its claim lapses."""


def deliver(app: App, key: str) -> bool:
    """Send the queued message `key` unless it was sent; give whether it was sent now.

    Raises when the transport fails (the row goes back to queued, with the error), so
    the job is retried.
    """
    database = get_database(app)
    settings = mail_settings(app)
    with database.write() as db:
        row = db.scalars(
            select(SentMessage).where(SentMessage.key == key).with_for_update()
        ).one_or_none()
        if row is None:
            log.warning("no queued message %r to send", key)
            return False
        if row.state == "sent":
            return False
        now = utcnow()
        claimed = row.claimed_at if row.state == "sending" else None
        if claimed is not None and now - claimed < settings.claim_lease:
            raise MessageBusy(f"{key} has been sending since {row.claimed_at:%H:%M:%S} UTC")
        row.state, row.claimed_at, row.attempts = "sending", now, row.attempts + 1
        outgoing = Outgoing(
            raw=row.message,
            sender=settings.sender.addr_spec,
            recipient=row.recipient,
            kind=row.kind,
            number=row.id,
        )
    try:
        transport_for(settings).send(outgoing)
    except Exception as error:
        _record(database, key, state="queued", last_error=f"{error}"[:2000] or repr(error))
        raise
    _record(database, key, state="sent", sent_at=utcnow(), last_error="")
    return True


def _record(database: Database, key: str, **values: Any) -> None:
    with database.write() as db:
        db.execute(
            update(SentMessage)
            .where(SentMessage.key == key, SentMessage.state == "sending")
            .values(**values)
        )


@jobs.job(retries=5)
def send_mail(key: str) -> None:
    """Send the queued message `key` (at most once; errors raise, so it is retried)."""
    deliver(jobs.current_app(), key)


# --- /admin/outbox ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxMessage:
    """One .eml of the outbox, as /admin/outbox shows it."""

    name: str
    sender: str
    to: str
    subject: str
    date: datetime | None
    text: str


def outbox_messages(folder: Path, limit: int = OUTBOX_SHOWN) -> list[OutboxMessage]:
    """Give the newest `limit` messages of the outbox folder, newest first."""
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".eml") and not n.startswith(".")]
    except FileNotFoundError:
        return []
    return [read_outbox_message(folder / name) for name in sorted(names, reverse=True)[:limit]]


def read_outbox_message(path: Path) -> OutboxMessage:
    """Give one .eml's headers and text part (or a note where it cannot be read)."""
    try:
        with path.open("rb") as handle:
            parsed = email.message_from_bytes(handle.read(OUTBOX_READ_LIMIT), policy=policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        text = body.get_content().replace("\r\n", "\n") if body is not None else "(no text)"
        date_header = parsed["Date"]
        date = getattr(date_header, "datetime", None)
        return OutboxMessage(
            name=path.name,
            sender=str(parsed["From"] or ""),
            to=str(parsed["To"] or ""),
            subject=str(parsed["Subject"] or ""),
            date=date,
            text=text,
        )
    except (OSError, ValueError, LookupError, TypeError) as error:
        return OutboxMessage(path.name, "", "", "", None, f"(this file cannot be read: {error})")


@admin_required
def admin_outbox(request: Request) -> str:
    """The newest messages the site wrote to the outbox instead of sending them."""
    settings = mail_settings(jobs.current_app())
    smtp_host = urlsplit(settings.smtp_url).hostname if settings.smtp_url else None
    return render_template(
        "admin/outbox.html",
        messages=outbox_messages(settings.outbox),
        folder=settings.outbox,
        smtp_host=smtp_host,
        shown=OUTBOX_SHOWN,
    )


@admin_required
def send_test_mail(request: Request) -> Response:
    """Queue a test message to the signed-in administrator."""
    user = current_user(request)
    db = get_db(request)
    try:
        queue_mail(
            db,
            kind="test",
            to=user.email,
            to_name=user.display_name or user.username,
            object_id=uuid.uuid4().hex,  # every press is a message of its own
            subject=f"Test message from {jobs.current_app().config.get('SITE_NAME', '')}".strip(),
            template="test_message",
            name=user.display_name or user.username,
        )
    except InvalidMail as error:
        flash(f"No test message: {error}.", "error")
        return redirect(url_for("admin_outbox"))
    db.commit()
    flash(f"A test message to {user.email} is queued; the job worker sends it.", "success")
    return redirect(url_for("admin_outbox"))


def register(app: App) -> None:
    app.add_route("/admin/outbox", admin_outbox)
    app.add_route("/admin/outbox/test", send_test_mail, methods=["POST"])
