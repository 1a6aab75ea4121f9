"""Email (pyproject/blog/mail.py): real messages to a real SMTP server on loopback.

The server is aiosmtpd, on a free 127.0.0.1 port, with a handler that keeps what
arrives (or answers 4xx/5xx, or is slow, when a test asks it to); STARTTLS and SMTPS use
a self-signed certificate made with the openssl command. The job is run by calling
`deliver(app, key)`, and end to end by the real job worker. No traffic leaves loopback.
"""

from __future__ import annotations

import asyncio
import email
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from bs4 import BeautifulSoup
from sqlalchemy import func, select, update

from blog.conftest import AUTHOR, create_author, login, signup_admin
from pyproject.blog import jobs, mail
from pyproject.blog.db import get_database
from pyproject.blog.models import JobRecord, SentMessage, utcnow
from pyproject.lib import App
from pyproject.lib.testing import TestClient
from tests.conftest import build_app

BASE_URL = "http://localhost"


# --- a real SMTP server on loopback ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """An aiosmtpd handler: keeps each message that arrives, or answers as a test sets."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.rcpt_reply: str | None = None  # e.g. "550 5.1.1 No such user"
        self.data_reply: str | None = None  # e.g. "451 4.3.0 Try again later"
        self.delay = 0.0  # seconds to wait before answering DATA
        self.logins: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.data_reply:
            return self.data_reply
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = (login, password) == ("mailer", "p@ss word")
        if ok:
            self.logins.append(login)
        return AuthResult(success=ok, handled=False)

    def parsed(self) -> list[EmailMessage]:
        return [email.message_from_bytes(raw, policy=policy.default) for _, _, raw in self.messages]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (skips without openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    return cert, key


def client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts the test certificate (and verifies it)."""
    return ssl.create_default_context(cafile=str(certificate[0]))


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


@pytest.fixture
def start_server() -> Iterator[Callable[..., tuple[Mailbox, int]]]:
    """Start SMTP servers on loopback (options go to aiosmtpd's Controller); stop them after."""
    running: list[Controller] = []

    def start(**options: Any) -> tuple[Mailbox, int]:
        mailbox = Mailbox()
        port = free_port()
        if options.pop("login", False):
            options["authenticator"] = mailbox.authenticate
        controller = Controller(
            mailbox, hostname="127.0.0.1", port=port, server_hostname="localhost", **options
        )
        controller.start()
        running.append(controller)
        return mailbox, port

    yield start
    for controller in running:
        controller.stop()


@pytest.fixture
def server(start_server) -> tuple[Mailbox, int]:
    """A plain SMTP server (no TLS, no login), as a local relay would be."""
    return start_server()


# --- the site -------------------------------------------------------------------------------


def mail_site(tmp_path: Path, **overrides: Any) -> App:
    """Give a migrated app with the mail area's routes."""
    return build_app(tmp_path, BASE_URL=BASE_URL, **overrides)


@pytest.fixture
def site(tmp_path: Path, server: tuple[Mailbox, int]) -> Iterator[App]:
    """The blog sending to the plain loopback server."""
    app = mail_site(tmp_path, SMTP_URL=f"smtp://127.0.0.1:{server[1]}", SMTP_TIMEOUT=5)
    yield app
    get_database(app).dispose()


@pytest.fixture
def outbox_site(tmp_path: Path) -> Iterator[App]:
    """The blog without SMTP_URL: mail goes to instance/outbox/."""
    app = mail_site(tmp_path)
    yield app
    get_database(app).dispose()


def queue(app: App, *, to: str = "alice@example.com", object_id: str = "1", **fields: Any) -> str:
    """Queue a test message in a committed transaction; give its key."""
    values: dict[str, Any] = {
        "kind": "test",
        "subject": "Hello from the tests",
        "template": "test_message",
        "to_name": "Alice",
        "name": "Alice",
    }
    values.update(fields)
    with get_database(app).write() as db:
        return mail.queue_mail(db, app=app, to=to, object_id=object_id, **values).key


def sent_row(app: App, key: str) -> SentMessage:
    with get_database(app).read() as db:
        return db.scalars(select(SentMessage).where(SentMessage.key == key)).one()


def mail_jobs(app: App) -> int:
    with get_database(app).read() as db:
        return db.scalar(
            select(func.count()).select_from(JobRecord).where(JobRecord.name.like("%send_mail"))
        )


def parts(message: EmailMessage) -> tuple[str, str]:
    """Give a message's plain-text and HTML parts."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    # Parsed from the wire, lines end with CRLF; built in memory, with LF.
    return (
        text.get_content().replace("\r\n", "\n"),
        html.get_content().replace("\r\n", "\n"),
    )


def signed_in_admin(app: App) -> TestClient:
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    return admin


# --- building messages ----------------------------------------------------------------------


def test_a_message_has_both_parts_and_every_header(outbox_site: App) -> None:
    before = utcnow()
    message = mail.build_message(
        "test", "alice@example.com", "Hello & welcome", "test_message",
        to_name="Alice Ängström", app=outbox_site, name="Alice",
    )  # fmt: skip
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)

    assert parsed["From"] == "PyProject <noreply@localhost>"
    assert parsed["To"] == "Alice Ängström <alice@example.com>"
    assert parsed["Subject"] == "Hello & welcome"
    assert re.fullmatch(r"<[^<>@\s]+@localhost>", parsed["Message-ID"])
    assert abs(parsedate_to_datetime(parsed["Date"]) - before) < timedelta(minutes=1)
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parts(parsed)
    assert "Hello Alice," in text
    assert f"{BASE_URL}/admin/outbox" in text
    assert 'href="http://localhost/admin/outbox"' in html


def test_the_html_part_is_inline_styled_with_nothing_loaded_from_elsewhere(
    outbox_site: App,
) -> None:
    message = mail.build_message(
        "test", "alice@example.com", "Hi", "test_message", app=outbox_site, name="A"
    )
    _, html = parts(message)
    page = BeautifulSoup(html, "html.parser")

    assert page.select("[style]"), "styles are inline"
    assert not page.select("style, script, link, img, iframe, object")
    assert not re.search(r"\b(src|background)\s*=", html, re.IGNORECASE)
    assert "url(" not in html


def test_the_html_part_is_escaped_and_the_text_part_is_not(outbox_site: App) -> None:
    message = mail.build_message(
        "test", "a@example.com", "Tom & <Jerry>", "test_message",
        app=outbox_site, name="<script>alert(1)</script> & co",
    )  # fmt: skip
    text, html = parts(message)

    assert "Hello <script>alert(1)</script> & co," in text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "<title>Tom &amp; &lt;Jerry&gt;</title>" in html


def test_extra_headers_are_added(outbox_site: App) -> None:
    message = mail.build_message(
        "test", "a@example.com", "Hi", "test_message", app=outbox_site, name="A",
        headers={"List-Unsubscribe": "<http://localhost/unsubscribe/abc>"},
    )  # fmt: skip
    assert message["List-Unsubscribe"] == "<http://localhost/unsubscribe/abc>"


def test_a_long_url_header_goes_out_as_given_on_one_line(outbox_site: App) -> None:
    # Folded, a URL longer than a line became an RFC 2047 encoded word, which mail
    # clients do not read as the List-Unsubscribe URL.
    url = "<https://blog.example.org/unsubscribe/12." + "x" * 60 + ">"
    subject = "Ça va ? " + "un très long sujet " * 6
    message = mail.build_message(
        "test", "a@example.com", subject, "test_message", app=outbox_site, name="A",
        headers={"List-Unsubscribe": url},
    )  # fmt: skip
    lines = message.as_bytes().decode("ascii").split("\r\n")
    assert f"List-Unsubscribe: {url}" in lines
    assert all(len(line) <= 78 for line in lines if not line.startswith("List-Unsubscribe"))
    assert email.message_from_bytes(message.as_bytes(), policy=policy.default)["Subject"] == subject


def test_settings_come_from_the_config(tmp_path: Path) -> None:
    app = mail_site(tmp_path, MAIL_FROM="The Blog <blog@example.org>", SMTP_TIMEOUT=3)
    settings = mail.mail_settings(app)

    assert str(settings.sender) == "The Blog <blog@example.org>"
    assert settings.timeout == 3
    assert settings.outbox == tmp_path / "outbox"
    assert settings.smtp_url == ""
    assert settings.domain == "localhost"
    get_database(app).dispose()


INJECTIONS = [
    pytest.param({"to": "alice@example.com\r\nBcc: eve@example.com"}, id="address-crlf"),
    pytest.param({"to": "alice@example.com\nBcc: eve@example.com"}, id="address-lf"),
    pytest.param({"subject": "Hi\r\nBcc: eve@example.com"}, id="subject-crlf"),
    pytest.param({"subject": "Hi\rBcc: eve@example.com"}, id="subject-cr"),
    pytest.param({"subject": "Hi\nBcc: eve@example.com"}, id="subject-lf"),
    pytest.param({"subject": "Hi\x00there"}, id="subject-nul"),
    pytest.param({"subject": "Hi\u2028Bcc: eve@example.com"}, id="subject-line-separator"),
    pytest.param({"to_name": "Alice\r\nBcc: eve@example.com"}, id="name-crlf"),
    pytest.param({"to_name": "Alice\x00"}, id="name-nul"),
    pytest.param({"headers": {"X-Note\r\nBcc": "eve@example.com"}}, id="header-name-crlf"),
    pytest.param({"headers": {"X-Note": "a\r\nBcc: eve@example.com"}}, id="header-value-crlf"),
    pytest.param({"headers": {"X-Note": "a\nBcc: eve@example.com"}}, id="header-value-lf"),
    pytest.param({"headers": {"Bcc": "eve@example.com"}}, id="header-replacing-bcc"),
    pytest.param({"headers": {"From": "eve@example.com"}}, id="header-replacing-from"),
]


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_header_injection_is_refused_before_anything_is_built_or_queued(
    outbox_site: App, hostile: dict[str, Any]
) -> None:
    values: dict[str, Any] = {"to": "alice@example.com", "subject": "Hi", **hostile}
    with pytest.raises(mail.HeaderInjection) as refused:
        queue(outbox_site, **values)

    assert isinstance(refused.value, ValueError)
    with get_database(outbox_site).read() as db:
        assert db.scalar(select(func.count()).select_from(SentMessage)) == 0
    assert mail_jobs(outbox_site) == 0


@pytest.mark.parametrize(
    "address",
    [
        "no-at-sign",
        "a@b@example.com",
        "@example.com",
        "alice@",
        "alice smith@example.com",
        "<alice@example.com>",
        "Alice <alice@example.com>",
        "alice@-example.com",
        "alice@example..com",
        "alice..smith@example.com",
        "a" * 65 + "@example.com",
        "alice@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 60 + ".com",
        "alice@exämple.com",
    ],
)
def test_malformed_or_overlong_addresses_are_refused(outbox_site: App, address: str) -> None:
    with pytest.raises(mail.InvalidAddress):
        mail.build_message("test", address, "Hi", "test_message", app=outbox_site, name="A")


@pytest.mark.parametrize(
    "address", ["alice@example.com", "a.b+tag@mail.example.co.uk", "x@localhost", "O'Neil@x.org"]
)
def test_plain_addresses_are_accepted(outbox_site: App, address: str) -> None:
    message = mail.build_message("test", address, "Hi", "test_message", app=outbox_site, name="A")
    assert message["To"].addresses[0].addr_spec == address


def test_a_sender_with_a_line_break_is_refused(tmp_path: Path) -> None:
    app = mail_site(tmp_path, MAIL_FROM="Blog\r\nBcc: eve@example.com <blog@example.org>")
    with pytest.raises(mail.InvalidMail):
        mail.build_message("test", "a@example.com", "Hi", "test_message", app=app, name="A")
    get_database(app).dispose()


# --- sending through SMTP -------------------------------------------------------------------


def outgoing(message: EmailMessage, to: str = "alice@example.com") -> mail.Outgoing:
    return mail.Outgoing(message.as_bytes(), "noreply@localhost", to, "test", 1)


def a_message(app: App) -> EmailMessage:
    return mail.build_message(
        "test", "alice@example.com", "Over the wire", "test_message", app=app, name="Alice"
    )


def test_smtp_sends_a_message_as_built(outbox_site: App, server: tuple[Mailbox, int]) -> None:
    mailbox, port = server
    message = a_message(outbox_site)

    mail.SMTPTransport(f"smtp://127.0.0.1:{port}", timeout=5).send(outgoing(message))

    [(sender, recipients, raw)] = mailbox.messages
    assert (sender, recipients) == ("noreply@localhost", ["alice@example.com"])
    received = email.message_from_bytes(raw, policy=policy.default)
    for header in ("From", "To", "Subject", "Date", "Message-ID"):
        assert received[header] == message[header]
    assert parts(received) == parts(message)


def test_smtp_uses_starttls_and_logs_in_over_it(
    outbox_site: App, start_server, certificate
) -> None:
    mailbox, port = start_server(
        tls_context=server_context(certificate), require_starttls=True, login=True
    )
    transport = mail.SMTPTransport(
        f"smtp://mailer:p%40ss%20word@127.0.0.1:{port}",
        timeout=5,
        ssl_context=client_context(certificate),
    )
    transport.send(outgoing(a_message(outbox_site)))

    assert mailbox.logins == ["mailer"]
    assert len(mailbox.messages) == 1


def test_smtps_speaks_tls_from_the_first_byte(outbox_site: App, start_server, certificate):
    # aiosmtpd offers AUTH only after its own STARTTLS unless told the line is safe.
    mailbox, port = start_server(
        ssl_context=server_context(certificate), login=True, auth_require_tls=False
    )
    transport = mail.SMTPTransport(
        f"smtps://mailer:p%40ss%20word@127.0.0.1:{port}",
        timeout=5,
        ssl_context=client_context(certificate),
    )
    transport.send(outgoing(a_message(outbox_site)))

    assert mailbox.logins == ["mailer"]
    assert len(mailbox.messages) == 1


def test_a_certificate_that_does_not_verify_is_refused(
    outbox_site: App, start_server, certificate
) -> None:
    mailbox, port = start_server(tls_context=server_context(certificate), require_starttls=True)
    transport = mail.SMTPTransport(f"smtp://127.0.0.1:{port}", timeout=5)  # system CAs only

    with pytest.raises(mail.DeliveryFailed):
        transport.send(outgoing(a_message(outbox_site)))
    assert mailbox.messages == []


def test_a_password_is_never_sent_without_tls(outbox_site: App, server) -> None:
    mailbox, port = server
    transport = mail.SMTPTransport(f"smtp://mailer:secret-pw@127.0.0.1:{port}", timeout=5)

    with pytest.raises(mail.DeliveryFailed) as failed:
        transport.send(outgoing(a_message(outbox_site)))

    assert "STARTTLS" in str(failed.value)
    assert "secret-pw" not in str(failed.value)
    assert mailbox.messages == []


def test_smtp_url_defaults_ports_by_scheme() -> None:
    assert mail.SMTPTransport("smtp://mail.example", timeout=1).port == 587
    assert mail.SMTPTransport("smtps://mail.example", timeout=1).port == 465
    with pytest.raises(ValueError):
        mail.SMTPTransport("http://mail.example", timeout=1)


# --- the outbox -----------------------------------------------------------------------------


def test_the_outbox_transport_writes_a_parseable_eml_atomically(tmp_path: Path) -> None:
    app = mail_site(tmp_path)
    message = a_message(app)
    folder = tmp_path / "outbox"

    mail.OutboxTransport(folder).send(
        mail.Outgoing(message.as_bytes(), "noreply@localhost", "alice@example.com", "test", 7)
    )

    [written] = list(folder.iterdir())  # no temporary file left beside it
    assert re.fullmatch(r"\d{8}T\d{12}Z-test-7\.eml", written.name)
    parsed = email.message_from_bytes(written.read_bytes(), policy=policy.default)
    assert parsed["Message-ID"] == message["Message-ID"]
    assert parts(parsed) == parts(message)
    get_database(app).dispose()


def test_without_smtp_url_the_job_writes_to_the_outbox(outbox_site: App, tmp_path: Path) -> None:
    key = queue(outbox_site)

    assert mail.deliver(outbox_site, key) is True

    [written] = list((tmp_path / "outbox").glob("*.eml"))
    parsed = email.message_from_bytes(written.read_bytes(), policy=policy.default)
    assert parsed["To"] == "Alice <alice@example.com>"
    assert sent_row(outbox_site, key).state == "sent"


def test_admin_outbox_lists_the_newest_messages_with_their_text(outbox_site: App) -> None:
    first = queue(outbox_site, object_id="1", subject="The first one")
    second = queue(outbox_site, object_id="2", subject="The <b>second</b> one", name="<i>Al</i>")
    mail.deliver(outbox_site, first)
    mail.deliver(outbox_site, second)
    admin = signed_in_admin(outbox_site)

    page = admin.get("/admin/outbox")

    assert page.status_code == 200
    headings = [h.get_text() for h in page.html.select("article h2")]
    assert headings == ["The <b>second</b> one", "The first one"]
    assert "<b>second</b>" not in page.text and "<i>Al</i>" not in page.text
    texts = [pre.get_text() for pre in page.html.select("article pre")]
    assert texts[0].startswith("Hello <i>Al</i>,\n")
    assert "Alice <alice@example.com>" in page.html.select_one("article dl").get_text()


def test_admin_outbox_shows_at_most_100(outbox_site: App, tmp_path: Path) -> None:
    key = queue(outbox_site)
    mail.deliver(outbox_site, key)
    [written] = list((tmp_path / "outbox").glob("*.eml"))
    for n in range(120):
        shutil.copy(written, written.with_name(f"20200101T000000{n:06d}Z-test-{n}.eml"))
    admin = signed_in_admin(outbox_site)

    articles = admin.get("/admin/outbox").html.select("article")

    assert len(articles) == 100
    assert written.name in articles[0].get_text()  # the newest first


def test_admin_outbox_is_for_administrators_only(outbox_site: App) -> None:
    admin = signed_in_admin(outbox_site)
    assert create_author(admin, AUTHOR.username, AUTHOR.email, AUTHOR.password).status_code == 303
    author = outbox_site.test_client()
    login(author, AUTHOR.username, AUTHOR.password)
    anonymous = outbox_site.test_client()

    assert anonymous.get("/admin/outbox").status_code in (302, 303)
    assert author.get("/admin/outbox").status_code == 403
    assert anonymous.post("/admin/outbox/test", data={}).status_code in (302, 400, 403)
    assert mail_jobs(outbox_site) == 0


def test_admin_outbox_says_when_smtp_url_is_set(site: App) -> None:
    admin = signed_in_admin(site)
    page = admin.get("/admin/outbox")

    assert page.status_code == 200
    assert "SMTP_URL" in page.text and "127.0.0.1" in page.text
    assert "nothing new is written here" in page.text


# --- the job: at most once --------------------------------------------------------------------


def test_the_job_sends_once_however_often_it_runs(site: App, server) -> None:
    mailbox, _ = server
    key = queue(site)

    assert mail.deliver(site, key) is True
    assert mail.deliver(site, key) is False

    assert len(mailbox.messages) == 1
    row = sent_row(site, key)
    assert (row.state, row.attempts, row.last_error) == ("sent", 1, "")
    assert row.sent_at is not None


def test_queueing_the_same_message_twice_keeps_one_row_and_one_job(site: App, server) -> None:
    first = queue(site, subject="One")
    again = queue(site, to="ALICE@example.com", subject="One, again")

    assert first == again == "test:alice@example.com:1"
    assert mail_jobs(site) == 1
    assert sent_row(site, first).subject == "One"


def test_two_requests_queueing_the_same_message_at_once_keep_one(any_db_app: App) -> None:
    app = any_db_app
    database = get_database(app)
    fields: dict[str, Any] = {
        "app": app, "kind": "test", "to": "a@example.com", "object_id": "1",
        "subject": "Hi", "template": "test_message", "name": "A",
    }  # fmt: skip
    first = database.session(write=True)
    key = mail.queue_mail(first, **fields).key
    keys: list[str] = []

    def second_request() -> None:
        with database.write() as db:  # waits for the first's write to end
            keys.append(mail.queue_mail(db, **fields).key)

    racer = threading.Thread(target=second_request)
    racer.start()
    time.sleep(0.3)
    first.commit()
    first.close()
    racer.join(timeout=30)

    assert keys == [key]
    with database.read() as db:
        assert db.scalar(select(func.count()).select_from(SentMessage)) == 1
    assert mail_jobs(app) == 1


def test_a_rolled_back_transaction_queues_nothing(site: App) -> None:
    with get_database(site).session(write=True) as db:
        mail.queue_mail(
            db, app=site, kind="test", to="a@example.com", object_id="1",
            subject="Hi", template="test_message", name="A",
        )  # fmt: skip
        db.rollback()

    with get_database(site).read() as db:
        assert db.scalar(select(func.count()).select_from(SentMessage)) == 0
    assert mail_jobs(site) == 0


def test_a_message_already_sent_is_not_sent_again(site: App, server) -> None:
    mailbox, _ = server
    key = queue(site)
    with get_database(site).write() as db:
        db.execute(update(SentMessage).values(state="sent", sent_at=utcnow()))

    assert mail.deliver(site, key) is False
    assert mailbox.messages == []


def test_a_message_another_job_is_sending_is_left_to_it(site: App, server) -> None:
    mailbox, _ = server
    key = queue(site)
    with get_database(site).write() as db:
        db.execute(update(SentMessage).values(state="sending", claimed_at=utcnow()))

    with pytest.raises(mail.MessageBusy):
        mail.deliver(site, key)
    assert mailbox.messages == []


def test_after_a_crash_between_send_and_record_it_is_sent_once_more_then_never(
    site: App, server
) -> None:
    mailbox, _ = server
    key = queue(site)
    lapsed = utcnow() - mail.mail_settings(site).claim_lease - timedelta(seconds=1)
    # What a worker killed right after the server took the message leaves behind.
    with get_database(site).write() as db:
        db.execute(update(SentMessage).values(state="sending", claimed_at=lapsed, attempts=1))

    assert mail.deliver(site, key) is True
    assert mail.deliver(site, key) is False
    assert len(mailbox.messages) == 1
    assert sent_row(site, key).attempts == 2


def test_the_job_sends_exactly_the_bytes_that_were_queued(site: App, server) -> None:
    mailbox, _ = server
    key = queue(site)
    stored = sent_row(site, key)

    mail.deliver(site, key)

    received = email.message_from_bytes(mailbox.messages[0][2], policy=policy.default)
    assert received["Message-ID"] == stored.message_id
    queued = email.message_from_bytes(stored.message, policy=policy.default)
    assert parts(received) == parts(queued)


# --- a mail server that is down, slow or refusing -------------------------------------------


def failing_site(tmp_path: Path, url: str, timeout: float = 5) -> App:
    return mail_site(tmp_path, SMTP_URL=url, SMTP_TIMEOUT=timeout)


def assert_failed_and_queued(app: App, key: str, words: str) -> None:
    row = sent_row(app, key)
    assert row.state == "queued"
    assert words in row.last_error, row.last_error


def test_a_closed_port_makes_the_job_raise(tmp_path: Path) -> None:
    app = failing_site(tmp_path, f"smtp://127.0.0.1:{free_port()}")
    key = queue(app)

    with pytest.raises(mail.DeliveryFailed, match="refused the connection"):
        mail.deliver(app, key)
    assert_failed_and_queued(app, key, "refused the connection")
    get_database(app).dispose()


@pytest.mark.parametrize(
    ("where", "reply"),
    [
        ("data_reply", "451 4.3.0 Try again later"),
        ("data_reply", "554 5.7.1 Message rejected"),
        ("rcpt_reply", "550 5.1.1 No such user"),
        ("rcpt_reply", "450 4.2.0 Mailbox busy"),
    ],
)
def test_4xx_and_5xx_replies_make_the_job_raise(
    tmp_path: Path, start_server, where: str, reply: str
) -> None:
    mailbox, port = start_server()
    setattr(mailbox, where, reply)
    app = failing_site(tmp_path, f"smtp://127.0.0.1:{port}")
    key = queue(app)

    with pytest.raises(mail.DeliveryFailed, match=reply.split()[0]):
        mail.deliver(app, key)
    assert_failed_and_queued(app, key, reply.split()[0])
    assert mailbox.messages == []

    setattr(mailbox, where, None)  # the server is back: the retry sends it, once
    assert mail.deliver(app, key) is True
    assert len(mailbox.messages) == 1
    get_database(app).dispose()


def test_a_slow_server_times_out_and_the_job_raises(tmp_path: Path, start_server) -> None:
    mailbox, port = start_server()
    mailbox.delay = 3
    app = failing_site(tmp_path, f"smtp://127.0.0.1:{port}", timeout=0.5)
    key = queue(app)

    started = time.monotonic()
    with pytest.raises(mail.DeliveryFailed, match="did not answer in time"):
        mail.deliver(app, key)

    assert time.monotonic() - started < 2.5
    assert_failed_and_queued(app, key, "did not answer in time")
    get_database(app).dispose()


# --- end to end: a request queues, the real worker sends -------------------------------------


def eventually(condition: Callable[[], Any], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


@pytest.fixture
def run_worker() -> Iterator[Callable[[App], jobs.Worker]]:
    started: list[jobs.Worker] = []

    def start(app: App) -> jobs.Worker:
        worker = jobs.Worker(app, threads=1)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def press_send_test_message(admin: TestClient) -> Any:
    values = admin.get("/admin/outbox").form_values('form[action="/admin/outbox/test"]')
    return admin.post("/admin/outbox/test", data=values)


def test_a_test_message_arrives_and_its_links_work(
    tmp_path: Path, server: tuple[Mailbox, int], run_worker
) -> None:
    mailbox, port = server
    app = mail_site(tmp_path, SMTP_URL=f"smtp://127.0.0.1:{port}", JOB_RETRY_SECONDS=0.05)
    admin = signed_in_admin(app)

    answer = press_send_test_message(admin)
    assert answer.status_code == 303
    assert mailbox.messages == []  # nothing is sent in the request
    run_worker(app)

    assert eventually(lambda: mailbox.messages)
    [received] = mailbox.parsed()
    assert received["To"].addresses[0].addr_spec == "admin@example.com"
    assert received["Subject"] == "Test message from PyProject"
    text, html = parts(received)
    links = set(re.findall(r"https?://\S+", text))
    links |= {a["href"] for a in BeautifulSoup(html, "html.parser").select("a[href]")}
    assert f"{BASE_URL}/admin/outbox" in links
    for link in links:
        assert link.startswith(BASE_URL + "/"), link
        assert admin.get(urlsplit(link).path).status_code == 200, link
    assert eventually(lambda: mail_jobs(app) == 0)  # the job is done and off the ledger
    get_database(app).dispose()


def test_a_refusing_server_fails_the_job_visibly_and_the_request_never_waits(
    tmp_path: Path, start_server, run_worker
) -> None:
    mailbox, port = start_server()
    mailbox.data_reply = "554 5.7.1 Message rejected"
    mailbox.delay = 0.2
    app = mail_site(
        tmp_path, SMTP_URL=f"smtp://127.0.0.1:{port}", SMTP_TIMEOUT=2, JOB_RETRY_SECONDS=0.02
    )
    admin = signed_in_admin(app)
    run_worker(app)

    started = time.monotonic()
    answer = press_send_test_message(admin)
    assert answer.status_code == 303
    assert time.monotonic() - started < 1.0

    def failed() -> list[JobRecord]:
        with get_database(app).read() as db:
            return list(db.scalars(select(JobRecord).where(JobRecord.state == "failed")))

    assert eventually(failed, timeout=40)
    [job] = failed()
    assert job.name.endswith("send_mail")
    assert job.attempts == 1 + mail.send_mail.retries
    assert "554" in job.error
    page = admin.get("/admin/jobs")
    assert "send_mail" in page.text and "554" in page.text
    assert mailbox.messages == []
    get_database(app).dispose()


def test_the_job_is_registered_with_retries() -> None:
    assert mail.send_mail.name in jobs.JOBS
    assert mail.send_mail.retries == 5


def test_smtplib_errors_are_described_without_secrets() -> None:
    refused = smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"5.1.1 No such user")})
    assert mail.describe_error(refused) == "refused the recipient: 550 5.1.1 No such user"
    assert mail.describe_error(smtplib.SMTPDataError(451, b"later\r\nX")) == "answered 451 later  X"
    assert mail.describe_error(TimeoutError()) == "did not answer in time"
