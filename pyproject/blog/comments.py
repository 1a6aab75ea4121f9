"""Readers' comments under posts: the form, moderation, spam defence and notifications (#18).

A reader answers a post with a name, an optional email (never shown; used only for the
reply notifications they ask for), an optional website and a body in a small Markdown
subset (paragraphs, emphasis, code, quotes, lists, links), rendered once, when saved,
and sanitised with our own allowlist. One level of replies.

The form needs no cookie and no JavaScript, and works on pages the page cache keeps: it
carries a signed token (an HMAC under SECRET_KEY of the post and the time the page was
rendered) in place of the session's CSRF token; the POST route is exempt from the
session check and checks the token instead: signature, post, at least TOKEN_MIN_AGE old
and at most TOKEN_MAX_AGE. Post pages carry a time bucket in their validators
(posts.show_post, refresh_seconds=PAGE_REFRESH), so a kept page, and its token, is never
older than that: far below the maximum age.

Moderation: a first-time commenter is held; once an approved comment exists for an
identity (the email, else name + website), later ones from it go straight through. The
writer of a held comment sees it, marked "awaiting review", through a signed cookie
that also lets them edit or delete it for EDIT_WINDOW. Its name holds the session
cookie's, so the page cache and reader_page treat its holder as signed in and render
their page afresh (pyproject.lib.sessions.SessionInterface.carries_session).

Spam defence, all local: a honeypot field, the token's minimum age, rate limits per
client and per subnet (throttle.py), at most COMMENTS_MAX_LINKS links, the
COMMENTS_BLOCKED_WORDS list, and "held" for anything borderline.

Webmention replies (webmention.py) join the same queue through `add_remote_reply`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import markdown
from bleach.linkifier import LinkifyFilter
from bleach.sanitizer import Cleaner
from huey import crontab
from jinja2 import pass_context
from markupsafe import Markup, escape
from sqlalchemy import bindparam, case, delete, event, func, insert, select, update
from sqlalchemy.orm import Session

from pyproject.blog import jobs, mail, throttle
from pyproject.blog.auth import current_user, login_required
from pyproject.blog.caching import reader_page
from pyproject.blog.db import get_database, get_db
from pyproject.blog.forms import Form
from pyproject.blog.models import Comment, CommentCount, Post, SiteState, User, utcnow
from pyproject.blog.posts import can_edit, get_post_or_404, page_number, post_page
from pyproject.lib import (
    App,
    Request,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from pyproject.lib.app import current_request
from pyproject.lib.exceptions import BadRequest, Forbidden, NotFound
from pyproject.lib.security import check_csrf

STATES = ("held", "approved", "spam")
# Replies from elsewhere, as the author's mail and the pages name them (`kind` of a comment;
# readers' own comments are "comment").
REMOTE_KINDS = {
    "webmention": "A reply from another site",
    "fediverse": "A reply from the fediverse",
}
MAX_BODY = 10_000
MAX_NAME = 100
MAX_EMAIL = 254
MAX_WEBSITE = 300
TOKEN_MIN_AGE = 3  # seconds: no person reads a post and writes an answer faster
TOKEN_MAX_AGE = 24 * 3600
PAGE_REFRESH = 3600  # a post page (and its form's token) is rendered afresh at least hourly
EDIT_WINDOW = timedelta(minutes=15)
COOKIE_MAX_AGE = 7 * 24 * 3600  # the writer sees their held comments this long
COOKIE_COMMENTS = 5  # the newest comments one writer's cookie remembers
PER_PAGE = 50  # threads (a comment and its replies) on one page
MAX_REPLIES = 200  # replies shown under one comment
LIMITS = {
    "client": throttle.Limit(5, 600),  # comments one address may send in ten minutes
    "subnet": throttle.Limit(20, 600),  # and its /24 (IPv4) or /56 (IPv6)
}


# --- rendering ----------------------------------------------------------------------------

COMMENT_TAGS = frozenset(
    {"p", "br", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a"}
)
COMMENT_ATTRIBUTES = {"a": ["href", "rel"]}
COMMENT_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow ugc noopener"


def _set_rel(attrs: dict[Any, str], new: bool = False) -> dict[Any, str]:
    attrs[(None, "rel")] = LINK_REL
    return attrs


_CLEANER = Cleaner(
    tags=COMMENT_TAGS,
    attributes=COMMENT_ATTRIBUTES,
    protocols=COMMENT_SCHEMES,
    strip=False,
    filters=[partial(LinkifyFilter, callbacks=[_set_rel], parse_email=False)],
)


def _markdown() -> markdown.Markdown:
    """Give a Markdown converter for the comment subset: no raw HTML, images or headings."""
    converter = markdown.Markdown(extensions=[], output_format="html")
    converter.preprocessors.deregister("html_block")
    for name in ("html", "image_link", "image_reference", "short_image_ref"):
        if name in converter.inlinePatterns:
            converter.inlinePatterns.deregister(name)
    for name in ("hashheader", "setextheader", "hr"):
        if name in converter.parser.blockprocessors:
            converter.parser.blockprocessors.deregister(name)
    return converter


def render_comment(text: str) -> str:
    """Give a comment's Markdown as sanitised HTML (our allowlist; links rel=nofollow ugc)."""
    converter = _markdown()
    return _CLEANER.clean(converter.convert(text))


_LINK = re.compile(r"<a\s", re.IGNORECASE)
_URLS = re.compile(r"\S*(?:https?://|www\.)\S*", re.IGNORECASE)


def count_links(body_html: str) -> int:
    """Give how many links rendered comment HTML holds."""
    return len(_LINK.findall(body_html))


def plain_text_html(text: str) -> str:
    """Give plain text (a remote reply's) as escaped paragraphs: never remote HTML."""
    from html import escape

    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join(
        "<p>" + "<br>".join(escape(line) for line in p.splitlines()) + "</p>" for p in paragraphs
    )


# --- who wrote it -------------------------------------------------------------------------


def _hmac(secret: str, purpose: str, value: str) -> str:
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def identity_of(secret: str, *, name: str, email: str, website: str) -> str:
    """Give the HMAC naming a commenter for the trust rule: the email, else name + website.

    Without an email or a website there is no identity (""): such comments are always held.
    """
    if email:
        return _hmac(secret, "email", email.strip().lower())
    if website:
        return _hmac(secret, "name-site", f"{name.strip().casefold()}\x00{website.strip()}")
    return ""


def subnet_of(address: str) -> str:
    """Give the network a client address belongs to: its /24 (IPv4) or /56 (IPv6)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    prefix = 24 if ip.version == 4 else 56
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def is_trusted(db: Session, identity: str) -> bool:
    """Give whether an approved comment exists from this identity."""
    if not identity:
        return False
    found = db.scalar(
        select(Comment.id).where(Comment.identity == identity, Comment.state == "approved").limit(1)
    )
    return found is not None


# --- what readers see changes: the site version ------------------------------------------


def _shown(comment: Comment) -> bool:
    """Give whether a comment is or was shown to readers (so pages change with it)."""
    from sqlalchemy import inspect

    history = inspect(comment).attrs.state.history
    return comment.state == "approved" or "approved" in (history.deleted or ())


def track_changes(sessions: Any) -> None:
    """Recount a post's comments and bump the site version when a flush adds, changes or
    removes a shown comment.

    Held and spam comments change no reader's page, so a flood of spam keeps the page
    cache's pages (and the counts).
    """

    @event.listens_for(sessions, "after_flush")
    def bump(session: Session, _context: Any) -> None:
        touched = (*session.new, *session.dirty, *session.deleted)
        posts = {item.post_id for item in touched if isinstance(item, Comment) and _shown(item)}
        if posts:
            recount(session, posts)
            session.execute(
                update(SiteState)
                .where(SiteState.id == 1)
                .values(version=SiteState.version + 1, changed_at=utcnow())
            )


_RECOUNT = (
    select(
        Comment.post_id,
        func.count(),
        func.sum(case((Comment.parent_id.is_(None), 1), else_=0)),
    )
    .where(Comment.post_id.in_(bindparam("ids", expanding=True)), Comment.state == "approved")
    .group_by(Comment.post_id)
)


def recount(db: Session, post_ids: Iterable[int]) -> None:
    """Count these posts' approved comments and threads afresh into comment_counts.

    The posts' rows are locked first (FOR NO KEY UPDATE on PostgreSQL, which a comment's
    own foreign key check does not conflict with; SQLite writes one at a time anyway), so
    two transactions answering one post count in turn, the second seeing the first's.
    """
    ids = sorted(set(post_ids))
    if not ids:
        return
    db.execute(
        select(Post.id).where(Post.id.in_(ids)).order_by(Post.id).with_for_update(key_share=True)
    )
    db.execute(delete(CommentCount).where(CommentCount.post_id.in_(ids)))
    db.execute(
        insert(CommentCount.__table__).from_select(["post_id", "approved", "threads"], _RECOUNT),
        {"ids": ids},
    )


# --- remote replies (Webmention) ----------------------------------------------------------


def add_remote_reply(
    db: Session,
    post_id: int,
    *,
    author_name: str,
    author_url: str,
    body_text: str,
    source_url: str,
    published: datetime | None,
    app: App | None = None,
    kind: str = "webmention",
) -> Comment:
    """Give the held comment for a reply from another site (updated if this source sent one
    before): a Webmention, or a fediverse note (`kind` "fediverse", activitypub.py).

    The body is plain text we escape, never remote HTML; the page shows the source link.
    An update of an approved reply is held again: its text changed.
    """
    if kind not in REMOTE_KINDS:
        raise ValueError(f"not a kind of remote reply: {kind!r}")
    name = _one_line(author_name)[:MAX_NAME] or "Someone"
    comment = db.scalar(
        select(Comment).where(
            Comment.source_url == source_url,
            Comment.post_id == post_id,
            Comment.kind == kind,
        )
    )
    if comment is None:
        comment = Comment(post_id=post_id, kind=kind, source_url=source_url)
        db.add(comment)
    elif comment.state != "spam":
        comment.edited_at = utcnow()
    text = body_text[:MAX_BODY]
    comment.name = name
    comment.website = web_address(author_url)
    comment.body_md = text
    comment.body_html = plain_text_html(text)
    comment.published_at = published
    if comment.state != "spam":
        comment.state = "held"
    db.flush()
    _notify_held(db, comment, app)
    return comment


def remove_remote_reply(
    db: Session, source_url: str, post_id: int, kind: str = "webmention"
) -> None:
    """Delete the remote reply (of `kind`) from `source_url` on a post, if there is one."""
    for comment in db.scalars(
        select(Comment).where(
            Comment.source_url == source_url,
            Comment.post_id == post_id,
            Comment.kind == kind,
        )
    ):
        db.delete(comment)
    db.flush()


def web_address(url: str) -> str:
    """Give `url` if it is an http(s) address we may link to, else "" (never javascript:)."""
    url = url.strip()
    if len(url) > MAX_WEBSITE or _CONTROL_OR_BREAK.search(url) or " " in url:
        return ""
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.hostname else ""


_CONTROL_OR_BREAK = re.compile("[\x00-\x1f\x7f-\x9f]+")


def _one_line(text: str) -> str:
    return _CONTROL_OR_BREAK.sub(" ", text).strip()


def _notify_held(db: Session, comment: Comment, app: App | None = None) -> None:
    """Queue the mail to the post's author about a held comment, once per comment."""
    if comment.state != "held":
        return
    from pyproject.blog.subscriptions import notify_author

    app = app or jobs.current_app()
    what = REMOTE_KINDS.get(comment.kind, "A comment")
    notify_author(
        db,
        comment.post_id,
        "comment-held",
        object_id=comment.id,
        subject=f"{what} awaits your review",
        app=app,
        message=(
            f"{what} by {_one_line(comment.name)} awaits your review at "
            f"{app.url_for('moderation', _external=True)}."
        ),
    )


# --- settings -----------------------------------------------------------------------------


def max_links(app: App) -> int:
    return int(app.config.get("COMMENTS_MAX_LINKS", 3))


def blocked_words(app: App) -> list[str]:
    """Give the COMMENTS_BLOCKED_WORDS list, lower-cased (comma or line separated)."""
    raw = str(app.config.get("COMMENTS_BLOCKED_WORDS") or "")
    return [w.strip().lower() for w in re.split(r"[,\n]", raw) if w.strip()]


def comments_open(app: App, post: Post, now: datetime | None = None) -> bool:
    """Give whether readers may comment on a post now (its setting, and auto-closing)."""
    if not post.is_published or post.comments == "closed":
        return False
    if post.comments == "open":
        return True
    days = int(app.config.get("COMMENTS_CLOSE_DAYS", 0))
    if days <= 0 or post.published_at is None:
        return True
    return (now or utcnow()) < post.published_at + timedelta(days=days)


# --- the form's signed token -------------------------------------------------------------


def _b64mac(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def form_token(secret: str, post_id: int, now: datetime | None = None) -> str:
    """Give the token a post's comment form carries: the post and the time it was rendered."""
    stamp = int((now or utcnow()).timestamp())
    mac = _b64mac(secret, f"comment-form\x00{post_id}\x00{stamp}")
    return f"{post_id}.{stamp}.{mac}"


_TOKEN = re.compile(r"([1-9][0-9]{0,17})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})\Z")


def check_token(secret: str, token: str, post_id: int, now: datetime | None = None) -> str:
    """Give "ok", "young" (sent too soon: a robot), "expired" or "wrong" for a form token."""
    match = _TOKEN.match(token)
    if match is None or int(match[1]) != post_id:
        return "wrong"
    stamp = int(match[2])
    expected = _b64mac(secret, f"comment-form\x00{post_id}\x00{stamp}")
    if not hmac.compare_digest(expected, match[3]):
        return "wrong"
    age = (now or utcnow()).timestamp() - stamp
    if age > TOKEN_MAX_AGE or age < -60:
        return "expired"
    if age < TOKEN_MIN_AGE:
        return "young"
    return "ok"


def edit_token(secret: str, comment_id: int) -> str:
    """Give the token of a comment's edit and delete forms (shown to its writer only)."""
    return _b64mac(secret, f"comment-edit\x00{comment_id}")


def quiet_token(secret: str, comment_id: int) -> str:
    """Give the token of the link in a reply notification that stops such mail."""
    return _b64mac(secret, f"comment-quiet\x00{comment_id}")


# --- the writer's cookie ------------------------------------------------------------------


def cookie_name(app: App) -> str:
    """Give the writer's cookie name: it holds the session cookie's, so the page cache and
    reader_page render the writer's pages afresh (their held comments show)."""
    return f"{app.session_interface.cookie_name}-comments"


def dump_written(secret: str, ids: list[int]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(ids).encode()).rstrip(b"=").decode()
    mac = _b64mac(secret, f"comment-cookie\x00{payload}")
    return f"{payload}.{mac}"


def load_written(secret: str, value: str | None) -> list[int]:
    """Give the ids of the comments a writer's cookie names (none if it is not genuine)."""
    if not value or value.count(".") != 1 or len(value) > 400:
        return []
    payload, mac = value.split(".")
    if not hmac.compare_digest(_b64mac(secret, f"comment-cookie\x00{payload}"), mac):
        return []
    try:
        ids = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return []
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, int) and not isinstance(i, bool)][:COOKIE_COMMENTS]


# --- reading ------------------------------------------------------------------------------


@dataclass(slots=True)
class Shown:
    """A comment as a post page shows it: the columns it needs, not an ORM object (a page
    shows fifty threads; building and reading Comment objects cost more than the rest)."""

    id: int
    post_id: int
    parent_id: int | None
    user_id: int | None
    name: str
    website: str
    body_html: str
    state: str
    kind: str
    source_url: str
    created_at: datetime
    edited_at: datetime | None
    published_at: datetime | None
    by_admin: bool | None


_SHOWN = select(
    Comment.id,
    Comment.post_id,
    Comment.parent_id,
    Comment.user_id,
    Comment.name,
    Comment.website,
    Comment.body_html,
    Comment.state,
    Comment.kind,
    Comment.source_url,
    Comment.created_at,
    Comment.edited_at,
    Comment.published_at,
    User.role == "admin",
).outerjoin(User, User.id == Comment.user_id)


def shown(db: Session, query: Any) -> list[Shown]:
    """Give the comments `query` (a select of _SHOWN's columns) finds, as Shown."""
    return [Shown(*row) for row in db.execute(query)]


@dataclass
class Thread:
    comment: Shown
    replies: list[Shown] = field(default_factory=list)


@dataclass
class Section:
    """What a post page shows of its comments: a page of threads and the form."""

    post: Post
    threads: list[Thread]
    count: int  # approved comments, replies included
    number: int  # this page's number (1 = the oldest)
    pages: int
    open: bool
    token: str
    mine: frozenset[int]
    now: datetime

    @property
    def is_newest(self) -> bool:
        return self.number >= self.pages


def _visible_to(mine: frozenset[int]) -> Any:
    from sqlalchemy import or_

    if not mine:
        return Comment.state == "approved"
    return or_(Comment.state == "approved", Comment.id.in_(sorted(mine)))


# A post's approved comments, and how many of them start a thread: kept counts (0026).
_COUNTS = select(CommentCount.approved, CommentCount.threads).where(
    CommentCount.post_id == bindparam("post_id")
)


def load_section(
    app: App,
    db: Session,
    post: Post,
    mine: frozenset[int],
    number: int | None = None,
    counts: tuple[int, int] | None = None,
) -> Section:
    """Give page `number` of a post's threads (None: the newest page), oldest first.

    One query for a post without comments (its kept counts; none when the caller read
    them with the post, as `counts`); a page of them adds three: the page's ids (from the
    index alone, cheap however deep), their rows and replies.
    """
    now = utcnow()
    if counts is None:
        counts = db.execute(_COUNTS, {"post_id": post.id}).first()
    total, threads_total = (int(counts[0]), int(counts[1])) if counts else (0, 0)
    own: list[Shown] = []
    if mine:  # the writer's own comments awaiting review show to them too
        own = [
            c
            for c in shown(db, _SHOWN.where(Comment.id.in_(sorted(mine))))
            if c.post_id == post.id and c.state != "approved"
        ]
        threads_total += sum(1 for c in own if c.parent_id is None)
    pages = max(1, -(-threads_total // PER_PAGE))
    if number is None:
        number = pages
    if number > pages:
        raise NotFound("There is no such page of comments.")
    threads: list[Thread] = []
    if threads_total:
        visible = _visible_to(mine)
        top = select(Comment.id).where(
            Comment.post_id == post.id, Comment.parent_id.is_(None), visible
        )
        # Page `number` holds threads [first, last) counted from the oldest; read from the
        # nearer end, so the newest page (the post's own) skips nothing.
        first, last = (number - 1) * PER_PAGE, min(number * PER_PAGE, threads_total)
        if threads_total - last < first:
            newest_first = top.order_by(Comment.id.desc()).limit(last - first)
            ids = list(db.scalars(newest_first.offset(threads_total - last)))[::-1]
        else:
            ids = list(db.scalars(top.order_by(Comment.id).limit(last - first).offset(first)))
        if ids:
            rows = shown(db, _SHOWN.where(Comment.id.in_(ids)))
            by_id = {c.id: Thread(c) for c in rows}
            threads = [by_id[i] for i in ids if i in by_id]
            # By the post, then parent, from its index: ordering by id alone would walk
            # every approved comment of the site in id order.
            replies = shown(
                db,
                _SHOWN.where(Comment.post_id == post.id, visible, Comment.parent_id.in_(ids))
                .order_by(Comment.parent_id, Comment.id)
                .limit(len(ids) * MAX_REPLIES),
            )
            for reply in replies:
                thread = by_id.get(reply.parent_id or 0)
                if thread is not None and len(thread.replies) < MAX_REPLIES:
                    thread.replies.append(reply)
    secret = str(app.config["SECRET_KEY"])
    return Section(
        post=post,
        threads=threads,
        count=total,
        number=number,
        pages=pages,
        open=comments_open(app, post, now),
        token=form_token(secret, post.id, now),
        mine=mine,
        now=now,
    )


# --- writing ------------------------------------------------------------------------------

FIELDS = ("name", "email", "website", "body", "parent", "notify", "token", "homepage")


def check_fields(app: App, form: Form, user: User | None) -> dict[str, Any]:
    """Give the cleaned values of a comment form, recording errors beside the fields."""
    if user is not None:
        name, email, website = user.name, user.email, ""
    else:
        name = form.text("name", label="Name", required=True, max_length=MAX_NAME)
        if "\n" in name or "\r" in name:
            form.error("name", "A name is one line.")
        email = form.text("email", label="Email", max_length=MAX_EMAIL)
        if email and "email" not in form.errors:
            try:
                mail.check_address(email)
            except mail.InvalidMail:
                form.error("email", "That does not look like an email address (name@example.com).")
        website = form.text("website", label="Website", max_length=MAX_WEBSITE)
        if website and "website" not in form.errors and not web_address(website):
            form.error("website", "A website is an http:// or https:// address.")
    body = form.text("body", label="Comment", required=True, max_length=MAX_BODY)
    html = ""
    if "body" not in form.errors:
        html = render_comment(body)
        links = count_links(html)
        if links > max_links(app):
            form.error(
                "body", f"A comment may hold at most {max_links(app)} links; this one has {links}."
            )
    return {
        "name": name,
        "email": email.lower(),
        "website": website,
        "body_md": body,
        "body_html": html,
        "links": count_links(html),
        "notify_replies": form.get("notify") in ("on", "1", "yes"),
    }


def decide_state(
    app: App, db: Session, values: dict[str, Any], identity: str, *, trap: bool
) -> str:
    """Give the state a new comment starts in: spam, held or approved (see the module doc)."""
    if trap:
        return "spam"
    text = f"{values['name']} {values['website']} {values['body_md']}".lower()
    words = set(re.findall(r"\w+", text))
    for blocked in blocked_words(app):
        if (" " in blocked and blocked in text) or blocked in words:
            return "spam"
    if not is_trusted(db, identity):
        return "held"
    # Borderline even from a trusted writer: as many links as allowed, or links with
    # hardly a word around them.
    if values["links"] and (
        values["links"] >= max_links(app) or len(_URLS.sub("", values["body_md"]).strip()) < 20
    ):
        return "held"
    return "approved"


def _is_id(raw: str) -> bool:
    return raw.isascii() and raw.isdigit() and 0 < len(raw) < 18


def _post_for_comments(request: Request, slug: str) -> Post:
    post = get_post_or_404(request, slug)
    if not post.is_published:
        raise NotFound("There is no post at this address.")
    return post


def _mine(request: Request) -> list[int]:
    app = current_app()
    return load_written(str(app.config["SECRET_KEY"]), request.cookies.get(cookie_name(app)))


def _remember(request: Request, response: Response, comment_id: int) -> None:
    app = current_app()
    secret = str(app.config["SECRET_KEY"])
    ids = [comment_id, *(i for i in _mine(request) if i != comment_id)][:COOKIE_COMMENTS]
    secure = request.is_secure or str(app.config["BASE_URL"]).startswith("https://")
    response.set_cookie(
        cookie_name(app),
        dump_written(secret, ids),
        max_age=COOKIE_MAX_AGE,
        path="/",
        secure=secure,
        httponly=True,
        samesite="Lax",
    )


def render_post_page(request: Request, post: Post, form: Form, status: int) -> Response:
    """Give the post's page with the comment form as typed and its errors."""
    return Response(post_page(request, post, comment_form=form), status)


def post_comment(request: Request, slug: str) -> Response:
    """A reader's comment (or reply): checked, filtered, saved, and the writer sent back."""
    app = current_app()
    secret = str(app.config["SECRET_KEY"])
    db = get_db(request)
    post = _post_for_comments(request, slug)
    if not comments_open(app, post):
        raise Forbidden("Comments on this post are closed.")
    form = Form(request.form, FIELDS)
    user = current_user(request)
    if user is not None:
        # Signed in, a comment goes out under the account's name: the session's CSRF
        # check too (their pages are never cached, so their form carries its token).
        check_csrf(request, request.session, app.trusted_origins)
    verdict = check_token(secret, form.get("token"), post.id)
    if verdict in ("wrong", "expired"):
        form.error(
            "body",
            "This form was too old or damaged. Your words are kept: send them again.",
        )
    values = check_fields(app, form, user)
    parent = None
    if form.get("parent"):
        raw = form.get("parent")
        parent = db.get(Comment, int(raw)) if _is_id(raw) else None
        if parent is None or parent.post_id != post.id or parent.state != "approved":
            form.error("body", "The comment you answer is not there any more.")
            parent = None
        elif parent.parent_id is not None:
            parent = db.get(Comment, parent.parent_id)  # one level: join its thread
    if not form.ok:
        return render_post_page(request, post, form, 422)
    address = request.remote_addr or ""
    limits = {
        "client": (address, LIMITS["client"]),
        "subnet": (subnet_of(address), LIMITS["subnet"]),
    }
    wait = throttle.hit(db, "comment", limits, secret=secret)
    if wait:
        minutes = max(1, (wait + 59) // 60)
        form.error("body", f"Too many comments from here. Try again in {minutes} minutes.")
        response = render_post_page(request, post, form, 429)
        response.headers.set("Retry-After", str(wait))
        return response
    identity = identity_of(
        secret, name=values["name"], email=values["email"], website=values["website"]
    )
    trap = bool(form.get("homepage")) or verdict == "young"
    # Members of the site (signed in) are trusted; readers go through the filters.
    state = "approved" if user else decide_state(app, db, values, identity, trap=trap)
    comment = Comment(
        post_id=post.id,
        parent_id=parent.id if parent is not None else None,
        user_id=user.id if user is not None else None,
        name=values["name"],
        email=values["email"],
        website=values["website"],
        body_md=values["body_md"],
        body_html=values["body_html"],
        state=state,
        kind="comment",
        identity=identity,
        client=_hmac(secret, "client", address),
        notify_replies=bool(values["notify_replies"] and values["email"]),
        created_at=utcnow(),
    )
    db.add(comment)
    db.flush()
    if state == "held":
        _notify_held(db, comment, app)
    elif state == "approved":
        _notify_replied(db, comment, app)
    db.commit()
    response = redirect(app.url_for("show_post", slug=post.slug) + f"#comment-{comment.id}")
    _remember(request, response, comment.id)
    return response


def _notify_replied(db: Session, comment: Comment, app: App) -> None:
    """Queue the mail to the writer of the comment answered, if they asked for it."""
    if comment.parent_id is None or comment.state != "approved":
        return
    parent = db.get(Comment, comment.parent_id)
    if parent is None or not parent.notify_replies or not parent.email:
        return
    if parent.email == comment.email:
        return
    from pyproject.blog.subscriptions import notify_person, unsubscribe_headers

    post = db.get(Post, comment.post_id)
    stop_url = app.url_for(
        "quiet_replies",
        comment_id=parent.id,
        token=quiet_token(str(app.config["SECRET_KEY"]), parent.id),
        _external=True,
    )
    try:
        notify_person(
            db,
            parent.email,
            "comment-reply",
            comment.id,
            subject=f"{_one_line(comment.name)} answered your comment",
            name=parent.name,
            app=app,
            # One click in the mail client (RFC 8058), or the link in the message, stops
            # these mails for every comment from this address.
            headers=unsubscribe_headers(stop_url),
            message=f"{_one_line(comment.name)} answered your comment on “{post.title}”.",
            link=app.url_for("show_post", slug=post.slug, _external=True)
            + f"#comment-{comment.id}",
            stop_url=stop_url,
            stop_label="Stop emails about replies to your comments",
        )
    except mail.InvalidMail:
        pass


def _own_comment(request: Request, comment_id: int) -> Comment:
    """Give a comment its writer may still change (their cookie, within EDIT_WINDOW)."""
    app = current_app()
    secret = str(app.config["SECRET_KEY"])
    comment = get_db(request).get(Comment, comment_id)
    if comment is None or comment_id not in _mine(request) or comment.kind != "comment":
        raise NotFound("There is no comment of yours here.")
    if utcnow() - comment.created_at > EDIT_WINDOW:
        raise Forbidden(
            f"A comment can be changed for {EDIT_WINDOW.seconds // 60} minutes after it is sent."
        )
    if request.method == "POST" and not hmac.compare_digest(
        edit_token(secret, comment.id), request.form.get("token", "")
    ):
        raise Forbidden("This form is not one we gave you.")
    return comment


def edit_comment(request: Request, comment_id: int) -> Response:
    """The writer changes their comment, within the edit window."""
    app = current_app()
    comment = _own_comment(request, comment_id)
    secret = str(app.config["SECRET_KEY"])
    if request.method != "POST":
        form = Form({"body": comment.body_md}, ("body",))
        return _edit_page(comment, form, secret)
    form = Form(request.form, ("body",))
    values = check_fields(app, form, comment.user or _Writer(comment))
    if not form.ok:
        return _edit_page(comment, form, secret, 422)
    db = get_db(request)
    comment.body_md, comment.body_html = values["body_md"], values["body_html"]
    comment.edited_at = utcnow()
    if comment.state == "approved" and comment.user_id is None:
        comment.state = decide_state(
            app,
            db,
            {**values, "name": comment.name, "website": comment.website},
            comment.identity,
            trap=False,
        )
    db.commit()
    post = db.get(Post, comment.post_id)
    return redirect(app.url_for("show_post", slug=post.slug) + f"#comment-{comment.id}")


@dataclass
class _Writer:
    """The writer of an anonymous comment, as check_fields asks of a signed-in user."""

    comment: Comment

    @property
    def name(self) -> str:
        return self.comment.name

    @property
    def email(self) -> str:
        return self.comment.email


def _edit_page(comment: Comment, form: Form, secret: str, status: int = 200) -> Response:
    page = render_template(
        "comments/edit.html", comment=comment, form=form, token=edit_token(secret, comment.id)
    )
    return Response(page, status)


def delete_own_comment(request: Request, comment_id: int) -> Response:
    """The writer takes their comment back, within the edit window."""
    comment = _own_comment(request, comment_id)
    db = get_db(request)
    post = db.get(Post, comment.post_id)
    db.delete(comment)
    db.commit()
    return redirect(current_app().url_for("show_post", slug=post.slug) + "#comments")


def quiet_replies(request: Request, comment_id: int, token: str) -> Response:
    """GET: a button that asks; POST (the reader, or a mail client's one click): stop the
    reply notifications for every comment from the address that comment gave.

    Exempt from the CSRF check like the subscribers' unsubscribe link: the signed token in
    the URL is the proof. Answers 200 rather than redirecting, as RFC 8058 clients expect.
    """
    secret = str(current_app().config["SECRET_KEY"])
    db = get_db(request)
    comment = db.get(Comment, comment_id)
    if comment is None or not hmac.compare_digest(token, quiet_token(secret, comment_id)):
        raise NotFound("This link is not one we sent, or it was cut short.")
    asking = request.method != "POST"
    if not asking and comment.email:
        db.execute(
            update(Comment)
            .where(Comment.email == comment.email, Comment.notify_replies.is_(True))
            .values(notify_replies=False)
        )
        db.commit()
    page = render_template("comments/quiet.html", asking=asking, comment_id=comment_id, token=token)
    return Response(page)


# --- reading pages ------------------------------------------------------------------------


@pass_context
def comment_section(context: Any, post: Post) -> Section | None:
    """Give what a post page shows of its comments (the template global `comment_section`)."""
    request = current_request()
    if request is None or not post.is_published:
        return None
    app = current_app()
    mine = frozenset(_mine(request))
    number = context.get("comments_page")
    facts = context.get("facts")  # posts.PostFacts: the kept counts, read with the post
    counts = getattr(facts, "comment_counts", None)
    return load_section(app, get_db(request), post, mine, number, counts)


# The comment form as a reader who is not signed in first meets it (no values, errors or
# parent): comment_form_fields rendered once per app with stand-ins for the two things a
# page changes, its post's address and signed token, and cut at them. Rendering the
# macro per page cost about a tenth of a post page without comments (#13).
_STAND_IN_SLUG, _STAND_IN_TOKEN = "stand-in-slug-for-the-comment-form", "stand-in-token"


def _blank_form_pieces(app: App) -> tuple[str, str, str]:
    pieces = app.extensions.get("comments.blank_form")
    if pieces is None:
        macros = app.jinja_env.get_template("comments/macros.html")
        module = macros.make_module({"current_user": None, "config": app.config})
        stand_in = {"slug": _STAND_IN_SLUG}
        html = str(module.comment_form_fields(stand_in, _STAND_IN_TOKEN, None, ""))
        action = app.url_for("post_comment", slug=_STAND_IN_SLUG)  # as the macro builds it
        head, _, rest = html.partition(f'action="{action}"')
        middle, _, tail = rest.partition(f'value="{_STAND_IN_TOKEN}"')
        if not tail:
            raise RuntimeError("comments/macros.html: the form lost its action or token")
        pieces = app.extensions["comments.blank_form"] = (head, middle, tail)
    return pieces


def blank_comment_form(post: Any, token: str) -> Markup:
    """Give the comment form for `post` as a reader who is not signed in first sees it.

    The same HTML as comment_form_fields(post, token, none, "") with no one signed in
    (the template global `blank_comment_form`).
    """
    head, middle, tail = _blank_form_pieces(current_app())
    action = escape(url_for("post_comment", slug=post.slug))
    return Markup(f'{head}action="{action}"{middle}value="{escape(token)}"{tail}')  # noqa: S704  # nosec B704


@reader_page(refresh_seconds=PAGE_REFRESH)
def reply_comment(request: Request, slug: str, comment_id: int) -> Response:
    """The form that answers one comment (its thread's first: replies are one level deep)."""
    app = current_app()
    db = get_db(request)
    post = _post_for_comments(request, slug)
    parent = db.get(Comment, comment_id)
    if parent is not None and parent.parent_id is not None:
        parent = db.get(Comment, parent.parent_id)
    if parent is None or parent.post_id != post.id or parent.state != "approved":
        raise NotFound("There is no such comment to answer.")
    if not comments_open(app, post):
        raise Forbidden("Comments on this post are closed.")
    now = utcnow()
    section = Section(
        post=post,
        threads=[],
        count=0,
        number=1,
        pages=1,
        open=True,
        token=form_token(str(app.config["SECRET_KEY"]), post.id, now),
        mine=frozenset(),
        now=now,
    )
    page = render_template("comments/reply.html", post=post, parent=parent, section=section)
    return Response(page)


@reader_page(refresh_seconds=PAGE_REFRESH)
def comment_page(request: Request, slug: str) -> Response:
    """An earlier page of a post's comments (the post page shows the newest)."""
    post = _post_for_comments(request, slug)
    raw = request.args.get("page", "")
    if not (raw.isascii() and raw.isdigit()) or raw.startswith("0") or len(raw) > 6:
        raise NotFound("There is no such page of comments.")
    return Response(post_page(request, post, comments_page=int(raw)))


@reader_page
def comments_feed(request: Request, slug: str) -> Response:
    """The Atom feed of a post's approved comments, newest first (at most 50)."""
    post = _post_for_comments(request, slug)
    db = get_db(request)
    entries = list(
        db.scalars(
            select(Comment)
            .where(Comment.post_id == post.id, Comment.state == "approved")
            .order_by(Comment.id.desc())
            .limit(50)
        )
    )
    body = render_template("comments/feed.xml", post=post, entries=entries, now=utcnow())
    return Response(body, mimetype="application/atom+xml")


# --- moderation ---------------------------------------------------------------------------

ACTIONS = ("approve", "trust", "spam", "hold", "delete")


def _moderated(user: User) -> Any:
    """Give the condition for comments a user moderates: on their posts (editors: all)."""
    if user.role in ("admin", "editor"):  # (#20 roles)
        return True
    return Comment.post_id.in_(select(Post.id).where(Post.author_id == user.id))


@login_required
def moderation(request: Request) -> Response:
    """/comments: held, approved and spam comments on the user's posts (admins: all)."""
    user = current_user(request)
    db = get_db(request)
    state = request.args.get("state", "held")
    if state not in STATES:
        raise NotFound("There is no such list.")
    number = page_number(request)
    query = (
        select(Comment)
        .where(Comment.state == state, _moderated(user))
        .order_by(Comment.id.desc())
        .limit(PER_PAGE + 1)
        .offset((number - 1) * PER_PAGE)
    )
    rows = list(db.scalars(query))
    posts = {
        p.id: p for p in db.scalars(select(Post).where(Post.id.in_({c.post_id for c in rows})))
    }
    counts = dict(
        db.execute(
            select(Comment.state, func.count()).where(_moderated(user)).group_by(Comment.state)
        ).all()
    )
    page = render_template(
        "comments/moderation.html",
        state=state,
        comments=rows[:PER_PAGE],
        posts=posts,
        counts=counts,
        number=number,
        has_next=len(rows) > PER_PAGE,
    )
    return Response(page)


@login_required
def moderate(request: Request) -> Response:
    """Apply an action (approve, approve and trust, spam, hold, delete) to chosen comments."""
    app = current_app()
    user = current_user(request)
    db = get_db(request)
    action = request.form.get("action", "")
    picked = request.form.getlist("ids")
    single = request.form.get("single", "")
    if single:  # a button beside one comment: "approve:12"
        action, _, one = single.partition(":")
        picked = [one]
    if action not in ACTIONS:
        raise BadRequest("Choose what to do with the comments.")
    ids = [int(i) for i in picked if _is_id(i)]
    chosen = (
        list(db.scalars(select(Comment).where(Comment.id.in_(ids), _moderated(user))))
        if ids
        else []
    )
    for comment in chosen:
        apply_action(app, db, comment, action)
    db.commit()
    if chosen:
        flash(f"{len(chosen)} comment{'s' if len(chosen) != 1 else ''}: {ACTION_DONE[action]}.")
    back = request.form.get("state", "held")
    return redirect(app.url_for("moderation", state=back if back in STATES else "held"))


ACTION_DONE = {
    "approve": "approved",
    "trust": "approved, and their writers trusted",
    "spam": "marked as spam",
    "hold": "held",
    "delete": "deleted",
}


def apply_action(app: App, db: Session, comment: Comment, action: str) -> None:
    """Do one moderation action to a comment (in `db`'s transaction)."""
    if action == "delete":
        db.delete(comment)
        return
    before = comment.state
    comment.state = {"approve": "approved", "trust": "approved", "spam": "spam"}.get(action, "held")
    if action == "trust" and comment.identity:
        for other in db.scalars(
            select(Comment).where(Comment.identity == comment.identity, Comment.state == "held")
        ):
            other.state = "approved"
            _notify_replied(db, other, app)
    if comment.state == "approved" and before != "approved":
        db.flush()
        _notify_replied(db, comment, app)


@login_required
def comment_setting(request: Request, post_id: int) -> Response:
    """Set whether a post takes comments: auto (closes after N days), open or closed."""
    user = current_user(request)
    db = get_db(request)
    post = db.get(Post, post_id)
    if post is None or post.deleted_at is not None:
        raise NotFound("There is no such post.")
    if not can_edit(user, post):
        raise Forbidden("Only the post's author or an administrator can change it.")
    choice = request.form.get("comments", "")
    if choice not in ("auto", "open", "closed"):
        raise BadRequest("Comments are auto, open or closed.")
    post.comments = choice
    db.commit()
    flash("Comments setting saved.")
    return redirect(current_app().url_for("show_post", slug=post.slug) + "#comments")


SPAM_KEPT = timedelta(days=30)  # spam stays this long in the list, for a look, then goes


@jobs.job(retries=2, periodic=crontab(minute="41", hour="3"))
def prune_spam() -> int:
    """Delete spam comments older than SPAM_KEPT (daily); give how many went."""
    with get_database(jobs.current_app()).write() as db:
        old = Comment.state == "spam", Comment.created_at < utcnow() - SPAM_KEPT
        posts = set(db.scalars(select(Comment.post_id).where(*old).distinct()))
        gone = db.execute(delete(Comment).where(*old)).rowcount or 0
        recount(db, posts)  # replies (shown or not) go with the spam they answered
        return gone


def register(app: App) -> None:
    """Add the comment routes, the template global and the change tracking to the app."""
    track_changes(get_database(app).sessions)
    app.jinja_env.globals["comment_section"] = comment_section
    app.jinja_env.globals["blank_comment_form"] = blank_comment_form
    app.jinja_env.globals["comment_edit_token"] = partial(edit_token, str(app.config["SECRET_KEY"]))
    app.jinja_env.globals["comment_edit_window"] = EDIT_WINDOW
    # The signed form token is the proof (see the module doc): no session, no CSRF token.
    app.add_route("/posts/<slug:slug>/comments", post_comment, methods=["POST"], csrf=False)
    app.add_route("/posts/<slug:slug>/comments/older", comment_page)
    app.add_route("/posts/<slug:slug>/comments/<int:comment_id>/reply", reply_comment)
    app.add_route("/posts/<slug:slug>/comments.atom", comments_feed)
    app.add_route(
        "/comments/<int:comment_id>/edit", edit_comment, methods=["GET", "POST"], csrf=False
    )
    app.add_route(
        "/comments/<int:comment_id>/delete", delete_own_comment, methods=["POST"], csrf=False
    )
    app.add_route(
        "/comments/<int:comment_id>/quiet/<token>",
        quiet_replies,
        methods=["GET", "POST"],
        csrf=False,
    )
    app.add_route("/comments", moderation)
    app.add_route("/comments/moderate", moderate, methods=["POST"])
    app.add_route("/comments/posts/<int:post_id>/setting", comment_setting, methods=["POST"])
