"""Webmention (W3C Recommendation), both ways: other sites tell us they link to a post, and
we tell the sites our posts link to.

Receiving: every page names the endpoint (`<link rel="webmention">`; post pages also send
`Link: <...>; rel="webmention"`). `POST /webmention` with `source` and `target` answers
400 when the target is not a published post of ours, the source is the target, or either
is not http(s); otherwise 202, after recording a pending `Mention` and queueing
`verify_mention`. The same (source, post) waiting already queues nothing more, and new
mentions are rate limited per source host (and per client). The job fetches the source
through outgoing.py (the SSRF guard), checks that it links to the target, and reads its
h-entry with mf2py: a reply joins the comments' moderation queue (held, plain text), a
like, repost or plain mention is listed by name under the post (no remote images). A
source that answers 410, or no longer links, takes its mention (and reply) away.

Sending: when a post is saved public, `send_mentions` finds the links in it (and the
links it had before, so they learn of a removal) and queues `send_mention` for each one
not yet told of this revision of the post. That job discovers the target's endpoint
(Link header first, then the first `<link>` or `<a>` with rel=webmention, relative URLs
resolved against the final URL) and posts to it, retrying when the server is away.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import mf2py
from huey import crontab
from sqlalchemy import Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pyproject.blog import jobs, outgoing, throttle
from pyproject.blog.db import get_database, get_db
from pyproject.blog.models import (
    Mention,
    MentionedRevision,
    Post,
    SentMention,
    SiteState,
    utcnow,
    visible,
)
from pyproject.blog.throttle import Limit
from pyproject.lib import App, Request, Response, current_app, current_request
from pyproject.lib.exceptions import BadRequest

log = logging.getLogger("pyproject.webmention")

MAX_URL = 2000
MAX_NAME = 100
MAX_LINKS = 100  # most links of one post told of
KINDS = ("reply", "like", "repost", "mention")
SHOWN_KINDS = ("like", "repost", "mention")  # replies show as comments, once approved
ACCEPT_HTML = "text/html, application/xhtml+xml;q=0.9, text/plain;q=0.5, */*;q=0.1"


# --- checking what a POST carries ----------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def _is_web_url(url: str) -> bool:
    return (
        0 < len(url) <= MAX_URL
        and not any(ord(c) < 33 or ord(c) == 127 for c in url)
        and _origin(url) is not None
    )


def post_of_target(app: App, db: Session, target: str) -> Post | None:
    """Give the published post a URL of ours names, or None when it names none."""
    if not _is_web_url(target) or _origin(target) != _origin(str(app.config["BASE_URL"])):
        return None
    path = unquote(urlsplit(target).path) or "/"
    base_path = urlsplit(str(app.config["BASE_URL"])).path.rstrip("/")
    if base_path:
        if not path.startswith(base_path + "/"):
            return None
        path = path[len(base_path) :]
    try:
        rule, args = app.router.match(path, "GET")
    except Exception:  # 404, 405 or a redirect: not a post's address
        return None
    if rule.endpoint != "show_post":
        return None
    post = db.scalar(select(Post).where(Post.slug == str(args.get("slug", ""))))
    if post is None or not post.is_published or post.deleted_at is not None:
        return None
    return post


def check_request(app: App, db: Session, source: str, target: str) -> Post:
    """Give the post a Webmention is about; raise BadRequest saying what is wrong."""
    if not source or not target:
        raise BadRequest("A Webmention needs both source and target.")
    if not _is_web_url(source):
        raise BadRequest("The source must be an http or https URL.")
    if not _is_web_url(target):
        raise BadRequest("The target must be an http or https URL.")
    if urldefrag(source)[0] == urldefrag(target)[0]:
        raise BadRequest("The source and the target are the same page.")
    post = post_of_target(app, db, target)
    if post is None:
        raise BadRequest("The target is not a post on this site.")
    return post


def _limits(app: App, request: Request, source: str) -> dict[str, tuple[str, Limit]]:
    per_host = max(1, int(app.config.get("WEBMENTION_PER_HOST_HOUR") or 30))
    host = (urlsplit(source).hostname or "").lower()
    return {
        "host": (host, Limit(per_host, 3600)),
        "client": (request.remote_addr or "-", Limit(per_host * 4, 3600)),
    }


def receive(request: Request) -> Response:
    """POST /webmention: check the request, record the mention, queue its verification."""
    app = current_app()
    source = request.form.get("source", "").strip()
    target = request.form.get("target", "").strip()
    db = get_db(request)
    post = check_request(app, db, source, target)
    accepted = Response("Accepted: the mention will be checked.\n", 202, mimetype="text/plain")
    mention = db.scalar(select(Mention).where(Mention.source == source, Mention.post_id == post.id))
    if mention is not None and mention.queued:
        return accepted  # its check is waiting already: one job for any number of POSTs
    wait = throttle.hit(
        db, "webmention", _limits(app, request, source), secret=str(app.config["SECRET_KEY"])
    )
    if wait:
        return Response(
            f"Too many Webmentions from this source. Try again in {wait} seconds.\n",
            429,
            {"Retry-After": str(wait)},
            mimetype="text/plain",
        )
    now = utcnow()
    if mention is None:
        db.add(
            Mention(
                source=source,
                post_id=post.id,
                kind="mention",
                state="pending",
                queued=True,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        mention.queued = True
        mention.updated_at = now
    jobs.enqueue(db, verify_mention, source, target, post.id)
    try:
        db.commit()
    except IntegrityError:  # the same mention, recorded a moment ago by another worker
        db.rollback()
    return accepted


# --- verifying a received mention ------------------------------------------------------------


class _Links(HTMLParser):
    """Collects every URL an HTML page links to or embeds (href, src, cite, data...)."""

    ATTRIBUTES = frozenset({"href", "src", "cite", "data", "poster", "action"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if tag == "base" and name == "href" and self.base is None:
                self.base = value.strip()
            elif name in self.ATTRIBUTES:
                self.urls.append(value.strip())


def links_to(html: str, page_url: str, target: str) -> bool:
    """Give whether an HTML page links to `target` (URLs resolved against the page)."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    wanted = urldefrag(target)[0]
    return any(urldefrag(urljoin(base, url))[0] == wanted for url in parser.urls)


@dataclass
class Entry:
    """What a source's h-entry says about the mention."""

    kind: str = "mention"
    author_name: str = ""
    author_url: str = ""
    text: str = ""
    published: datetime | None = None


def _first(properties: dict[str, Any], name: str) -> Any:
    values = properties.get(name) or []
    return values[0] if values else None


def _urls(values: Iterable[Any]) -> list[str]:
    found = []
    for value in values or []:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            urls = value.get("properties", {}).get("url", [])
            found.extend(url for url in urls if isinstance(url, str))
            if isinstance(value.get("value"), str):
                found.append(value["value"])
    return [urldefrag(url.strip())[0] for url in found]


def _entries(items: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for item in items:
        if "h-entry" in item.get("type", []):
            yield item
        yield from _entries(item.get("children", []))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _one_line(text: Any, limit: int) -> str:
    return " ".join(_CONTROL.sub(" ", str(text or "")).split())[:limit]


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_entry(html: str, page_url: str, target: str) -> Entry:
    """Read the source's h-entry (the one for its own URL, else the first): kind, author."""
    parsed = mf2py.parse(doc=html, url=page_url, metaformats=False)
    entries = list(_entries(parsed.get("items", [])))
    if not entries:
        return Entry(author_name=_one_line(urlsplit(page_url).hostname, MAX_NAME))
    own = [e for e in entries if urldefrag(page_url)[0] in _urls(e["properties"].get("url", []))]
    properties = (own or entries)[0].get("properties", {})
    entry = Entry()
    wanted = urldefrag(target)[0]
    for name, kind in (("in-reply-to", "reply"), ("like-of", "like"), ("repost-of", "repost")):
        if wanted in _urls(properties.get(name, [])):
            entry.kind = kind
            break
    author = _first(properties, "author")
    if isinstance(author, dict):
        card = author.get("properties", {})
        entry.author_name = _one_line(_first(card, "name") or author.get("value"), MAX_NAME)
        url = _first(card, "url")
        entry.author_url = url if isinstance(url, str) and _is_web_url(url) else ""
    elif isinstance(author, str):
        if _is_web_url(author):
            entry.author_url = author
        else:
            entry.author_name = _one_line(author, MAX_NAME)
    if not entry.author_name:
        entry.author_name = _one_line(urlsplit(entry.author_url or page_url).hostname, MAX_NAME)
    content = _first(properties, "content") or _first(properties, "summary")
    if isinstance(content, dict):
        content = content.get("value", "")
    entry.text = str(content or _first(properties, "name") or "").strip()
    entry.published = _parse_time(_first(properties, "published"))
    return entry


def _pages_changed(db: Session) -> None:
    """Bump the site version: the post's page (and its cached copies) show mentions."""
    db.execute(
        update(SiteState)
        .where(SiteState.id == 1)
        .values(version=SiteState.version + 1, changed_at=utcnow())
    )


def _forget(db: Session, mention: Mention) -> None:
    from pyproject.blog.comments import remove_remote_reply

    shown = mention.state == "verified"
    remove_remote_reply(db, mention.source, mention.post_id)
    db.delete(mention)
    if shown:
        _pages_changed(db)


@jobs.job(retries=3)
def verify_mention(source: str, target: str, post_id: int) -> str:
    """Fetch a mention's source and keep, update or remove the mention; give what it did."""
    from pyproject.blog.comments import add_remote_reply, remove_remote_reply

    app = jobs.current_app()
    database = get_database(app)
    with database.write() as db:
        mention = db.scalar(
            select(Mention).where(Mention.source == source, Mention.post_id == post_id)
        )
        if mention is None:
            return "unknown"
        mention.queued = False  # a POST from now on asks for a fresh check
    try:
        answer = outgoing.for_app(app).get(source, headers={"Accept": ACCEPT_HTML})
    except outgoing.FetchFailed:
        raise  # the source's server is away: the job retries
    except outgoing.FetchError:
        answer = None  # refused, too large, too many redirects: never a mention
    linked = False
    if answer is not None and answer.status == 200:
        if answer.content_type in ("text/html", "application/xhtml+xml", ""):
            linked = links_to(answer.text, answer.url, target)
        elif answer.content_type == "text/plain":
            linked = target in answer.text
    elif answer is not None and answer.status >= 500:
        raise outgoing.FetchFailed(f"the source answered {answer.status}")
    with database.write() as db:
        mention = db.scalar(
            select(Mention).where(Mention.source == source, Mention.post_id == post_id)
        )
        if mention is None:
            return "unknown"
        if not linked:
            _forget(db, mention)
            return "removed"
        entry = (
            read_entry(answer.text, answer.url, target)
            if answer.content_type != "text/plain"
            else Entry(author_name=_one_line(urlsplit(source).hostname, MAX_NAME))
        )
        now = utcnow()
        mention.kind = entry.kind
        mention.author_name = entry.author_name
        mention.author_url = entry.author_url[:MAX_URL]
        mention.published_at = entry.published
        mention.state = "verified"
        mention.verified_at = mention.updated_at = now
        if entry.kind == "reply":
            add_remote_reply(
                db,
                post_id,
                author_name=entry.author_name,
                author_url=entry.author_url,
                body_text=entry.text or f"A reply at {source}",
                source_url=source,
                published=entry.published,
                app=app,
            )
        else:
            remove_remote_reply(db, source, post_id)
        _pages_changed(db)
        return entry.kind


# --- showing mentions on a post ---------------------------------------------------------------


@dataclass
class Mentions:
    """What a post page lists: likes, reposts and mentions by name (verified only)."""

    likes: list[Mention] = field(default_factory=list)
    reposts: list[Mention] = field(default_factory=list)
    mentions: list[Mention] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.likes) + len(self.reposts) + len(self.mentions)


def shown_mentions_of(post_id: Any) -> Select:
    """Give the select of the mentions a post page lists (post_id: a value or a column).

    The post page's own lookup asks whether it has any (posts.PostFacts) with this same
    condition, so a post without them skips mentions_of's query.
    """
    return select(Mention).where(
        Mention.post_id == post_id,
        Mention.state == "verified",
        Mention.kind.in_(SHOWN_KINDS),
    )


def mentions_of(post: Post) -> Mentions:
    """Give the post's verified likes, reposts and mentions (the template global)."""
    found = Mentions()
    request = current_request()
    if request is None or post.id is None or not post.is_published:
        return found
    rows = get_db(request).scalars(
        shown_mentions_of(post.id).order_by(Mention.verified_at, Mention.id).limit(500)
    )
    for mention in rows:
        {"like": found.likes, "repost": found.reposts}.get(mention.kind, found.mentions).append(
            mention
        )
    return found


def advertise(request: Request, response: Response) -> Response:
    """Name the endpoint in a Link header on post pages (cached copies keep it)."""
    if getattr(request, "endpoint", None) == "show_post" and response.status_code == 200:
        endpoint = current_app().url_for("receive_webmention", _external=True)
        response.headers.add("Link", f'<{endpoint}>; rel="webmention"')
    return response


# --- sending ----------------------------------------------------------------------------------


class _Hrefs(HTMLParser):
    """Collects the href of every <a> in a post's HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            for name, value in attrs:
                if name == "href" and value:
                    self.hrefs.append(value.strip())


def links_in(html: str, base_url: str) -> list[str]:
    """Give the http(s) links of a post's HTML to other sites, each once, in order."""
    parser = _Hrefs()
    parser.feed(html)
    parser.close()
    own = _origin(base_url)
    found: dict[str, None] = {}
    for href in parser.hrefs:
        url = urldefrag(urljoin(base_url + "/", href))[0]
        if _is_web_url(url) and _origin(url) != own:
            found[url] = None
    return list(found)[:MAX_LINKS]


_LINK_VALUE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL = re.compile(r"""(?i)\brel\s*=\s*(?:"([^"]*)"|([^\s";,]+))""")


def _rels(text: str | None) -> list[str]:
    return (text or "").lower().split()


class _EndpointInPage(HTMLParser):
    """Finds the first <link> or <a> with rel=webmention and an href (comments ignored)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found is not None or tag not in ("link", "a"):
            return
        values = dict(attrs)
        if "webmention" in _rels(values.get("rel")) and values.get("href") is not None:
            self.found = values["href"] or ""

    handle_startendtag = handle_starttag


def discover_endpoint(answer: outgoing.Fetched) -> str | None:
    """Give a target's Webmention endpoint (absolute), or None when it names none."""
    for header in answer.header_values("link"):
        for url, params in _LINK_VALUE.findall(header):
            for quoted, bare in _REL.findall(params):
                if "webmention" in _rels(quoted or bare):
                    return urljoin(answer.url, url.strip())
    if answer.content_type in ("text/html", "application/xhtml+xml"):
        parser = _EndpointInPage()
        parser.feed(answer.text)
        parser.close()
        if parser.found is not None:
            return urljoin(answer.url, parser.found.strip())
    return None


def send_when_public(db: Session, post: Post) -> None:
    """Ask for the post's links to be told of it once `db` commits, if it is public.

    The editor calls this in the transaction that saves the post.
    """
    if post.id is not None and post.is_published:
        jobs.enqueue(db, send_mentions, post.id)


@jobs.job(retries=3)
def send_mentions(post_id: int) -> int:
    """Queue `send_mention` for each link (current or earlier) not told of this revision."""
    app = jobs.current_app()
    with get_database(app).write() as db:
        post = db.get(Post, post_id)
        if post is not None and post.deleted_at is not None:
            return _tell_removal(db, post_id)
        if post is None or not post.is_published:
            return 0
        marked = db.get(MentionedRevision, post_id)
        if marked is None:
            db.add(MentionedRevision(post_id=post_id, revision=post.revision))
        elif marked.revision == post.revision:
            return 0  # this revision's links were looked at already
        else:
            marked.revision = post.revision
        sent = dict(
            db.execute(
                select(SentMention.target, SentMention.revision).where(
                    SentMention.post_id == post_id
                )
            ).all()
        )
        targets = [*links_in(post.body_html, str(app.config["BASE_URL"])), *sent]
        queued = 0
        for target in dict.fromkeys(targets):
            if sent.get(target) != post.revision:
                jobs.enqueue(db, send_mention, post_id, target)
                queued += 1
        return queued


def _told(post_id: Any) -> Any:
    """Give the condition: this post's mention was taken by an endpoint, and not withdrawn."""
    return (
        select(SentMention.id)
        .where(
            SentMention.post_id == post_id,
            SentMention.revision >= 0,
            SentMention.status >= 200,
            SentMention.status < 300,
        )
        .exists()
    )


def _tell_removal(db: Session, post_id: int) -> int:
    """Queue `send_removal` for each target that took a mention of a post now in the trash.

    The rows are marked (revision -1) in the same transaction, so each is told once; the
    post's mark goes too, so a post restored from the trash tells its links again.
    """
    rows = db.scalars(
        select(SentMention).where(
            SentMention.post_id == post_id,
            SentMention.revision >= 0,
            SentMention.status >= 200,
            SentMention.status < 300,
        )
    ).all()
    for row in rows:
        row.revision = -1
        jobs.enqueue(db, send_removal, post_id, row.target, row.endpoint)
    db.execute(delete(MentionedRevision).where(MentionedRevision.post_id == post_id))
    return len(rows)


@jobs.job(retries=5)
def send_removal(post_id: int, target: str, endpoint: str) -> str:
    """Tell an endpoint again of a post now in the trash: fetching it, they find it gone."""
    app = jobs.current_app()
    with get_database(app).read() as db:
        post = db.get(Post, post_id)
        if post is None or post.deleted_at is None:
            return "not in the trash"
        slug = post.slug
    source = app.url_for("show_post", slug=slug, _external=True)
    try:
        status = outgoing.for_app(app).post(endpoint, data={"source": source, "target": target})
    except outgoing.FetchFailed:
        raise
    except outgoing.FetchError:
        return "refused"
    if status.status >= 500 or status.status == 429:
        raise outgoing.FetchFailed(f"the endpoint answered {status.status}")
    log.info("webmention of removal to %s for post %s: %s", target, post_id, status.status)
    return "sent"


@jobs.job(retries=2, periodic=crontab(minute="*"))
def send_due_mentions() -> int:
    """Every minute: ask for `send_mentions` of posts whose links were not told of them.

    These are scheduled posts that went live (and any public post whose job was lost),
    and posts moved to the trash whose mentions were taken (the targets fetch them again
    and find them gone). A post saved a moment ago is left to the job its save queued.
    Gives how many.
    """
    app = jobs.current_app()
    now = utcnow()
    due = (
        select(Post.id)
        .outerjoin(MentionedRevision, MentionedRevision.post_id == Post.id)
        .where(
            *visible(now),
            Post.updated_at < now - timedelta(minutes=1),
            (MentionedRevision.revision.is_(None)) | (MentionedRevision.revision != Post.revision),
        )
        .order_by(Post.published_at, Post.id)
        .limit(50)
    )
    removed = select(Post.id).where(Post.deleted_at.is_not(None), _told(Post.id)).limit(50)
    with get_database(app).read() as db:  # most minutes: nothing due, no write lock taken
        if not db.scalars(due).first() and not db.scalars(removed).first():
            return 0
    with get_database(app).write() as db:
        ids = [*db.scalars(due), *db.scalars(removed)]
        for post_id in ids:
            jobs.enqueue(db, send_mentions, post_id)
    return len(ids)


@jobs.job(retries=5)
def send_mention(post_id: int, target: str) -> str:
    """Tell one target of a post: discover its endpoint, post to it; give what happened."""
    app = jobs.current_app()
    database = get_database(app)
    with database.read() as db:
        post = db.get(Post, post_id)
        if post is None or not post.is_published or post.deleted_at is not None:
            return "not public"
        revision, slug = post.revision, post.slug
        done = db.scalar(
            select(SentMention.revision).where(
                SentMention.post_id == post_id, SentMention.target == target
            )
        )
    if done == revision:
        return "sent already"
    fetcher = outgoing.for_app(app)
    source = app.url_for("show_post", slug=slug, _external=True)
    endpoint, status = "", 0
    try:
        endpoint = discover_endpoint(fetcher.get(target, headers={"Accept": ACCEPT_HTML})) or ""
        if endpoint:
            status = fetcher.post(endpoint, data={"source": source, "target": target}).status
    except outgoing.FetchFailed:
        raise  # away for now: the job retries
    except outgoing.FetchError:
        endpoint, status = "", 0  # refused: nothing to tell there
    if status >= 500 or status == 429:
        raise outgoing.FetchFailed(f"the endpoint answered {status}")
    with database.write() as db:
        db.execute(
            delete(SentMention).where(SentMention.post_id == post_id, SentMention.target == target)
        )
        db.add(
            SentMention(
                post_id=post_id,
                target=target,
                revision=revision,
                endpoint=endpoint[:MAX_URL],
                status=status,
                sent_at=utcnow(),
            )
        )
    outcome = "no endpoint" if not endpoint else "sent" if 200 <= status < 300 else "refused"
    log.info("webmention to %s for post %s: %s (%s)", target, post_id, outcome, status)
    return outcome if outcome != "refused" else f"refused ({status})"


def register(app: App) -> None:
    """Add the endpoint, its Link header on post pages and the template global."""
    # A public protocol endpoint, posted to by other servers: no session, no CSRF token.
    app.add_route(
        "/webmention", receive, methods=["POST"], endpoint="receive_webmention", csrf=False
    )
    app.after_request(advertise)
    app.jinja_env.globals["mentions_of"] = mentions_of
