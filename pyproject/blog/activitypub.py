"""ActivityPub: the blog and its authors on the fediverse (Mastodon and friends).

Who can be followed: the blog (`@blog@host`, a Service; the name is FEDERATION_BLOG_USERNAME)
and each author (`@username@host`, a Person, whose actor is the author page itself, served
as ActivityStreams JSON to `Accept: application/activity+json`). WebFinger, NodeInfo 2.1
and host-meta say where they are. Each actor's RSA-2048 key pair is made when the actor is
first needed and kept in the database (`federation_keys`).

What followers receive: a post is an `Article` (or a `Note`: FEDERATION_OBJECT_TYPE) whose
id is `/ap/objects/<post id>` (stable when the slug changes); its author's `Create` goes
to the followers of the author and of the blog, and the blog `Announce`s it to its own.
An edit sends `Update`, a move to the trash `Delete` (the object then answers 410 with a
`Tombstone`), a restore `Create` again. What was told is kept per post
(`federation_posts`), so each change is told once; a listener on the database sessions
asks for `federate_post` whenever a post is written, and a periodic job catches scheduled
posts going live.

Delivery is one `federation_deliveries` row (and one `deliver` job) per activity per
shared inbox, signed with HTTP Signatures (httpsig.py). A failure is retried with
exponential backoff for FEDERATION_RETRY_HOURS (48); a domain failing for
FEDERATION_PAUSE_DAYS (7) is paused until the admin resumes it.

What we accept (`POST` to an actor's inbox or the shared `/ap/inbox`): blocked domains and
actors are refused first (403); then the body (413 over FEDERATION_MAX_INBOX_BYTES), the
`Date` (12 hours), the `Digest`, the signature against the sender's key (fetched through
outgoing.py, kept, fetched again once when it fails: key rotation) and the actor must be
the key's owner: otherwise 401 and nothing is stored but a line in the inbox log. Then
Follow (Accept sent back, or held for approval: FEDERATION_APPROVE_FOLLOWS), Undo, Like,
Announce, Create of a Note replying to one of our posts (held in the comments' moderation
queue), Delete, Update of an actor; anything else is 202 and ignored.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urlsplit

from huey import crontab
from sqlalchemy import delete, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pyproject import __version__
from pyproject.blog import httpsig, jobs, metrics, outgoing
from pyproject.blog.auth import admin_required
from pyproject.blog.caching import wants_activity_streams
from pyproject.blog.db import begin_savepoint, get_database, get_db
from pyproject.blog.models import (
    Comment,
    Delivery,
    FederatedPost,
    FederationBlock,
    FederationDomain,
    FederationKey,
    Follower,
    InboxEntry,
    Post,
    Reaction,
    RemoteActor,
    SiteState,
    User,
    utcnow,
    visible,
)
from pyproject.lib import (
    App,
    Request,
    Response,
    current_app,
    current_request,
    flash,
    redirect,
    render_template,
    url_for,
)
from pyproject.lib.exceptions import BadRequest, NotFound, RequestEntityTooLarge

log = logging.getLogger("pyproject.activitypub")

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AS2_TYPE = "application/activity+json"
JRD_TYPE = "application/jrd+json"
NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/2.1"
ACCEPT_AS2 = f'{AS2_TYPE}, application/ld+json; profile="{AS_CONTEXT}"'
ACTOR_TYPES = frozenset({"Person", "Service", "Application", "Group", "Organization"})
PER_PAGE = 20
MAX_URI = 2000
MAX_NAME = 200
LOG_KEPT = 1000  # inbox log lines kept (the admin page shows the last 100)
STALE_QUEUED = timedelta(minutes=10)  # a delivery marked queued this long was lost
BLOG = "blog"  # the blog's actor key; an author's is "user:<id>"
ACTED = ("accepted", "ignored")  # outcomes of a verified activity: a repeat is not acted on


# --- our actors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalActor:
    """One of our actors: the blog (a Service) or an author (a Person)."""

    key: str  # "blog" or "user:<id>"
    id: str  # its URI
    type: str
    username: str
    name: str
    summary: str
    url: str  # its HTML page
    inbox: str
    outbox: str
    followers: str
    following: str
    user_id: int | None = None

    @property
    def key_id(self) -> str:
        return f"{self.id}#main-key"


def blog_username(app: App) -> str:
    return str(app.config.get("FEDERATION_BLOG_USERNAME") or "blog").lower()


def _site_title(app: App) -> str:
    from pyproject.blog.settings import site_settings

    try:
        return site_settings(app).title
    except Exception:  # settings unreadable (a database being migrated): the name only
        return blog_username(app)


def blog_actor(app: App) -> LocalActor:
    """Give the blog's actor."""
    name = blog_username(app)
    return LocalActor(
        key=BLOG,
        id=app.url_for("ap_blog_actor", _external=True),
        type="Service",
        username=name,
        name=_site_title(app),
        summary=f"New posts of {_site_title(app)}.",
        url=app.url_for("home", _external=True),
        inbox=app.url_for("ap_blog_inbox", _external=True),
        outbox=app.url_for("ap_blog_outbox", _external=True),
        followers=app.url_for("ap_blog_followers", _external=True),
        following=app.url_for("ap_blog_following", _external=True),
    )


def author_actor(app: App, user: User) -> LocalActor:
    """Give an author's actor (its id is the author page's URL)."""
    page = app.url_for("show_author", username=user.username, _external=True)
    return LocalActor(
        key=f"user:{user.id}",
        id=page,
        type="Person",
        username=user.username,
        name=user.name,
        summary=escape(user.bio or ""),
        url=page,
        inbox=app.url_for("ap_user_inbox", username=user.username, _external=True),
        outbox=app.url_for("ap_user_outbox", username=user.username, _external=True),
        followers=app.url_for("ap_user_followers", username=user.username, _external=True),
        following=app.url_for("ap_user_following", username=user.username, _external=True),
        user_id=user.id,
    )


def actor_by_key(app: App, db: Session, key: str) -> LocalActor | None:
    """Give the actor a key names ("blog", "user:<id>"), or None if the author is gone."""
    if key == BLOG:
        return blog_actor(app)
    if key.startswith("user:") and key[5:].isdigit():
        user = db.get(User, int(key[5:]))
        if user is not None and user.is_active:
            return author_actor(app, user)
    return None


def actor_by_uri(app: App, db: Session, uri: str) -> LocalActor | None:
    """Give our actor whose URI (or page) this is, or None."""
    uri = urldefrag(str(uri))[0]
    blog = blog_actor(app)
    if uri in (blog.id, blog.url):
        return blog
    rule = _route_of(app, uri)
    if rule is not None and rule[0] == "show_author":
        user = db.scalar(select(User).where(User.username == str(rule[1].get("username"))))
        if user is not None and user.is_active:
            return author_actor(app, user)
    return None


def key_pair(db: Session, key: str) -> FederationKey:
    """Give an actor's key pair, making it (RSA-2048) the first time it is needed."""
    found = db.get(FederationKey, key)
    if found is not None:
        return found
    private, public = httpsig.new_key_pair()
    found = FederationKey(actor=key, public_pem=public, private_pem=private, created_at=utcnow())
    try:
        with begin_savepoint(db):
            db.add(found)
    except IntegrityError:  # another request made it a moment ago: theirs is the key
        found = db.get(FederationKey, key)
    return found


def actor_document(app: App, db: Session, actor: LocalActor) -> dict[str, Any]:
    """Give an actor as ActivityStreams JSON (what Mastodon reads of an account)."""
    key = key_pair(db, actor.key)
    return {
        "@context": [AS_CONTEXT, SECURITY_CONTEXT],
        "id": actor.id,
        "type": actor.type,
        "preferredUsername": actor.username,
        "name": actor.name,
        "summary": actor.summary,
        "url": actor.url,
        "icon": {
            "type": "Image",
            "mediaType": "image/svg+xml",
            "url": _absolute(app, "/static/img/favicon.svg"),
        },
        "inbox": actor.inbox,
        "outbox": actor.outbox,
        "followers": actor.followers,
        "following": actor.following,
        "endpoints": {"sharedInbox": app.url_for("ap_shared_inbox", _external=True)},
        "manuallyApprovesFollowers": bool(app.config.get("FEDERATION_APPROVE_FOLLOWS")),
        "discoverable": True,
        "publicKey": {"id": actor.key_id, "owner": actor.id, "publicKeyPem": key.public_pem},
    }


def _absolute(app: App, path: str) -> str:
    if path.startswith(("http://", "https://")):
        return path
    base = urlsplit(str(app.config["BASE_URL"]))
    return f"{base.scheme}://{base.netloc}{path}"


def _route_of(app: App, url: str) -> tuple[str, dict[str, Any]] | None:
    """Give (endpoint, arguments) of a URL of this site, or None."""
    base = urlsplit(str(app.config["BASE_URL"]))
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if (parts.scheme, parts.netloc.lower()) != (base.scheme, base.netloc.lower()):
        return None
    path = parts.path or "/"
    root = base.path.rstrip("/")
    if root:
        if not path.startswith(root + "/"):
            return None
        path = path[len(root) :]
    try:
        rule, args = app.router.match(path, "GET")
    except Exception:  # 404, 405 or a redirect: no page of ours
        return None
    return rule.endpoint, args


# --- posts as objects ---------------------------------------------------------------------


def object_uri(app: App, post_id: int) -> str:
    return app.url_for("ap_object", post_id=post_id, _external=True)


def post_of_uri(app: App, db: Session, uri: Any) -> Post | None:
    """Give our visible post an object URI or a post page URL names, or None."""
    if isinstance(uri, dict):
        uri = uri.get("id")
    if not isinstance(uri, str) or len(uri) > MAX_URI:
        return None
    route = _route_of(app, urldefrag(uri)[0])
    if route is None:
        return None
    endpoint, args = route
    post = None
    if endpoint == "ap_object":
        post = db.get(Post, int(args["post_id"]))
    elif endpoint == "show_post":
        post = db.scalar(select(Post).where(Post.slug == str(args.get("slug"))))
    if post is None or not post.is_published:
        return None
    return post


class _Images(HTMLParser):
    """Collects (src, alt) of every <img> in a post's HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            values = dict(attrs)
            if values.get("src"):
                self.found.append((values["src"] or "", values.get("alt") or ""))

    handle_startendtag = handle_starttag


def _attachments(app: App, post: Post) -> list[dict[str, Any]]:
    from pyproject.blog.cover import post_cover

    found: list[dict[str, Any]] = []
    try:
        cover = post_cover(post, app)
    except Exception:  # the media store is away: the post still goes out, without its cover
        log.exception("cover of post %s", post.id)
        cover = None
    if cover is not None:
        found.append(
            {
                "type": "Image",
                "mediaType": cover.content_type,
                "url": cover.original.url,
                "name": cover.alt,
                "width": cover.original.width,
                "height": cover.original.height,
            }
        )
    parser = _Images()
    parser.feed(post.body_html or "")
    parser.close()
    seen = {item["url"] for item in found}
    for src, alt in parser.found[:20]:
        url = _absolute(app, src) if src.startswith("/") else src
        if url.startswith(("http://", "https://")) and url not in seen:
            seen.add(url)
            found.append({"type": "Image", "url": url, "name": alt})
    return found


def article(app: App, post: Post) -> dict[str, Any]:
    """Give a post as an Article (or a Note with its title and link: FEDERATION_OBJECT_TYPE)."""
    author = author_actor(app, post.author)
    page = app.url_for("show_post", slug=post.slug, _external=True)
    kind = str(app.config.get("FEDERATION_OBJECT_TYPE") or "Article")
    tags = [
        {
            "type": "Hashtag",
            "href": app.url_for("show_tag", tag=tag.slug, _external=True),
            "name": "#" + re.sub(r"\W+", "", tag.name),
        }
        for tag in post.tags
    ]
    published = post.published_at or post.created_at
    found: dict[str, Any] = {
        "@context": [AS_CONTEXT, {"Hashtag": "as:Hashtag", "sensitive": "as:sensitive"}],
        "id": object_uri(app, post.id),
        "type": "Note" if kind == "Note" else "Article",
        "attributedTo": author.id,
        "url": page,
        "published": published.isoformat(),
        "updated": max(post.updated_at, published).isoformat(),
        "to": [PUBLIC],
        "cc": [author.followers, blog_actor(app).followers],
        "tag": tags,
        "attachment": _attachments(app, post),
        "mediaType": "text/html",
        "sensitive": False,
    }
    if found["type"] == "Note":
        found["content"] = (
            f"<p><strong>{escape(post.title)}</strong></p>"
            + (f"<p>{escape(post.summary)}</p>" if post.summary else "")
            + f'<p><a href="{escape(page)}">{escape(page)}</a></p>'
        )
    else:
        found["name"] = post.title
        found["content"] = post.body_html
        found["summary"] = post.summary
    return found


def activity(
    app: App, kind: str, actor: LocalActor, obj: Any, post: Post | None, suffix: str
) -> dict[str, Any]:
    """Give an activity of ours about a post (Create, Update, Delete, Announce)."""
    base = object_uri(app, post.id) if post is not None else actor.id
    own = kind == "Announce" or not isinstance(obj, dict)
    cc = [actor.followers] if own else obj.get("cc", [])
    found: dict[str, Any] = {
        "@context": AS_CONTEXT,
        "id": f"{base}#{suffix}",
        "type": kind,
        "actor": actor.id,
        "to": [PUBLIC],
        "cc": cc,
        "object": obj,
    }
    if isinstance(obj, dict) and obj.get("published"):
        found["published"] = obj["updated"] if kind == "Update" else obj["published"]
    elif kind in ("Announce", "Delete"):
        found["published"] = utcnow().isoformat()
    return found


def tombstone(app: App, post_id: int, deleted: datetime | None) -> dict[str, Any]:
    found = {
        "@context": AS_CONTEXT,
        "id": object_uri(app, post_id),
        "type": "Tombstone",
        "formerType": "Article",
    }
    if deleted is not None:
        found["deleted"] = deleted.isoformat()
    return found


def as2(data: Any, status: int = 200) -> Response:
    """Give ActivityStreams JSON (`application/activity+json`), varying on Accept."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    response = Response(body, status, mimetype=AS2_TYPE)
    response.headers.set("Vary", "Accept")
    response.headers.set("Cache-Control", "public, max-age=60")
    return response


# --- the reading side: actors, objects, collections, discovery -------------------------------


def _local_author(request: Request, username: str) -> User:
    user = get_db(request).scalar(select(User).where(User.username == username.lower()))
    if user is None or not user.is_active:
        raise NotFound("There is no such author.")
    return user


def _actor_response(request: Request, actor: LocalActor) -> Response:
    db = get_db(request)
    document = actor_document(current_app(), db, actor)
    db.commit()  # a key made just now is kept
    return as2(document)


def blog_actor_view(request: Request) -> Response:
    """The blog's actor: JSON for fediverse servers, the home page for browsers."""
    app = current_app()
    if not wants_activity_streams(request.headers.get("Accept", "")):
        return redirect(app.url_for("home"), 303)
    return _actor_response(request, blog_actor(app))


def object_view(request: Request, post_id: int) -> Response:
    """A post as an object (410 Tombstone once in the trash); browsers go to its page."""
    app = current_app()
    db = get_db(request)
    post = db.get(Post, post_id)
    if post is not None and post.deleted_at is not None:
        return as2(tombstone(app, post_id, post.deleted_at), 410)
    if post is None:
        told = db.get(FederatedPost, post_id)
        if told is not None:
            return as2(tombstone(app, post_id, told.told_at), 410)
        raise NotFound("There is no such object.")
    if not post.is_published or post.kind != "post":
        raise NotFound("There is no such object.")
    if not wants_activity_streams(request.headers.get("Accept", "")):
        return redirect(app.url_for("show_post", slug=post.slug), 303)
    return as2(article(app, post))


def negotiate(request: Request) -> Response | None:
    """Before any view: answer ActivityStreams JSON for a post or author page if asked for."""
    if request.method not in ("GET", "HEAD"):
        return None
    if not wants_activity_streams(request.headers.get("Accept", "")):
        return None
    app = current_app()
    try:
        rule, args = app.router.match(request.path, request.method)
    except Exception:  # not a page of ours: the app answers as usual
        return None
    if rule.endpoint == "show_author":
        return _actor_response(request, author_actor(app, _local_author(request, args["username"])))
    if rule.endpoint == "show_post":
        db = get_db(request)
        post = db.scalar(select(Post).where(Post.slug == str(args.get("slug", ""))))
        if post is None:
            raise NotFound("There is no such post.")
        if post.deleted_at is not None and post.published_at is not None:
            return as2(tombstone(app, post.id, post.deleted_at), 410)
        if not post.is_published:
            raise NotFound("There is no such post.")
        return as2(article(app, post))
    return None


def vary_on_accept(request: Request, response: Response) -> Response:
    """Say that post and author pages depend on Accept (JSON for fediverse servers)."""
    if getattr(request, "endpoint", None) in ("show_post", "show_author"):
        vary = response.headers.get("Vary")
        if not vary:
            response.headers.set("Vary", "Accept")
        elif "accept" not in [part.strip().lower() for part in vary.split(",")]:
            response.headers.set("Vary", f"{vary}, Accept")
    return response


def _posts_query(user_id: int | None) -> Any:
    query = select(Post).where(*visible(utcnow()), Post.kind == "post")
    if user_id is not None:
        query = query.where(Post.author_id == user_id)
    return query


def _page_number(request: Request) -> int | None:
    value = request.args.get("page")
    if value is None:
        return None
    if not value.isdigit() or not 0 < int(value) < 100_000:
        raise BadRequest("The page must be a positive number.")
    return int(value)


def _outbox(request: Request, actor: LocalActor) -> Response:
    app = current_app()
    db = get_db(request)
    query = _posts_query(actor.user_id)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    number = _page_number(request)
    if number is None:
        return as2(
            {
                "@context": AS_CONTEXT,
                "id": actor.outbox,
                "type": "OrderedCollection",
                "totalItems": total,
                "first": f"{actor.outbox}?page=1",
                "last": f"{actor.outbox}?page={max(1, -(-total // PER_PAGE))}",
            }
        )
    posts = db.scalars(
        query.order_by(Post.published_at.desc(), Post.id.desc())
        .offset((number - 1) * PER_PAGE)
        .limit(PER_PAGE)
    ).all()
    items = []
    for post in posts:
        obj = article(app, post)
        obj.pop("@context", None)
        writer = author_actor(app, post.author)
        items.append(activity(app, "Create", writer, obj, post, "create"))
        items[-1].pop("@context", None)
    page: dict[str, Any] = {
        "@context": AS_CONTEXT,
        "id": f"{actor.outbox}?page={number}",
        "type": "OrderedCollectionPage",
        "partOf": actor.outbox,
        "totalItems": total,
        "orderedItems": items,
    }
    if number * PER_PAGE < total:
        page["next"] = f"{actor.outbox}?page={number + 1}"
    if number > 1:
        page["prev"] = f"{actor.outbox}?page={number - 1}"
    return as2(page)


def _followers(request: Request, actor: LocalActor) -> Response:
    # The count only: who follows whom is theirs to tell, as on Mastodon's default.
    total = get_db(request).scalar(
        select(func.count(Follower.id)).where(
            Follower.local_actor == actor.key, Follower.state == "accepted"
        )
    )
    return as2(
        {
            "@context": AS_CONTEXT,
            "id": actor.followers,
            "type": "OrderedCollection",
            "totalItems": total or 0,
        }
    )


def _following(actor: LocalActor) -> Response:
    return as2(
        {
            "@context": AS_CONTEXT,
            "id": actor.following,
            "type": "OrderedCollection",
            "totalItems": 0,
        }
    )


def blog_outbox(request: Request) -> Response:
    return _outbox(request, blog_actor(current_app()))


def blog_followers(request: Request) -> Response:
    return _followers(request, blog_actor(current_app()))


def blog_following(request: Request) -> Response:
    return _following(blog_actor(current_app()))


def user_outbox(request: Request, username: str) -> Response:
    return _outbox(request, author_actor(current_app(), _local_author(request, username)))


def user_followers(request: Request, username: str) -> Response:
    return _followers(request, author_actor(current_app(), _local_author(request, username)))


def user_following(request: Request, username: str) -> Response:
    return _following(author_actor(current_app(), _local_author(request, username)))


def _jrd(data: Any, status: int = 200, mimetype: str = JRD_TYPE) -> Response:
    response = Response(json.dumps(data, separators=(",", ":")), status, mimetype=mimetype)
    response.headers.set("Access-Control-Allow-Origin", "*")
    return response


def _our_hosts(app: App) -> set[str]:
    base = urlsplit(str(app.config["BASE_URL"]))
    return {base.netloc.lower(), (base.hostname or "").lower()}


def webfinger(request: Request) -> Response:
    """`/.well-known/webfinger?resource=acct:name@host` (or an actor's URI): the JRD."""
    app = current_app()
    resource = request.args.get("resource", "").strip()
    if not resource or len(resource) > MAX_URI:
        return _jrd({"error": "The resource parameter is required."}, 400)
    db = get_db(request)
    actor = None
    if resource.lower().startswith("acct:"):
        name, _, host = resource[5:].lstrip("@").rpartition("@")
        if host.lower() in _our_hosts(app) and name:
            if name.lower() == blog_username(app):
                actor = blog_actor(app)
            else:
                user = db.scalar(select(User).where(User.username == name.lower()))
                if user is not None and user.is_active:
                    actor = author_actor(app, user)
    else:
        actor = actor_by_uri(app, db, resource)
    if actor is None:
        return _jrd({"error": "There is no such account here."}, 404)
    host = urlsplit(str(app.config["BASE_URL"])).netloc
    return _jrd(
        {
            "subject": f"acct:{actor.username}@{host}",
            "aliases": list(dict.fromkeys([actor.id, actor.url])),
            "links": [
                {"rel": "self", "type": AS2_TYPE, "href": actor.id},
                {
                    "rel": "http://webfinger.net/rel/profile-page",
                    "type": "text/html",
                    "href": actor.url,
                },
            ],
        }
    )


def host_meta(request: Request) -> Response:
    """`/.well-known/host-meta`: where WebFinger is (XRD)."""
    template = escape(current_app().url_for("webfinger", _external=True)) + "?resource={uri}"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" type="application/xrd+xml" template="{template}"/>\n'
        "</XRD>\n"
    )
    response = Response(body, mimetype="application/xrd+xml")
    response.headers.set("Access-Control-Allow-Origin", "*")
    return response


def nodeinfo_links(request: Request) -> Response:
    """`/.well-known/nodeinfo`: the link to our NodeInfo 2.1 document."""
    href = current_app().url_for("nodeinfo", _external=True)
    return _jrd({"links": [{"rel": NODEINFO_SCHEMA, "href": href}]}, mimetype="application/json")


def nodeinfo(request: Request) -> Response:
    """NodeInfo 2.1: the software, its protocol, and counts of authors and posts."""
    app = current_app()
    db = get_db(request)
    now = utcnow()
    authors = select(func.count(func.distinct(Post.author_id))).where(*visible(now))
    users = db.scalar(select(func.count(User.id)).where(User.is_active.is_(True))) or 0
    month = db.scalar(authors.where(Post.published_at >= now - timedelta(days=30))) or 0
    half = db.scalar(authors.where(Post.published_at >= now - timedelta(days=182))) or 0
    posts = db.scalar(select(func.count(Post.id)).where(*visible(now))) or 0
    return _jrd(
        {
            "version": "2.1",
            "software": {
                "name": "pyproject",
                "version": __version__,
                "homepage": app.url_for("home", _external=True),
            },
            "protocols": ["activitypub"],
            "services": {"inbound": [], "outbound": ["atom1.0", "rss2.0"]},
            "openRegistrations": False,
            "usage": {
                "users": {"total": users, "activeMonth": month, "activeHalfyear": half},
                "localPosts": posts,
            },
            "metadata": {"nodeName": _site_title(app)},
        },
        mimetype=f'application/json; profile="{NODEINFO_SCHEMA}#"',
    )


# --- reactions on a post's page ---------------------------------------------------------------


@dataclass
class Reactions:
    likes: list[Reaction]
    announces: list[Reaction]

    @property
    def count(self) -> int:
        return len(self.likes) + len(self.announces)


def reactions_of(post: Post) -> Reactions:
    """Give the fediverse likes and announces of a post (the template global)."""
    found = Reactions([], [])
    request = current_request()
    if request is None or post.id is None or not post.is_published:
        return found
    for reaction in get_db(request).scalars(
        select(Reaction).where(Reaction.post_id == post.id).order_by(Reaction.id).limit(500)
    ):
        (found.likes if reaction.kind == "like" else found.announces).append(reaction)
    return found


def _pages_changed(db: Session) -> None:
    """Bump the site version: a post's page (and its kept copies) lists reactions."""
    db.execute(
        update(SiteState)
        .where(SiteState.id == 1)
        .values(version=SiteState.version + 1, changed_at=utcnow())
    )


# --- remote actors: fetched through the guard, kept ------------------------------------------


class ActorError(Exception):
    """A remote actor (or its key) could not be fetched or read."""


def _domain(uri: str) -> str:
    try:
        return (urlsplit(uri).hostname or "").lower()
    except ValueError:
        return ""


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else ""
    return " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]+", " ", text).split())[:limit]


def _uri(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, list) and value:
        return _uri(value[0])
    if not isinstance(value, str) or not value or len(value) > MAX_URI:
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    return value if parts.scheme in ("http", "https") and parts.hostname else ""


def fetch_json(app: App, url: str, db: Session | None = None) -> dict[str, Any]:
    """GET an ActivityStreams document through outgoing.py; raise ActorError if unusable.

    With `db`, the GET is signed by the blog's actor, as servers in Mastodon's secure
    mode (authorized fetch) require.
    """
    headers = {"Accept": ACCEPT_AS2}
    if db is not None:
        headers = httpsig.sign(
            "GET",
            url,
            body=None,
            key_id=blog_actor(app).key_id,
            private_pem=key_pair(db, BLOG).private_pem,
            now=utcnow(),
            headers=headers,
        )
        headers.pop("Host")  # outgoing.py names the host itself (the same name)
    try:
        answer = outgoing.for_app(app).get(url, headers=headers)
    except outgoing.FetchError as error:
        raise ActorError(f"{url}: {error}") from None
    if answer.status != 200:
        raise ActorError(f"{url} answered {answer.status}")
    try:
        data = json.loads(answer.body)
    except ValueError:
        raise ActorError(f"{url} is not JSON") from None
    if not isinstance(data, dict):
        raise ActorError(f"{url} is not a JSON object")
    return data


def _public_key(document: dict[str, Any], key_id: str) -> str:
    keys = document.get("publicKey")
    for key in keys if isinstance(keys, list) else [keys]:
        if isinstance(key, dict) and (not key_id or key.get("id") == key_id):
            owner = key.get("owner")
            if owner is not None and owner != document.get("id"):
                continue
            pem = key.get("publicKeyPem")
            if isinstance(pem, str) and "PUBLIC KEY" in pem and len(pem) < 10_000:
                return pem
    return ""


def fetch_actor(
    app: App, db: Session, uri: str, key_id: str = "", *, depth: int = 0
) -> RemoteActor:
    """Fetch an actor (by its URI, or the URI of its key) and keep or refresh it."""
    document = fetch_json(app, urldefrag(uri)[0], db)
    actor_uri = _uri(document.get("id"))
    if not actor_uri or document.get("type") not in ACTOR_TYPES:
        # A key document (`{"id": ..#main-key, "owner": ...}`): its owner is the actor.
        owner = _uri(document.get("owner"))
        if owner and owner != urldefrag(uri)[0] and _domain(owner) == _domain(uri) and depth < 1:
            return fetch_actor(app, db, owner, key_id, depth=depth + 1)
        raise ActorError(f"{uri} is not an actor")
    if _domain(actor_uri) != _domain(uri):
        raise ActorError(f"{uri} names an actor on another host")
    pem = _public_key(document, key_id)
    if not pem:
        raise ActorError(f"{actor_uri} has no usable public key {key_id}")
    inbox = _uri(document.get("inbox"))
    if not inbox:
        raise ActorError(f"{actor_uri} has no inbox")
    endpoints = document.get("endpoints")
    shared = _uri(endpoints.get("sharedInbox")) if isinstance(endpoints, dict) else ""
    found = db.scalar(select(RemoteActor).where(RemoteActor.uri == actor_uri))
    if found is None:
        found = RemoteActor(uri=actor_uri)
        db.add(found)
    found.key_id = key_id or f"{actor_uri}#main-key"
    if not key_id:
        keys = document.get("publicKey")
        first = keys[0] if isinstance(keys, list) and keys else keys
        if isinstance(first, dict) and _uri(first.get("id")):
            found.key_id = first["id"]
    found.inbox = inbox
    found.shared_inbox = shared
    found.username = _text(document.get("preferredUsername"), MAX_NAME)
    found.name = _text(document.get("name"), MAX_NAME) or found.username
    found.url = _uri(document.get("url")) or actor_uri
    found.domain = _domain(actor_uri)
    found.public_key_pem = pem
    found.fetched_at = utcnow()
    db.flush()
    return found


# --- blocks -------------------------------------------------------------------------------


def is_blocked(db: Session, *uris: str) -> bool:
    """Give whether any of these URIs, or its domain, is on the blocklist."""
    uris_ = [urldefrag(u)[0] for u in uris if u]
    domains = {_domain(u) for u in uris_} - {""}
    wanted = [("actor", u) for u in uris_] + [("domain", d) for d in domains]
    # A block of example.com covers its subdomains too.
    for domain in list(domains):
        parts = domain.split(".")
        wanted.extend(("domain", ".".join(parts[i:])) for i in range(1, len(parts) - 1))
    if not wanted:
        return False
    conditions = [
        (FederationBlock.kind == kind) & (FederationBlock.value == value) for kind, value in wanted
    ]
    return db.scalar(select(FederationBlock.id).where(or_(*conditions)).limit(1)) is not None


# --- the inbox ----------------------------------------------------------------------------


class Refusal(Exception):
    """An inbox POST refused: the status and why."""

    def __init__(self, status: int, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.outcome, self.detail = status, outcome, detail


def _note(
    db: Session,
    *,
    inbox: str,
    outcome: str,
    status: int,
    detail: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    data = data or {}
    db.add(
        InboxEntry(
            activity_id=_uri(data.get("id"))[:MAX_URI],
            activity_type=_text(data.get("type"), 40),
            actor=_uri(data.get("actor"))[:MAX_URI],
            inbox=inbox[:80],
            outcome=outcome[:40],
            detail=detail[:500],
            status=status,
            received_at=utcnow(),
        )
    )


def _answer(status: int, text: str) -> Response:
    body = json.dumps({"status": status, "message": text})
    return Response(body, status, mimetype="application/json")


def _request_target(request: Request) -> str:
    path = request.environ.get("RAW_URI") or ""
    if not path.startswith("/"):
        path = request.script_root + request.path
        if request.query_string:
            path += "?" + request.query_string
    return path


def _read_body(request: Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise Refusal(413, "too large", f"the body is over {limit} bytes")
    # The request reads no further than the inbox's own limit (a chunked body too).
    request.max_content_length = min(limit, request.max_content_length)
    try:
        return request.get_data()
    except RequestEntityTooLarge:
        raise Refusal(413, "too large", f"the body is over {limit} bytes") from None


def _parse(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "malformed", "the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise Refusal(400, "malformed", "the body is not an activity")
    if not _uri(data.get("actor")):
        raise Refusal(400, "malformed", "the activity names no actor")
    return data


def verify_sender(
    app: App, db: Session, request: Request, body: bytes, data: dict[str, Any]
) -> RemoteActor:
    """Check an inbox POST's signature; give the sender (its key fetched or kept)."""
    now = utcnow()
    try:
        parsed = httpsig.parse_signature(request.headers.get("Signature"))
        httpsig.check_date(request.headers.get("Date"), now)
        httpsig.check_digest(request.headers.get("Digest"), body)
    except httpsig.SignatureError as error:
        raise Refusal(401, "bad signature", str(error)) from None
    wanted = {*parsed.headers, "date", "digest", "signature"} - {"(request-target)"}
    headers = {name: request.headers.get(name) for name in wanted}
    headers = {name: value for name, value in headers.items() if value is not None}
    key_id = _uri(parsed.key_id)
    if not key_id:
        raise Refusal(401, "bad signature", "the keyId is not a URL")
    if is_blocked(db, key_id):
        raise Refusal(403, "blocked", "the key's server is blocked")
    target = _request_target(request)
    sender = db.scalar(select(RemoteActor).where(RemoteActor.key_id == key_id))
    fetched = False
    for attempt in (1, 2):
        if sender is None or attempt == 2:
            try:
                sender = fetch_actor(app, db, key_id, key_id)
            except ActorError as error:
                raise Refusal(401, "unknown key", str(error)) from None
            fetched = True
        try:
            httpsig.verify(
                request.method, target, headers, body, sender.public_key_pem, now=now, parsed=parsed
            )
            break
        except httpsig.SignatureError as error:
            if fetched:  # the key as its owner gives it now: no second fetch
                raise Refusal(401, "bad signature", str(error)) from None
    if _uri(data.get("actor")) != sender.uri:
        raise Refusal(401, "wrong actor", "the activity's actor is not the key's owner")
    return sender


def inbox(request: Request, username: str | None = None) -> Response:
    """POST to an inbox (the shared one, the blog's or an author's): check, then act."""
    app = current_app()
    db = get_db(request)
    name = username or ("blog" if request.endpoint == "ap_blog_inbox" else "shared")
    if username is not None:
        _local_author(request, username)
    data: dict[str, Any] = {}
    limit = int(app.config.get("FEDERATION_MAX_INBOX_BYTES") or 1_000_000)
    try:
        body = _read_body(request, limit)
        data = _parse(body)
    except Refusal as refusal:  # no activity to speak of: nothing is written, not even a log line
        return _answer(refusal.status, refusal.detail)
    try:
        if is_blocked(db, _uri(data.get("actor"))):
            raise Refusal(403, "blocked", "the actor or its server is blocked")
        sender = verify_sender(app, db, request, body, data)
        activity_id = _uri(data.get("id"))
        if activity_id and db.scalar(
            select(InboxEntry.id)
            .where(InboxEntry.activity_id == activity_id, InboxEntry.outcome.in_(ACTED))
            .limit(1)
        ):
            outcome, detail, status = "repeated", "", 202
        else:
            outcome, detail = handle(app, db, sender, data)
            status = 202
    except Refusal as refusal:
        db.rollback()  # nothing of a refused activity is kept (a key fetched for it neither)
        outcome, detail, status = refusal.outcome, refusal.detail, refusal.status
    _note(db, inbox=name, outcome=outcome, status=status, detail=detail, data=data)
    db.commit()
    if status != 202:
        return _answer(status, detail)
    return _answer(202, "Already received." if outcome == "repeated" else "Accepted.")


def _object_of(data: dict[str, Any]) -> Any:
    return data.get("object")


def handle(app: App, db: Session, sender: RemoteActor, data: dict[str, Any]) -> tuple[str, str]:
    """Act on a verified activity; give (outcome, detail) for the inbox log."""
    kind = data["type"]
    obj = _object_of(data)
    if kind == "Follow":
        return _follow(app, db, sender, data)
    if kind == "Undo" and isinstance(obj, dict | str):
        return _undo(app, db, sender, obj)
    if kind in ("Like", "Announce"):
        post = post_of_uri(app, db, obj)
        if post is None:
            return "ignored", "not one of our posts"
        reaction_kind = "like" if kind == "Like" else "announce"
        found = db.scalar(
            select(Reaction).where(
                Reaction.post_id == post.id,
                Reaction.kind == reaction_kind,
                Reaction.actor_uri == sender.uri,
            )
        )
        if found is None:
            db.add(
                Reaction(
                    post_id=post.id,
                    kind=reaction_kind,
                    actor_uri=sender.uri,
                    actor_name=sender.name or sender.handle,
                    actor_url=sender.url,
                    activity_id=_uri(data.get("id")),
                    created_at=utcnow(),
                )
            )
            _pages_changed(db)
        return "accepted", f"{reaction_kind} of post {post.id}"
    if kind in ("Create", "Update") and isinstance(obj, dict) and obj.get("type") == "Note":
        return _reply(app, db, sender, obj, kind)
    if kind == "Update" and isinstance(obj, dict) and _uri(obj.get("id")) == sender.uri:
        try:
            fetch_actor(app, db, sender.uri)
        except ActorError as error:
            return "ignored", f"the actor could not be fetched again: {error}"
        return "accepted", "actor refreshed"
    if kind == "Delete":
        return _delete(db, sender, obj)
    return "ignored", f"{kind[:40]} is not something we act on"


def _follow(app: App, db: Session, sender: RemoteActor, data: dict[str, Any]) -> tuple[str, str]:
    target = actor_by_uri(app, db, _uri(data.get("object")))
    if target is None:
        return "ignored", "a Follow of no actor of ours"
    follower = db.scalar(
        select(Follower).where(
            Follower.local_actor == target.key, Follower.remote_actor_id == sender.id
        )
    )
    approve = bool(app.config.get("FEDERATION_APPROVE_FOLLOWS"))
    if follower is None:
        follower = Follower(
            local_actor=target.key,
            remote_actor_id=sender.id,
            state="pending" if approve else "accepted",
            delivered=0,
            failed=0,
            created_at=utcnow(),
        )
        db.add(follower)
    follower.follow_activity = _uri(data.get("id"))
    if follower.state == "accepted":
        follower.accepted_at = follower.accepted_at or utcnow()
        db.flush()
        send_accept(app, db, follower, data)
        return "accepted", f"follows {target.username}"
    return "accepted", f"asks to follow {target.username} (awaiting approval)"


def send_accept(app: App, db: Session, follower: Follower, follow: dict[str, Any] | None) -> None:
    """Queue the Accept of a Follow to the follower's own inbox."""
    actor = actor_by_key(app, db, follower.local_actor)
    if actor is None:
        return
    remote = follower.remote or db.get(RemoteActor, follower.remote_actor_id)
    follow = follow or {
        "id": follower.follow_activity,
        "type": "Follow",
        "actor": remote.uri,
        "object": actor.id,
    }
    accepted = {
        "@context": AS_CONTEXT,
        "id": f"{actor.id}#accepts/{follower.id}/{int(utcnow().timestamp())}",
        "type": "Accept",
        "actor": actor.id,
        "object": {
            "id": _uri(follow.get("id")) or follower.follow_activity,
            "type": "Follow",
            "actor": remote.uri,
            "object": actor.id,
        },
    }
    queue_delivery(db, remote.inbox, actor.key, "Accept", accepted, "")


def _undo(app: App, db: Session, sender: RemoteActor, obj: Any) -> tuple[str, str]:
    inner_type = obj.get("type") if isinstance(obj, dict) else None
    inner_id = _uri(obj)
    if inner_type == "Follow" or (
        inner_type is None
        and db.scalar(
            select(Follower.id).where(
                Follower.remote_actor_id == sender.id, Follower.follow_activity == inner_id
            )
        )
    ):
        conditions = [Follower.remote_actor_id == sender.id]
        target = actor_by_uri(app, db, _uri(obj.get("object"))) if isinstance(obj, dict) else None
        if target is not None:
            conditions.append(Follower.local_actor == target.key)
        elif inner_id:
            conditions.append(Follower.follow_activity == inner_id)
        gone = db.execute(delete(Follower).where(*conditions))
        return "accepted", f"unfollowed ({gone.rowcount})"
    if inner_type in ("Like", "Announce") or inner_id:
        kind = {"Like": "like", "Announce": "announce"}.get(inner_type or "")
        conditions = [Reaction.actor_uri == sender.uri]
        post = post_of_uri(app, db, obj.get("object")) if isinstance(obj, dict) else None
        if post is not None and kind:
            conditions += [Reaction.post_id == post.id, Reaction.kind == kind]
        elif inner_id:
            conditions.append(Reaction.activity_id == inner_id)
        else:
            return "ignored", "an Undo of nothing we know"
        gone = db.execute(delete(Reaction).where(*conditions))
        if gone.rowcount:
            _pages_changed(db)
        return "accepted", f"reaction withdrawn ({gone.rowcount})"
    return "ignored", "an Undo of nothing we know"


class _Text(HTMLParser):
    """The text of a remote note's HTML: paragraphs and line breaks kept, tags dropped."""

    BREAKS = frozenset({"p", "br", "div", "li", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Give the plain text of remote HTML (never shown as HTML: comments escape it)."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    return "\n\n".join(line for line in lines if line)


def _reply(
    app: App, db: Session, sender: RemoteActor, note: dict[str, Any], kind: str
) -> tuple[str, str]:
    from pyproject.blog.comments import add_remote_reply

    note_id = _uri(note.get("id"))
    if not note_id or _domain(note_id) != sender.domain:
        raise Refusal(401, "wrong origin", "the note is not on the sender's server")
    if _uri(note.get("attributedTo")) not in ("", sender.uri):
        raise Refusal(401, "wrong actor", "the note is someone else's")
    post = post_of_uri(app, db, note.get("inReplyTo"))
    if post is None:
        return "ignored", "not a reply to one of our posts"
    existing = db.scalar(
        select(Comment.id).where(Comment.source_url == note_id, Comment.post_id == post.id)
    )
    if kind == "Update" and existing is None:
        return "ignored", "an update of a reply we do not have"
    content = note.get("content")
    text = html_to_text(content if isinstance(content, str) else "")
    published = None
    if isinstance(note.get("published"), str):
        try:
            published = datetime.fromisoformat(note["published"].replace("Z", "+00:00"))
            if published.tzinfo is None:
                published = None
        except ValueError:
            published = None
    add_remote_reply(
        db,
        post.id,
        author_name=f"{sender.name or sender.username} ({sender.handle})"
        if sender.username
        else sender.name,
        author_url=sender.url,
        body_text=text or f"A reply at {note_id}",
        source_url=note_id,
        published=published,
        app=app,
        kind="fediverse",
    )
    return "accepted", f"reply to post {post.id} held for moderation"


def _delete(db: Session, sender: RemoteActor, obj: Any) -> tuple[str, str]:
    from pyproject.blog.comments import remove_remote_reply

    target = _uri(obj)
    if not target:
        return "ignored", "a Delete of nothing"
    if target == sender.uri:
        db.execute(delete(Reaction).where(Reaction.actor_uri == sender.uri))
        db.execute(delete(Follower).where(Follower.remote_actor_id == sender.id))
        db.delete(sender)
        _pages_changed(db)
        return "accepted", "the actor is gone"
    if _domain(target) != sender.domain:
        raise Refusal(401, "wrong origin", "a Delete of another server's object")
    post_ids = db.scalars(
        select(Comment.post_id).where(Comment.source_url == target, Comment.kind == "fediverse")
    ).all()
    for post_id in set(post_ids):
        remove_remote_reply(db, target, post_id, kind="fediverse")
    if post_ids:
        _pages_changed(db)
    return "accepted", f"removed {len(post_ids)} reply"


# --- delivery -----------------------------------------------------------------------------


def queue_delivery(
    db: Session, inbox_url: str, actor_key: str, kind: str, data: dict[str, Any], audience: str
) -> Delivery:
    """Add a delivery of an activity to an inbox, and its job (once `db` commits)."""
    now = utcnow()
    domain = _domain(inbox_url)
    paused = db.scalar(
        select(FederationDomain.domain).where(
            FederationDomain.domain == domain, FederationDomain.paused_at.is_not(None)
        )
    )
    row = Delivery(
        inbox=inbox_url,
        domain=domain,
        actor=actor_key,
        kind=kind,
        activity=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        audience=audience,
        state="paused" if paused else "waiting",
        attempts=0,
        queued=not paused,
        last_error="",
        created_at=now,
        next_attempt_at=now,
    )
    db.add(row)
    db.flush()
    if not paused:
        jobs.enqueue(db, deliver, row.id)
    return row


def _inboxes(db: Session, actor_keys: Iterable[str]) -> list[str]:
    rows = db.execute(
        select(RemoteActor.shared_inbox, RemoteActor.inbox)
        .join(Follower, Follower.remote_actor_id == RemoteActor.id)
        .where(Follower.local_actor.in_(list(actor_keys)), Follower.state == "accepted")
    ).all()
    return list(dict.fromkeys(shared or own for shared, own in rows))


def tell_followers(app: App, db: Session, post_id: int) -> str:
    """Queue what followers must learn of a post now (Create, Update, Delete); give it.

    The post's row (and what was told of it) is locked first: workers on several hosts
    may tell the same change at once (federate_post beside federate_due), and the second
    must wait and then see what the first told, not insert it again (on SQLite the
    write transaction already holds the database).
    """
    db.execute(select(Post.id).where(Post.id == post_id).with_for_update())
    db.execute(
        select(FederatedPost.post_id).where(FederatedPost.post_id == post_id).with_for_update()
    )
    post = db.get(Post, post_id, populate_existing=True)
    told = db.get(FederatedPost, post_id, populate_existing=True)
    public = post is not None and post.is_published and post.kind == "post"
    now = utcnow()
    if public:
        if told is not None and told.state == "created" and told.revision == post.revision:
            return "nothing"
        kind = "Create" if told is None or told.state != "created" else "Update"
        if told is None:
            told = FederatedPost(
                post_id=post_id, revision=post.revision, state="created", creates=0
            )
            db.add(told)
        if kind == "Create":
            told.creates += 1
        told.revision, told.state, told.told_at = post.revision, "created", now
        author = author_actor(app, post.author)
        obj = article(app, post)
        obj.pop("@context", None)
        suffix = f"update-{post.revision}"
        if kind == "Create":  # the outbox's id for the first; a restore's Create is new
            suffix = "create" if told.creates == 1 else f"create-{told.creates}"
        data = activity(app, kind, author, obj, post, suffix)
        audience = f"{BLOG} {author.key}"
        for inbox_url in _inboxes(db, [BLOG, author.key]):
            queue_delivery(db, inbox_url, author.key, kind, data, audience)
        if kind == "Create":
            blog = blog_actor(app)
            announce = activity(app, "Announce", blog, obj["id"], post, f"announce-{told.creates}")
            for inbox_url in _inboxes(db, [BLOG]):
                queue_delivery(db, inbox_url, BLOG, "Announce", announce, BLOG)
        return kind
    if told is None or told.state != "created":
        return "nothing"
    told.state, told.told_at = "deleted", now
    author_id = post.author_id if post is not None else None
    author = db.get(User, author_id) if author_id is not None else None
    keys = [BLOG] + ([f"user:{author.id}"] if author is not None else [])
    sender = author_actor(app, author) if author is not None else blog_actor(app)
    gone = tombstone(app, post_id, now)
    gone.pop("@context")
    data = activity(app, "Delete", sender, gone, None, "")
    data["id"] = f"{object_uri(app, post_id)}#delete-{told.creates}"
    for inbox_url in _inboxes(db, keys):
        queue_delivery(db, inbox_url, sender.key, "Delete", data, " ".join(keys))
    return "Delete"


@jobs.job(retries=3)
def federate_post(post_id: int) -> str:
    """Tell followers of a post's change (once: what was told is kept); give what was told."""
    app = jobs.current_app()
    with get_database(app).write() as db:
        return tell_followers(app, db, post_id)


@jobs.job(retries=2, periodic=crontab(minute="*"))
def federate_due() -> int:
    """Every minute: queue `federate_post` for posts not told as they are, and due deliveries.

    Scheduled posts that went live, posts changed while a job was lost, posts moved to
    the trash; and deliveries whose next try has come. Gives how many jobs were queued.
    """
    app = jobs.current_app()
    now = utcnow()
    changed = (
        select(Post.id)
        .outerjoin(FederatedPost, FederatedPost.post_id == Post.id)
        .where(
            *visible(now),
            Post.kind == "post",
            (FederatedPost.post_id.is_(None))
            | (FederatedPost.revision != Post.revision)
            | (FederatedPost.state != "created"),
        )
        .limit(50)
    )
    gone = (
        select(FederatedPost.post_id)
        .outerjoin(Post, Post.id == FederatedPost.post_id)
        .where(
            FederatedPost.state == "created",
            Post.id.is_(None) | Post.deleted_at.is_not(None) | (Post.status != "published"),
        )
        .limit(50)
    )
    due = (
        select(Delivery.id)
        .where(
            Delivery.state == "waiting",
            Delivery.next_attempt_at <= now,
            (Delivery.queued.is_(False)) | (Delivery.next_attempt_at < now - STALE_QUEUED),
        )
        .order_by(Delivery.next_attempt_at)
        .limit(500)
    )
    with get_database(app).read() as db:
        if not any(db.scalars(q).first() for q in (changed, gone, due)):
            return 0
    with get_database(app).write() as db:
        posts = [*db.scalars(changed), *db.scalars(gone)]
        for post_id in posts:
            jobs.enqueue(db, federate_post, post_id)
        deliveries = list(db.scalars(due))
        if deliveries:
            db.execute(update(Delivery).where(Delivery.id.in_(deliveries)).values(queued=True))
        for delivery_id in deliveries:
            jobs.enqueue(db, deliver, delivery_id)
        db.execute(
            delete(InboxEntry).where(
                InboxEntry.id <= select(func.max(InboxEntry.id)).scalar_subquery() - LOG_KEPT
            )
        )
        return len(posts) + len(deliveries)


def backoff(app: App, attempts: int) -> timedelta:
    """Give the wait before try `attempts + 1`: doubling from FEDERATION_RETRY_SECONDS."""
    first = float(app.config.get("FEDERATION_RETRY_SECONDS") or 60)
    return timedelta(seconds=min(first * 2 ** max(0, attempts - 1), 12 * 3600))


@jobs.job(retries=0)
def deliver(delivery_id: int) -> str:
    """Send one activity to one inbox, signed; on failure, plan the next try."""
    app = jobs.current_app()
    database = get_database(app)
    with database.read() as db:
        row = db.get(Delivery, delivery_id)
        if row is None or row.state != "waiting":
            return "nothing to do"
        actor = actor_by_key(app, db, row.actor)
        inbox_url, body, kind = row.inbox, row.activity.encode(), row.kind
    if actor is None:
        with database.write() as db:
            db.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(state="failed", queued=False, last_error="the sending actor is gone")
            )
        return "no actor"
    with database.write() as db:
        private_pem = key_pair(db, actor.key).private_pem
    headers = httpsig.sign(
        "POST",
        inbox_url,
        body=body,
        key_id=actor.key_id,
        private_pem=private_pem,
        now=utcnow(),
        headers={"Content-Type": AS2_TYPE, "Accept": AS2_TYPE},
    )
    error, final = "", False
    try:
        answer = outgoing.for_app(app).post(inbox_url, data=body, headers=headers)
        if not 200 <= answer.status < 300:
            error = f"the inbox answered {answer.status}"
            # Refused for good (gone, forbidden, bad request); busy or down is retried.
            final = 400 <= answer.status < 500 and answer.status not in (401, 408, 429)
    except outgoing.FetchFailed as failure:
        error = str(failure)
    except outgoing.FetchError as failure:
        error, final = str(failure), True
    return _record(app, delivery_id, error, final, kind)


def _record(app: App, delivery_id: int, error: str, final: bool, kind: str) -> str:
    now = utcnow()
    with get_database(app).write() as db:
        row = db.get(Delivery, delivery_id)
        if row is None or row.state != "waiting":
            return "recorded already"
        domain = db.get(FederationDomain, row.domain)
        if domain is None:
            domain = FederationDomain(domain=row.domain, last_error="")
            db.add(domain)
        counted = row.kind == "Create"
        followers = (
            select(Follower.id)
            .join(RemoteActor, RemoteActor.id == Follower.remote_actor_id)
            .where(
                Follower.local_actor.in_(row.audience.split()),
                (RemoteActor.shared_inbox == row.inbox) | (RemoteActor.inbox == row.inbox),
            )
        )
        row.attempts += 1
        row.queued = False
        if not error:
            row.state, row.done_at, row.last_error = "done", now, ""
            domain.failing_since, domain.last_success_at = None, now
            if counted:
                db.execute(
                    update(Follower)
                    .where(Follower.id.in_(followers))
                    .values(delivered=Follower.delivered + 1)
                )
            metrics.count_delivery("activitypub", "sent")
            return "delivered"
        row.last_error = error[:500]
        domain.last_error = error[:500]
        domain.failing_since = domain.failing_since or now
        retry_until = row.created_at + timedelta(
            hours=float(app.config.get("FEDERATION_RETRY_HOURS") or 48)
        )
        next_try = now + backoff(app, row.attempts)
        if final or next_try > retry_until:
            row.state = "failed"
            if counted:
                db.execute(
                    update(Follower)
                    .where(Follower.id.in_(followers))
                    .values(failed=Follower.failed + 1)
                )
            metrics.count_delivery("activitypub", "failed")
        else:
            row.next_attempt_at = next_try
        pause_after = timedelta(days=float(app.config.get("FEDERATION_PAUSE_DAYS") or 7))
        if domain.paused_at is None and now - domain.failing_since >= pause_after:
            domain.paused_at = now
            db.execute(
                update(Delivery)
                .where(Delivery.domain == row.domain, Delivery.state == "waiting")
                .values(state="paused", queued=False)
            )
            log.warning(
                "deliveries to %s paused: failing since %s", row.domain, domain.failing_since
            )
        log.info("delivery %s to %s failed: %s", delivery_id, row.inbox, error)
        return "failed" if row.state == "failed" else "will retry"


def _posts_written(session: Session, _context: Any) -> None:
    """After a flush: remember the posts written, to tell followers once it commits."""
    ids = session.info.setdefault("federation_posts", set())
    for item in (*session.new, *session.dirty, *session.deleted):
        if isinstance(item, Post) and item.id is not None:
            ids.add(item.id)


def watch_posts(app: App) -> None:
    """Ask for `federate_post` whenever a transaction that wrote a post commits."""
    sessions = get_database(app).sessions

    @event.listens_for(sessions, "after_flush")
    def written(session: Session, context: Any) -> None:
        _posts_written(session, context)

    @event.listens_for(sessions, "before_commit")
    def ask(session: Session) -> None:
        if any(isinstance(item, Post) for item in (*session.new, *session.dirty, *session.deleted)):
            session.flush()  # the posts this commit writes: their ids, through `written`
        ids = session.info.pop("federation_posts", None)
        if ids and federate_post.task is not None:
            for post_id in sorted(ids):
                jobs.enqueue(session, federate_post, post_id)

    @event.listens_for(sessions, "after_rollback")
    def forget(session: Session) -> None:
        session.info.pop("federation_posts", None)


# --- /admin/federation -------------------------------------------------------------------


def _actor_label(app: App, db: Session, key: str) -> str:
    actor = actor_by_key(app, db, key)
    host = urlsplit(str(app.config["BASE_URL"])).netloc
    return f"@{actor.username}@{host}" if actor is not None else key


def _admin_context(app: App, db: Session) -> dict[str, Any]:
    followers = db.scalars(
        select(Follower).order_by(Follower.local_actor, Follower.created_at.desc()).limit(2000)
    ).all()
    by_actor: dict[str, list[Follower]] = {}
    pending: list[Follower] = []
    for follower in followers:
        if follower.state == "pending":
            pending.append(follower)
        else:
            by_actor.setdefault(follower.local_actor, []).append(follower)
    labels = {key: _actor_label(app, db, key) for key in {f.local_actor for f in followers}}
    return {
        "by_actor": sorted(by_actor.items(), key=lambda item: (item[0] != BLOG, item[0])),
        "pending": pending,
        "labels": labels,
        "blocks": db.scalars(
            select(FederationBlock).order_by(FederationBlock.kind, FederationBlock.value)
        ).all(),
        "paused": db.scalars(
            select(FederationDomain)
            .where(FederationDomain.paused_at.is_not(None))
            .order_by(FederationDomain.domain)
        ).all(),
        "failing": db.scalars(
            select(FederationDomain)
            .where(
                FederationDomain.failing_since.is_not(None), FederationDomain.paused_at.is_(None)
            )
            .order_by(FederationDomain.domain)
        ).all(),
        "log": db.scalars(select(InboxEntry).order_by(InboxEntry.id.desc()).limit(100)).all(),
        "handle": f"@{blog_username(app)}@{urlsplit(str(app.config['BASE_URL'])).netloc}",
        "block_error": None,
        "block_kind": "domain",
        "block_value": "",
    }


@admin_required
def admin_federation(request: Request) -> str:
    """Followers, pending requests, blocks, paused domains and the inbox's last activities."""
    app = current_app()
    return render_template("admin/federation.html", **_admin_context(app, get_db(request)))


def _follower_or_404(db: Session, follower_id: int) -> Follower:
    follower = db.get(Follower, follower_id)
    if follower is None:
        raise NotFound("There is no such follower.")
    return follower


@admin_required
def approve_follower(request: Request, follower_id: int) -> Response:
    app = current_app()
    db = get_db(request)
    follower = _follower_or_404(db, follower_id)
    if follower.state == "pending":
        follower.state, follower.accepted_at = "accepted", utcnow()
        send_accept(app, db, follower, None)
        db.commit()
        flash(
            f"{follower.remote.handle} now follows {_actor_label(app, db, follower.local_actor)}.",
            "success",
        )
    return redirect(url_for("admin_federation"))


@admin_required
def remove_follower(request: Request, follower_id: int) -> Response:
    """Reject a pending request, or remove a follower (they are sent a Reject)."""
    app = current_app()
    db = get_db(request)
    follower = _follower_or_404(db, follower_id)
    actor = actor_by_key(app, db, follower.local_actor)
    remote = follower.remote
    if actor is not None:
        rejected = {
            "@context": AS_CONTEXT,
            "id": f"{actor.id}#rejects/{follower.id}/{int(utcnow().timestamp())}",
            "type": "Reject",
            "actor": actor.id,
            "object": {
                "id": follower.follow_activity,
                "type": "Follow",
                "actor": remote.uri,
                "object": actor.id,
            },
        }
        queue_delivery(db, remote.inbox, actor.key, "Reject", rejected, "")
    db.delete(follower)
    db.commit()
    flash(f"{remote.handle} no longer follows.", "success")
    return redirect(url_for("admin_federation"))


_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def block_value(kind: str, value: str) -> tuple[str, str | None]:
    """Give the block to keep (normalised) and an error, if the value is not one."""
    value = value.strip()
    if kind == "domain":
        value = value.lower().removeprefix("@").rstrip(".")
        if "@" in value:
            value = value.rpartition("@")[2]
        try:
            value = value.encode("idna").decode("ascii") if not value.isascii() else value
        except UnicodeError:
            return value, "That is not a domain name."
        if not _DOMAIN.match(value):
            return value, "Give a domain name, such as spam.example."
        return value, None
    if kind == "actor":
        if not _uri(value):
            return value, "Give the actor's address, such as https://spam.example/users/someone."
        return urldefrag(value)[0], None
    return value, "Choose a domain or an actor."


@admin_required
def add_block(request: Request) -> Response | tuple[str, int]:
    app = current_app()
    db = get_db(request)
    kind = request.form.get("kind", "")
    typed = request.form.get("value", "")
    value, error = block_value(kind, typed[: MAX_URI + 1])
    if error is None and len(value) > MAX_URI:
        error = "That address is too long."
    if error is not None:
        context = _admin_context(app, db)
        context.update(block_error=error, block_kind=kind, block_value=typed)
        page = render_template("admin/federation.html", **context)
        return page, 422
    if (
        db.scalar(
            select(FederationBlock.id).where(
                FederationBlock.kind == kind, FederationBlock.value == value
            )
        )
        is None
    ):
        db.add(FederationBlock(kind=kind, value=value, created_at=utcnow()))
    # What a blocked server or actor had here goes: its follows.
    if kind == "domain":
        blocked = select(RemoteActor.id).where(
            (RemoteActor.domain == value) | RemoteActor.domain.endswith("." + value)
        )
    else:
        blocked = select(RemoteActor.id).where(RemoteActor.uri == value)
    db.execute(delete(Follower).where(Follower.remote_actor_id.in_(blocked)))
    db.commit()
    flash(f"Blocked {value}.", "success")
    return redirect(url_for("admin_federation"))


@admin_required
def remove_block(request: Request, block_id: int) -> Response:
    db = get_db(request)
    block = db.get(FederationBlock, block_id)
    if block is None:
        raise NotFound("There is no such block.")
    value = block.value
    db.delete(block)
    db.commit()
    flash(f"{value} is no longer blocked.", "success")
    return redirect(url_for("admin_federation"))


@admin_required
def resume_domain(request: Request) -> Response:
    """Resume deliveries to a paused domain (its held deliveries are tried again)."""
    db = get_db(request)
    name = request.form.get("domain", "").strip().lower()
    domain = db.get(FederationDomain, name[:255])
    if domain is None:
        raise NotFound("That domain is not paused.")
    domain.paused_at, domain.failing_since = None, None
    now = utcnow()
    db.execute(
        update(Delivery)
        .where(Delivery.domain == domain.domain, Delivery.state == "paused")
        .values(state="waiting", queued=False, next_attempt_at=now, created_at=now, attempts=0)
    )
    db.commit()
    flash(f"Deliveries to {domain.domain} resume.", "success")
    return redirect(url_for("admin_federation"))


def register(app: App) -> None:
    """Add discovery, actors, objects, collections, inboxes and the admin page."""
    app.add_route("/.well-known/webfinger", webfinger, endpoint="webfinger")
    app.add_route("/.well-known/host-meta", host_meta, endpoint="host_meta")
    app.add_route("/.well-known/nodeinfo", nodeinfo_links, endpoint="nodeinfo_links")
    app.add_route("/nodeinfo/2.1", nodeinfo, endpoint="nodeinfo")
    app.add_route("/ap/blog", blog_actor_view, endpoint="ap_blog_actor")
    app.add_route("/ap/blog/outbox", blog_outbox, endpoint="ap_blog_outbox")
    app.add_route("/ap/blog/followers", blog_followers, endpoint="ap_blog_followers")
    app.add_route("/ap/blog/following", blog_following, endpoint="ap_blog_following")
    app.add_route("/ap/users/<username>/outbox", user_outbox, endpoint="ap_user_outbox")
    app.add_route("/ap/users/<username>/followers", user_followers, endpoint="ap_user_followers")
    app.add_route("/ap/users/<username>/following", user_following, endpoint="ap_user_following")
    app.add_route("/ap/objects/<int:post_id>", object_view, endpoint="ap_object")
    # Inboxes are posted to by other servers, signed: no session, no CSRF token.
    for rule, endpoint in (
        ("/ap/inbox", "ap_shared_inbox"),
        ("/ap/blog/inbox", "ap_blog_inbox"),
        ("/ap/users/<username>/inbox", "ap_user_inbox"),
    ):
        app.add_route(rule, inbox, methods=["POST"], endpoint=endpoint, csrf=False)
    app.add_route("/admin/federation", admin_federation)
    app.add_route(
        "/admin/federation/followers/<int:follower_id>/approve", approve_follower, methods=["POST"]
    )
    app.add_route(
        "/admin/federation/followers/<int:follower_id>/remove", remove_follower, methods=["POST"]
    )
    app.add_route("/admin/federation/blocks", add_block, methods=["POST"])
    app.add_route("/admin/federation/blocks/<int:block_id>/remove", remove_block, methods=["POST"])
    app.add_route("/admin/federation/domains/resume", resume_domain, methods=["POST"])
    app.before_request(negotiate)
    app.after_request(vary_on_accept)
    app.jinja_env.globals["fediverse_reactions"] = reactions_of
    watch_posts(app)
