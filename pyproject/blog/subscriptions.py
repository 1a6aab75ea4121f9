"""Email subscriptions: readers get each new post by email, after confirming their address.

A reader types an address at /subscribe (the form on the home page and every post page
sends it there). A new address becomes a pending subscriber and gets one confirmation
message; nothing else is sent to it until its link is followed. The page answers the
same whatever the address's state, and the request only queues a job that looks the
address up (no one learns who subscribes, not even from the time an answer takes); a
pending address is sent the link again at most once an hour, a confirmed one gets
nothing new, and both the client and the address are throttled.

When a post is first public (saved as published now, or its scheduled time arrives) the
`announce_post` job marks it announced and, in the same transaction, queues one message
per confirmed subscriber (in batches, each batch a job of its own); the once-only key of
each message is (kind "post", recipient, post id), and the mark means later edits mail
nobody. A periodic job finds posts that went live with no announcement (scheduled posts).

Every message to a subscriber carries RFC 8058 one-click unsubscribe headers and a
visible link. The link is signed with SECRET_KEY and the subscriber's own random secret;
POST /unsubscribe/<token> needs no CSRF token (a mail client posts there without any
session): the signed token is the proof.

Also here: `notify_author` and `notify_person`, how later features mail a post's author
or someone replied to.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from huey import crontab
from markupsafe import Markup
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pyproject.blog import jobs, mail, throttle
from pyproject.blog.auth import admin_required
from pyproject.blog.db import begin_savepoint, get_database, get_db
from pyproject.blog.forms import Form
from pyproject.blog.markup import ALLOWED_TAGS, IMAGE_SCHEMES, LINK_SCHEMES
from pyproject.blog.models import JobRecord, Post, SentMessage, Subscriber, User, utcnow, visible
from pyproject.lib import App, Request, Response, flash, redirect, render_template, url_for
from pyproject.lib.exceptions import NotFound

log = logging.getLogger("pyproject.subscriptions")

CONFIRM_FOR = timedelta(days=7)  # how long a confirmation link works
RESEND_AFTER = timedelta(hours=1)  # a pending address is sent its link at most this often
SUBSCRIBE_LIMITS = {
    "client": throttle.Limit(10, 3600),  # subscribe forms one client may send an hour
    "address": throttle.Limit(5, 3600),  # and forms naming one address
}
# Messages one announce job queues (the rest: a job per batch after it). Each message is
# built in the batch's write transaction (a few ms for a long post): small batches keep
# the database's write lock free for authors' saves.
BATCH = 50
PER_PAGE = 50  # subscribers a page of /admin/subscribers lists
MAX_EMAIL = 254
STATES = ("pending", "confirmed", "unsubscribed")


# --- addresses and signed links -------------------------------------------------------------


def normalise_email(typed: str) -> str:
    """Give a typed address as kept: without surrounding spaces, in lower case."""
    return typed.strip(" \t").lower()


def _mac(app: App, purpose: str, subscriber_id: int, secret: str, expires: int = 0) -> str:
    key = str(app.config["SECRET_KEY"]).encode()
    message = f"{purpose}\x00{subscriber_id}\x00{expires}\x00{secret}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def confirm_token(app: App, subscriber: Subscriber, now: datetime | None = None) -> str:
    """Give the token of a confirmation link for `subscriber`, good for CONFIRM_FOR."""
    expires = int(((now or utcnow()) + CONFIRM_FOR).timestamp())
    mac = _mac(app, "confirm", subscriber.id, subscriber.secret, expires)
    return f"{subscriber.id}.{expires}.{mac}"


def unsubscribe_token(app: App, subscriber_id: int, secret: str) -> str:
    """Give the token of a subscriber's unsubscribe link (it does not expire)."""
    return f"{subscriber_id}.{_mac(app, 'unsubscribe', subscriber_id, secret)}"


_CONFIRM_TOKEN = re.compile(r"([1-9][0-9]{0,17})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})\Z")
_UNSUBSCRIBE_TOKEN = re.compile(r"([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{43})\Z")


def subscriber_for_confirm(app: App, db: Session, token: str) -> tuple[Subscriber | None, str]:
    """Give the subscriber a confirmation token names and "ok", "expired" or "wrong"."""
    match = _CONFIRM_TOKEN.match(token)
    if match is None:
        return None, "wrong"
    subscriber = db.get(Subscriber, int(match[1]))
    if subscriber is None:
        return None, "wrong"
    expected = _mac(app, "confirm", subscriber.id, subscriber.secret, int(match[2]))
    if not hmac.compare_digest(expected, match[3]):
        return None, "wrong"
    if int(match[2]) < utcnow().timestamp():
        return subscriber, "expired"
    return subscriber, "ok"


def subscriber_for_unsubscribe(app: App, db: Session, token: str) -> Subscriber | None:
    """Give the subscriber an unsubscribe token names, or None when it is not genuine."""
    match = _UNSUBSCRIBE_TOKEN.match(token)
    if match is None:
        return None
    subscriber = db.get(Subscriber, int(match[1]))
    if subscriber is None:
        return None
    expected = _mac(app, "unsubscribe", subscriber.id, subscriber.secret)
    return subscriber if hmac.compare_digest(expected, match[2]) else None


def unsubscribe_headers(url: str) -> dict[str, str]:
    """Give the RFC 8058 one-click unsubscribe headers for an unsubscribe URL."""
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _unsubscribe_url(app: App, subscriber_id: int, secret: str) -> str:
    return app.url_for(
        "unsubscribe", token=unsubscribe_token(app, subscriber_id, secret), _external=True
    )


# --- subscribing ----------------------------------------------------------------------------


def _site_name(app: App) -> str:
    from pyproject.blog.settings import site_settings  # (the title of /admin/settings, #17)

    return str(site_settings(app).title or urlsplit(str(app.config["BASE_URL"])).hostname)


def send_confirmation(app: App, db: Session, subscriber: Subscriber, now: datetime) -> None:
    """Queue the confirmation message for a pending subscriber (in `db`'s transaction)."""
    subscriber.last_confirm_sent_at = now
    unsubscribe_url = _unsubscribe_url(app, subscriber.id, subscriber.secret)
    mail.queue_mail(
        db,
        kind="confirm",
        to=subscriber.email,
        # One message per sending: a resend an hour later, or after subscribing again
        # (a new secret), is a message of its own.
        object_id=f"{subscriber.id}:{subscriber.secret[:8]}:{int(now.timestamp())}",
        subject=f"Confirm your subscription to {_site_name(app)}",
        template="confirm",
        headers=unsubscribe_headers(unsubscribe_url),
        app=app,
        confirm_url=app.url_for(
            "confirm_subscription", token=confirm_token(app, subscriber, now), _external=True
        ),
        unsubscribe_url=unsubscribe_url,
        days=CONFIRM_FOR.days,
    )


def subscribe_address(app: App, db: Session, email: str, now: datetime | None = None) -> None:
    """Do what a subscribe form naming `email` asks, in `db`'s transaction.

    A new address becomes pending and is sent its link; a pending one is sent it again
    if the last was sent RESEND_AFTER ago; an unsubscribed one becomes pending again,
    with a new secret; a confirmed one is left alone.
    """
    now = now or utcnow()
    subscriber = db.scalar(select(Subscriber).where(Subscriber.email == email))
    if subscriber is None:
        subscriber = Subscriber(
            email=email, state="pending", secret=secrets.token_hex(32), created_at=now
        )
        try:
            with begin_savepoint(db):
                db.add(subscriber)
        except IntegrityError:  # another request added the address a moment ago
            return
        send_confirmation(app, db, subscriber, now)
    elif subscriber.state == "unsubscribed":
        subscriber.state, subscriber.secret = "pending", secrets.token_hex(32)
        subscriber.confirmed_at = None
        send_confirmation(app, db, subscriber, now)
    elif subscriber.state == "pending":
        last = subscriber.last_confirm_sent_at
        if last is None or now - last >= RESEND_AFTER:
            send_confirmation(app, db, subscriber, now)


@jobs.job(retries=5)
def handle_subscription(email: str) -> None:
    """Do what a subscribe form naming `email` asked (see subscribe_address)."""
    app = jobs.current_app()
    with get_database(app).write() as db:
        subscribe_address(app, db, email)


def _subscribe_page(form: Form, status: int = 200, wait: int = 0) -> Response:
    response = Response(render_template("subscriptions/subscribe.html", form=form), status)
    if wait:
        response.headers.set("Retry-After", str(wait))
    return response


def check_email_field(form: Form) -> str:
    """Give the form's address normalised, recording an error beside it when it is unfit."""
    raw = form.get("email")
    if "\r" in raw or "\n" in raw:
        form.error("email", "An email address is one line, without line breaks.")
        return ""
    email = normalise_email(form.text("email", label="Email address", required=True))
    if form.errors:
        return ""
    if len(email) > MAX_EMAIL:
        form.error("email", f"An email address is at most {MAX_EMAIL} characters long.")
        return ""
    try:
        mail.check_address(email)
    except mail.InvalidMail:
        form.error("email", "That does not look like an email address (name@example.com).")
        return ""
    return email


def subscribe(request: Request) -> Response:
    """The subscribe form, and what sending it does (the same answer for every address)."""
    if request.method != "POST":
        typed = request.args.get("email", "")
        form = Form({"email": typed[: MAX_EMAIL + 1]}, ("email",))
        return _subscribe_page(form)
    form = Form(request.form, ("email",))
    email = check_email_field(form)
    if not form.ok:
        return _subscribe_page(form, 422)
    db = get_db(request)
    limits = {name: (key, limit) for name, key, limit in _limit_keys(request, email)}
    wait = throttle.hit(
        db, "subscribe", limits, secret=str(jobs.current_app().config["SECRET_KEY"])
    )
    if wait:
        minutes = max(1, (wait + 59) // 60)
        form.error(
            "email",
            f"Too many subscriptions asked for. Try again in {minutes} "
            f"minute{'s' if minutes != 1 else ''}.",
        )
        return _subscribe_page(form, 429, wait)
    # The address is looked up by the job, not here: the request does the same work, and
    # takes the same time, whatever the address's state.
    jobs.enqueue(db, handle_subscription, email)
    db.commit()
    flash(
        f"Thank you. If {email} can subscribe, a message with a confirmation link is on its "
        "way; nothing else is sent until the link is followed.",
        "success",
    )
    return redirect(url_for("subscribe"))


def _limit_keys(request: Request, email: str) -> Iterable[tuple[str, str, throttle.Limit]]:
    yield "client", request.remote_addr, SUBSCRIBE_LIMITS["client"]
    yield "address", email, SUBSCRIBE_LIMITS["address"]


def _link_page(title: str, message: str, status: int = 200, **context: Any) -> Response:
    page = render_template("subscriptions/link.html", title=title, message=message, **context)
    return Response(page, status)


def confirm_subscription(request: Request, token: str) -> Response:
    """Follow a confirmation link: the pending subscriber is confirmed, once."""
    app = jobs.current_app()
    with get_database(app).write() as db:
        subscriber, verdict = subscriber_for_confirm(app, db, token)
        if verdict == "wrong" or subscriber is None:
            return _link_page(
                "This link does not work",
                "This confirmation link is not one we sent, or it was cut short. "
                "Copy the whole link from the message, or subscribe again.",
                404,
            )
        if subscriber.state != "pending":
            return _link_page(
                "This link was already used",
                "This confirmation link has done its work and changes nothing now.",
                410,
            )
        if verdict == "expired":
            return _link_page(
                "This link has expired",
                f"Confirmation links work for {CONFIRM_FOR.days} days. Subscribe again "
                "to get a new one.",
                410,
            )
        subscriber.state, subscriber.confirmed_at = "confirmed", utcnow()
        unsubscribe_url = _unsubscribe_url(app, subscriber.id, subscriber.secret)
    return _link_page(
        "You are subscribed",
        "Each new post will come to you by email. Every message has a link to unsubscribe.",
        unsubscribe_url=unsubscribe_url,
    )


def unsubscribe(request: Request, token: str) -> Response:
    """GET: a button that asks; POST (a reader, or a mail client's one click): unsubscribe.

    The POST is exempt from the CSRF check (see register): mail clients send it with no
    session, and the signed token is the proof. It answers 200 rather than redirecting,
    as RFC 8058 clients expect no redirect to follow.
    """
    db = get_db(request)
    subscriber = subscriber_for_unsubscribe(jobs.current_app(), db, token)
    if subscriber is None:
        return _link_page(
            "This link does not work",
            "This unsubscribe link is not one we sent, or it was cut short. Copy the whole "
            "link from the message.",
            404,
        )
    if request.method != "POST":
        return Response(
            render_template(
                "subscriptions/unsubscribe.html",
                token=token,
                done=subscriber.state == "unsubscribed",
            )
        )
    if subscriber.state == "unsubscribed":
        return _link_page("You are unsubscribed", "This address was already unsubscribed.")
    subscriber.state, subscriber.unsubscribed_at = "unsubscribed", utcnow()
    db.commit()
    return _link_page(
        "You are unsubscribed",
        "No more posts will be sent to this address. You can subscribe again at any time.",
    )


# --- announcing new posts -------------------------------------------------------------------


def announce_when_public(db: Session, post: Post) -> None:
    """Ask for the post's announcement once `db` commits, if it is public and unannounced.

    The editor calls this in the transaction that saves the post.
    """
    if post.id is not None and post.is_published and post.announced_at is None:
        jobs.enqueue(db, announce_post, post.id)


@jobs.job(retries=5)
def announce_post(post_id: int) -> int:
    """Mark a newly public post announced and queue its message to each confirmed subscriber.

    Idempotent: only the run that sets `announced_at` queues anything. Gives how many
    messages this run queued (the first batch; later batches are jobs of their own).
    """
    app = jobs.current_app()
    with get_database(app).write() as db:
        post = db.get(Post, post_id)
        if post is None or post.announced_at is not None or not post.is_published:
            return 0
        now = utcnow()
        claimed = db.execute(
            update(Post)
            .where(Post.id == post_id, Post.announced_at.is_(None))
            .values(announced_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # another run claimed it first
            return 0
        return _queue_batch(db, app, post, now, after=0)


@jobs.job(retries=5)
def announce_batch(post_id: int, after: int) -> int:
    """Queue the post's message to the next batch of subscribers (ids above `after`)."""
    app = jobs.current_app()
    with get_database(app).write() as db:
        post = db.get(Post, post_id)
        if post is None or post.announced_at is None or not post.is_published:
            return 0
        return _queue_batch(db, app, post, post.announced_at, after=after)


def _queue_batch(db: Session, app: App, post: Post, announced_at: datetime, *, after: int) -> int:
    """Queue one batch of the post's messages; enqueue the next batch if there may be more."""
    rows = db.execute(
        select(Subscriber.id, Subscriber.email, Subscriber.secret)
        .where(
            Subscriber.state == "confirmed",
            Subscriber.confirmed_at <= announced_at,
            Subscriber.id > after,
        )
        .order_by(Subscriber.id)
        .limit(BATCH)
    ).all()
    if not rows:
        return 0
    if len(rows) == BATCH:
        # Asked for first, so the queue hands the next batch to a worker thread while the
        # others send this one's messages.
        jobs.enqueue(db, announce_batch, post.id, rows[-1][0])
    post_url = app.url_for("show_post", slug=post.slug, _external=True)
    context = {
        "post": post,
        "post_url": post_url,
        # The sanitiser's HTML, rewritten tag by tag with every value escaped again.
        "post_html": Markup(email_html(post.body_html, post_url)),  # noqa: S704  # nosec B704
        "author_name": post.author.display_name or post.author.username,
    }
    subject = one_line(post.title) or "A new post"
    queued = 0
    for subscriber_id, email, secret in rows:
        unsubscribe_url = _unsubscribe_url(app, subscriber_id, secret)
        try:
            mail.queue_mail(
                db,
                kind="post",
                to=email,
                object_id=post.id,
                subject=subject,
                template="post",
                headers=unsubscribe_headers(unsubscribe_url),
                app=app,
                unsubscribe_url=unsubscribe_url,
                **context,
            )
            queued += 1
        except mail.InvalidMail as error:  # one unfit address must not stop the others
            log.warning("post %s not queued for subscriber %s: %s", post.id, subscriber_id, error)
    return queued


_UNSAFE_IN_SUBJECT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str) -> str:
    """Give text fit for a Subject: control characters and line breaks become spaces."""
    return " ".join(_UNSAFE_IN_SUBJECT.sub(" ", text).split())[: mail.MAX_SUBJECT]


@jobs.job(retries=2, periodic=crontab(minute="*"))
def announce_due_posts() -> int:
    """Every minute: ask for the announcement of posts that went live unannounced.

    These are scheduled posts whose time came (and any public post whose announcement
    was never asked for). A post whose announcement already waits is left to it. Gives
    how many were asked for.
    """
    app = jobs.current_app()
    due_now = (
        select(Post.id)
        .where(*visible(utcnow()), Post.announced_at.is_(None))
        .order_by(Post.published_at, Post.id)
        .limit(100)
    )
    with get_database(app).read() as db:  # most minutes: nothing due, no write lock taken
        if not db.scalars(due_now).first():
            return 0
    with get_database(app).write() as db:
        due = db.scalars(due_now).all()
        waiting = set(
            db.scalars(
                select(JobRecord.args).where(
                    JobRecord.name == announce_post.name,
                    JobRecord.state.in_(("waiting", "running")),
                )
            )
        )
        asked = 0
        for post_id in due:
            if json.dumps([post_id]) not in waiting:
                jobs.enqueue(db, announce_post, post_id)
                asked += 1
        return asked


# --- a post's HTML, made fit for email --------------------------------------------------------

_DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "form", "svg",
     "math", "audio", "video", "canvas", "head", "title", "button", "select", "textarea"}
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img"})
_FONT = "-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
_MONO = "Menlo,Consolas,'Liberation Mono',monospace"
_HEADING_SIZES = {"h1": 24, "h2": 21, "h3": 18, "h4": 16, "h5": 15, "h6": 14}
EMAIL_STYLES: dict[str, str] = {
    "p": "margin:0 0 16px 0;",
    "a": "color:#1d4ed8;",
    "img": "max-width:100%;height:auto;border:0;",
    "pre": (
        "margin:0 0 16px 0;padding:12px;background-color:#f4f4f5;border-radius:4px;"
        f"white-space:pre-wrap;word-wrap:break-word;font-family:{_MONO};font-size:14px;"
        "line-height:1.4;"
    ),
    "code": f"font-family:{_MONO};font-size:14px;",
    "blockquote": (
        "margin:0 0 16px 0;padding:0 0 0 12px;border-left:3px solid #d4d4d8;color:#52525b;"
    ),
    "ul": "margin:0 0 16px 0;padding-left:24px;",
    "ol": "margin:0 0 16px 0;padding-left:24px;",
    "li": "margin:0 0 4px 0;",
    "table": "border-collapse:collapse;margin:0 0 16px 0;",
    "th": "border:1px solid #e4e4e7;padding:4px 8px;text-align:left;",
    "td": "border:1px solid #e4e4e7;padding:4px 8px;vertical-align:top;",
    "hr": "border:0;border-top:1px solid #e4e4e7;margin:24px 0;",
    "dl": "margin:0 0 16px 0;",
    "dd": "margin:0 0 8px 16px;",
    "mark": "background-color:#fef08a;",
    "kbd": f"font-family:{_MONO};font-size:14px;border:1px solid #d4d4d8;padding:0 4px;",
    **{
        tag: f"margin:24px 0 12px 0;font-family:{_FONT};font-size:{size}px;line-height:1.3;"
        for tag, size in _HEADING_SIZES.items()
    },
}


class _EmailHTML(HTMLParser):
    """Rewrites sanitised post HTML for email: allowed tags only, absolute links, inline styles."""

    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.out: list[str] = []
        self.skipping = 0  # depth inside an element dropped with its content
        self.open: list[str | None] = []  # each open element: its tag, or None if dropped

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, void=tag in _VOID)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, void=True)

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], *, void: bool) -> None:
        values = {name: value or "" for name, value in attrs}
        drop_all = tag in _DROPPED_WITH_CONTENT or (
            tag == "a" and "headerlink" in values.get("class", "").split()
        )
        if self.skipping or drop_all:
            if not void:
                self.skipping += 1
                self.open.append(tag)
            return
        kept = self._attributes(tag, values) if tag in ALLOWED_TAGS else None
        if kept is None:  # not ours to write: its content stays, the tag goes
            if not void:
                self.open.append(None)
            return
        style = EMAIL_STYLES.get(tag)
        if style:
            kept.append(("style", style))
        text = "".join(f' {name}="{escape(value, quote=True)}"' for name, value in kept)
        self.out.append(f"<{tag}{text}>")
        if not void:
            self.open.append(tag)

    def _attributes(self, tag: str, values: dict[str, str]) -> list[tuple[str, str]] | None:
        kept: list[tuple[str, str]] = []
        if tag == "a" and values.get("href"):
            href = self._absolute(values["href"], LINK_SCHEMES)
            if href:
                kept.append(("href", href))
        if tag == "img":
            src = self._absolute(values.get("src", ""), IMAGE_SCHEMES)
            if not src:
                return None
            kept.append(("src", src))
            kept.append(("alt", values.get("alt", "")))
        for name in ("title", "start"):
            if values.get(name) and name in _KEPT_ATTRIBUTES.get(tag, ()):
                kept.append((name, values[name]))
        return kept

    def _absolute(self, url: str, schemes: frozenset[str]) -> str:
        joined = urljoin(self.base, url.strip())
        return joined if urlsplit(joined).scheme.lower() in schemes else ""

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or tag not in self.open:
            return
        while self.open:
            if self._close_innermost() == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(escape(data, quote=False))

    def result(self) -> str:
        self.close()
        while self.open:
            self._close_innermost()
        return "".join(self.out)

    def _close_innermost(self) -> str | None:
        """Close the innermost open element (silently if it was skipped); give its tag."""
        top = self.open.pop()
        if self.skipping:
            self.skipping -= 1
        elif top is not None:
            self.out.append(f"</{top}>")
        return top


_KEPT_ATTRIBUTES = {"a": ("title",), "img": ("title",), "abbr": ("title",), "ol": ("start",)}


def email_html(body_html: str, base: str) -> str:
    """Give a post's HTML as email wants it: links and images absolute against `base`,
    no scripts, frames or forms, every element styled inline (clients drop stylesheets)."""
    parser = _EmailHTML(base)
    parser.feed(body_html)
    return parser.result()


# --- hooks for later features ---------------------------------------------------------------


def notify_author(
    db: Session,
    post_id: int,
    kind: str,
    *,
    subject: str,
    object_id: str | int | None = None,
    template: str = "notify_author",
    app: App | None = None,
    **context: Any,
) -> SentMessage | None:
    """Queue a message to the author of a post (a comment on it, a mention...), once.

    The once-only key is (kind, the author's address, `object_id`, by default the
    post's id): pass the id of what the message is about. The template gets `post`,
    `post_url`, `author_name` and `context`. Gives the queued row, or None when the
    post or an author's address is missing.
    """
    app = app or jobs.current_app()
    row = db.execute(
        select(Post, User).join(User, User.id == Post.author_id).where(Post.id == post_id)
    ).first()
    if row is None or not row[1].email:
        return None
    post, author = row
    name = author.display_name or author.username
    return mail.queue_mail(
        db,
        kind=kind,
        to=author.email,
        to_name=name,
        object_id=post_id if object_id is None else object_id,
        subject=one_line(subject),
        template=template,
        app=app,
        post=post,
        post_url=app.url_for("show_post", slug=post.slug, _external=True),
        author_name=name,
        **context,
    )


def notify_person(
    db: Session,
    email: str,
    kind: str,
    object_id: str | int,
    *,
    subject: str,
    name: str = "",
    template: str = "notify_person",
    app: App | None = None,
    **context: Any,
) -> SentMessage:
    """Queue a message to anyone by address (someone replied to, say), once per object.

    Raises mail.InvalidMail for an unfit address, name or subject.
    """
    return mail.queue_mail(
        db,
        kind=kind,
        to=normalise_email(email),
        to_name=one_line(name)[: mail.MAX_NAME],
        object_id=object_id,
        subject=one_line(subject),
        template=template,
        app=app or jobs.current_app(),
        name=name,
        **context,
    )


# --- /admin/subscribers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    pending: int
    confirmed: int
    unsubscribed: int

    @property
    def total(self) -> int:
        return self.pending + self.confirmed + self.unsubscribed


def subscriber_counts(db: Session) -> Counts:
    """Give how many subscribers are in each state."""
    found = dict(
        db.execute(select(Subscriber.state, func.count()).group_by(Subscriber.state)).all()
    )
    return Counts(*(int(found.get(state, 0)) for state in STATES))


def _page_number(request: Request) -> int:
    raw = request.args.get("page", "1")
    if not (raw.isascii() and raw.isdigit()) or raw.startswith("0") or len(raw) > 6:
        raise NotFound("There is no such page.")
    return int(raw)


@admin_required
def admin_subscribers(request: Request) -> str:
    """Counts by state and a page of subscribers, newest first."""
    db = get_db(request)
    number = _page_number(request)
    rows = db.scalars(
        select(Subscriber)
        .order_by(Subscriber.id.desc())
        .limit(PER_PAGE + 1)
        .offset((number - 1) * PER_PAGE)
    ).all()
    if not rows and number > 1:
        raise NotFound("There is no such page.")
    return render_template(
        "admin/subscribers.html",
        counts=subscriber_counts(db),
        subscribers=rows[:PER_PAGE],
        number=number,
        has_next=len(rows) > PER_PAGE,
    )


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """Give a value for a CSV cell; text a spreadsheet would take for a formula gets a '."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


CSV_COLUMNS = ("email", "state", "created_at", "confirmed_at", "unsubscribed_at")


def subscribers_csv(db: Session) -> str:
    """Give every subscriber as CSV: address, state and dates."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for subscriber in db.scalars(select(Subscriber).order_by(Subscriber.id)):
        writer.writerow([csv_cell(getattr(subscriber, name)) for name in CSV_COLUMNS])
    return out.getvalue()


@admin_required
def admin_subscribers_csv(request: Request) -> Response:
    """Every subscriber as a CSV download."""
    body = subscribers_csv(get_db(request))
    return Response(
        body,
        200,
        {
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="subscribers.csv"',
            "Cache-Control": "no-store",
        },
    )


def register(app: App) -> None:
    app.add_route("/subscribe", subscribe, methods=["GET", "POST"])
    app.add_route("/subscribe/confirm/<token>", confirm_subscription)
    # The one route without the CSRF check: mail clients POST here (RFC 8058) with no
    # session; the signed token in the URL is the proof (see unsubscribe).
    app.add_route("/unsubscribe/<token>", unsubscribe, methods=["GET", "POST"], csrf=False)
    app.add_route("/admin/subscribers", admin_subscribers)
    app.add_route("/admin/subscribers.csv", admin_subscribers_csv)
