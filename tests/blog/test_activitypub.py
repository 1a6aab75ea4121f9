"""ActivityPub: discovery (WebFinger, NodeInfo, host-meta), actors and objects in the shapes
Mastodon's documentation requires, content negotiation (and the page cache keeping the two
apart), every inbox rule, and delivery (Create, Update, Delete, Announce, Accept) to a real
server on loopback that checks our signatures.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from blog.conftest import Cast, delete_post, edit_post, make_cast, slug_of, write_post
from blog.test_scheduling import local_input
from blog.test_webmention import any_db_site, run_jobs  # noqa: F401 (a fixture)
from pyproject.blog import activitypub, httpsig, jobs
from pyproject.blog.db import get_database
from pyproject.blog.models import (
    Comment,
    Delivery,
    FederatedPost,
    FederationDomain,
    Follower,
    InboxEntry,
    Post,
    Reaction,
    RemoteActor,
    User,
    set_clock,
    utcnow,
)
from pyproject.lib import App
from tests.conftest import build_app

BASE_URL = "http://localhost"
AS2 = {"Accept": "application/activity+json"}


# --- another fediverse server on loopback: one actor, its inboxes, what it received -------


class Remote:
    """A fediverse server: actor `carol` (and `dave`) with keys, inboxes that record POSTs."""

    def __init__(self) -> None:
        self.url = ""
        self.keys = {name: httpsig.new_key_pair() for name in ("carol", "dave")}
        self.names = {"carol": "Carol Remote", "dave": "Dave Remote"}
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.fetches: list[tuple[str, dict[str, str]]] = []  # GETs: path, headers
        self.inbox_status = 202

    def actor_uri(self, name: str = "carol") -> str:
        return f"{self.url}/users/{name}"

    def document(self, name: str) -> dict[str, Any]:
        uri = self.actor_uri(name)
        return {
            "@context": ["https://www.w3.org/ns/activitystreams"],
            "id": uri,
            "type": "Person",
            "preferredUsername": name,
            "name": self.names[name],
            "url": f"{self.url}/@{name}",
            "inbox": f"{uri}/inbox",
            "endpoints": {"sharedInbox": f"{self.url}/inbox"},
            "publicKey": {
                "id": f"{uri}#main-key",
                "owner": uri,
                "publicKeyPem": self.keys[name][1],
            },
        }

    def activities(self, kind: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(body) for _, _, body in self.received]
        return [a for a in found if kind is None or a["type"] == kind]


def _handler(remote: Remote) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, kind: str = "application/activity+json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            remote.fetches.append((self.path, dict(self.headers.items())))
            name = self.path.removeprefix("/users/")
            if name in remote.keys:
                self._send(200, json.dumps(remote.document(name)).encode())
            else:
                self._send(404, b"{}")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            remote.received.append((self.path, dict(self.headers.items()), body))
            self._send(remote.inbox_status, b"")

    return Handler


@pytest.fixture
def remote() -> Iterator[Remote]:
    server = Remote()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


def make_site(tmp_path: Path, **overrides: Any) -> App:
    return build_app(
        tmp_path,
        BASE_URL=BASE_URL,
        OUTGOING_ALLOW_LOOPBACK=True,
        OUTGOING_TIMEOUT=2,
        JOB_RETRY_SECONDS=0.05,
        **overrides,
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[App]:
    app = make_site(tmp_path)
    yield app
    get_database(app).dispose()


@pytest.fixture
def cast(site: App) -> Cast:
    return make_cast(site)


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    yield
    set_clock(None)


def send(
    cast: Cast,
    remote: Remote,
    data: dict[str, Any],
    *,
    path: str = "/ap/inbox",
    name: str = "carol",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    keys: tuple[str, str] | None = None,
    when: Any = None,
) -> Any:
    """POST an activity to one of our inboxes, signed as `name` of the remote server."""
    raw = body if body is not None else json.dumps(data).encode()
    signed = httpsig.sign(
        "POST",
        BASE_URL + path,
        body=raw,
        key_id=f"{remote.actor_uri(name)}#main-key",
        private_pem=(keys or remote.keys[name])[0],
        now=when or utcnow(),
        headers={"Content-Type": "application/activity+json"},
    )
    signed.update(headers or {})
    signed = {k: v for k, v in signed.items() if v is not None}
    return cast.anonymous.post(path, data=raw, headers=signed)


def follow(remote: Remote, target: str = f"{BASE_URL}/ap/blog", name: str = "carol") -> dict:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{remote.actor_uri(name)}#follows/{target[-12:]}",
        "type": "Follow",
        "actor": remote.actor_uri(name),
        "object": target,
    }


def rows(app: App, model: Any) -> list[Any]:
    with get_database(app).read() as db:
        return list(db.scalars(select(model).order_by(model.id)))


def counts(app: App) -> dict[str, int]:
    with get_database(app).read() as db:
        return {
            model.__tablename__: db.scalar(select(func.count()).select_from(model)) or 0
            for model in (Follower, Reaction, RemoteActor, Delivery)
        } | {
            "fediverse replies": db.scalar(
                select(func.count(Comment.id)).where(Comment.kind == "fediverse")
            )
            or 0
        }


def deliver_all(app: App) -> list[Any]:
    return run_jobs(app, activitypub.federate_post, activitypub.deliver)


def periodic(app: App) -> int:
    """Run the every-minute job once, as the worker's scheduler would."""
    jobs._WORKER_APP.append(app)
    try:
        return activitypub.federate_due()
    finally:
        jobs._WORKER_APP.remove(app)


def our_key(app: App, uri: str) -> str:
    """Give the public key our actor document at `uri` publishes."""
    client = app.test_client()
    path = uri.removeprefix(BASE_URL)
    document = client.get(path, headers=AS2).json
    return document["publicKey"]["publicKeyPem"]


def check_signed_by_us(app: App, path: str, headers: dict[str, str], body: bytes) -> str:
    """Verify a delivery as the receiving server would; give the signing actor's URI."""
    parsed = httpsig.parse_signature(headers["Signature"])
    actor = parsed.key_id.removesuffix("#main-key")
    httpsig.verify("POST", path, headers, body, our_key(app, actor), now=utcnow())
    return actor


# --- discovery ---------------------------------------------------------------------------


def test_webfinger_finds_the_blog_and_authors(cast: Cast) -> None:
    for resource, actor in (
        ("acct:blog@localhost", f"{BASE_URL}/ap/blog"),
        ("acct:alice@localhost", f"{BASE_URL}/authors/alice"),
        ("acct:ALICE@localhost", f"{BASE_URL}/authors/alice"),
        (f"{BASE_URL}/ap/blog", f"{BASE_URL}/ap/blog"),
        (f"{BASE_URL}/authors/alice", f"{BASE_URL}/authors/alice"),
    ):
        page = cast.anonymous.get("/.well-known/webfinger", query={"resource": resource})
        assert page.status_code == 200, resource
        assert page.headers["Content-Type"].startswith("application/jrd+json")
        assert page.headers["Access-Control-Allow-Origin"] == "*"
        links = {link["rel"]: link for link in page.json["links"]}
        assert links["self"] == {
            "rel": "self",
            "type": "application/activity+json",
            "href": actor,
        }
        assert page.json["subject"].startswith("acct:") and page.json["subject"].endswith(
            "@localhost"
        )


@pytest.mark.parametrize(
    ("resource", "status"),
    [
        ("", 400),
        ("acct:nobody@localhost", 404),
        ("acct:alice@elsewhere.example", 404),
        ("acct:@localhost", 404),
        ("https://elsewhere.example/ap/blog", 404),
        ("x" * 3000, 400),
    ],
)
def test_webfinger_refuses_what_is_not_ours(cast: Cast, resource: str, status: int) -> None:
    page = cast.anonymous.get("/.well-known/webfinger", query={"resource": resource})
    assert page.status_code == status
    assert "error" in page.json


def test_nodeinfo_and_host_meta(cast: Cast) -> None:
    links = cast.anonymous.get("/.well-known/nodeinfo").json["links"]
    assert links == [
        {
            "rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
            "href": f"{BASE_URL}/nodeinfo/2.1",
        }
    ]
    write_post(cast.author, title="Counted")
    info = cast.anonymous.get("/nodeinfo/2.1")
    assert "schema/2.1" in info.headers["Content-Type"]
    document = info.json
    assert document["version"] == "2.1"
    assert document["protocols"] == ["activitypub"]
    assert document["software"]["name"] == "pyproject"
    assert document["usage"]["localPosts"] == 1
    assert document["usage"]["users"]["total"] == 3
    assert document["openRegistrations"] is False
    meta = cast.anonymous.get("/.well-known/host-meta")
    assert meta.headers["Content-Type"].startswith("application/xrd+xml")
    assert f'template="{BASE_URL}/.well-known/webfinger?resource={{uri}}"' in meta.text


# --- actors and objects, in the shapes Mastodon requires ----------------------------------

# https://docs.joinmastodon.org/spec/activitypub/: an actor needs these to be followed.
ACTOR_REQUIRED = (
    "id",
    "type",
    "preferredUsername",
    "inbox",
    "outbox",
    "followers",
    "following",
    "publicKey",
    "name",
    "summary",
    "url",
    "icon",
    "endpoints",
)


def test_blog_and_author_actors_have_what_mastodon_requires(cast: Cast) -> None:
    blog = cast.anonymous.get("/ap/blog", headers=AS2)
    assert blog.status_code == 200
    assert blog.headers["Content-Type"].startswith("application/activity+json")
    author = cast.anonymous.get("/authors/alice", headers=AS2)
    for response, kind, name in ((blog, "Service", "blog"), (author, "Person", "alice")):
        actor = response.json
        assert "https://www.w3.org/ns/activitystreams" in actor["@context"]
        assert "https://w3id.org/security/v1" in actor["@context"]
        for key in ACTOR_REQUIRED:
            assert key in actor and (actor[key] or key == "summary"), key
        assert actor["type"] == kind and actor["preferredUsername"] == name
        assert actor["publicKey"]["id"] == actor["id"] + "#main-key"
        assert actor["publicKey"]["owner"] == actor["id"]
        assert actor["publicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
        assert actor["endpoints"]["sharedInbox"] == f"{BASE_URL}/ap/inbox"
        for collection in ("inbox", "outbox", "followers", "following"):
            assert actor[collection].startswith(BASE_URL + "/ap/")
    assert author.json["id"] == f"{BASE_URL}/authors/alice"
    assert author.json["name"] == "Alice Author"


def test_an_actors_key_is_made_once_and_kept(
    any_db_site: App,  # noqa: F811 (the fixture, imported from test_webmention)
) -> None:
    # Made in a GET: on PostgreSQL a GET reads outside a transaction (#13), and the key's
    # savepoint begins one of its own (db.begin_savepoint).
    cast = make_cast(any_db_site)
    first = cast.anonymous.get("/ap/blog", headers=AS2).json["publicKey"]["publicKeyPem"]
    again = cast.anonymous.get("/ap/blog", headers=AS2).json["publicKey"]["publicKeyPem"]
    author = cast.anonymous.get("/authors/alice", headers=AS2).json["publicKey"]["publicKeyPem"]
    assert first == again != author


def test_browsers_get_html_and_everyone_is_told_it_varies(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Negotiated"))
    for path in (f"/posts/{slug}", "/authors/alice"):
        page = cast.anonymous.get(path, headers={"Accept": "text/html,*/*;q=0.8"})
        assert page.headers["Content-Type"].startswith("text/html")
        assert "Accept" in page.headers["Vary"]
        data = cast.anonymous.get(path, headers=AS2)
        assert data.headers["Content-Type"].startswith("application/activity+json")
        assert "Accept" in data.headers["Vary"]
    blog = cast.anonymous.get("/ap/blog")
    assert blog.status_code == 303 and blog.location == "/"


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        ("application/activity+json", True),
        ('application/ld+json; profile="https://www.w3.org/ns/activitystreams"', True),
        ("application/ld+json", False),
        ("text/html", False),
        ("application/activity+json;q=0.5, text/html", False),
        ("text/html;q=0.5, application/activity+json", True),
        ("application/activity+json;q=0", False),
        ("*/*", False),
    ],
)
def test_which_accept_headers_get_json(accept: str, json_wanted: bool) -> None:
    from pyproject.blog.caching import wants_activity_streams

    assert wants_activity_streams(accept) is json_wanted


def test_the_page_cache_keeps_html_and_json_apart(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Cached both ways"))
    for _ in range(2):  # the second HTML read comes from the page cache
        assert cast.anonymous.get(f"/posts/{slug}").headers["Content-Type"].startswith("text/")
    assert len(cast.app.page_cache) >= 1
    for _ in range(2):
        data = cast.anonymous.get(f"/posts/{slug}", headers=AS2)
        assert data.json["type"] == "Article"
    assert cast.anonymous.get(f"/posts/{slug}").headers["Content-Type"].startswith("text/")


def test_a_post_is_an_article_with_tags_and_images(cast: Cast) -> None:
    slug = slug_of(
        write_post(
            cast.author,
            title="Cats & dogs",
            body="About *pets*.\n\n![A sleeping cat](https://pics.example/cat.png)",
            tags="pets",
        )
    )
    article = cast.anonymous.get(f"/posts/{slug}", headers=AS2).json
    assert article["type"] == "Article"
    assert article["id"].startswith(f"{BASE_URL}/ap/objects/")
    assert article["name"] == "Cats & dogs"
    assert "<em>pets</em>" in article["content"]
    assert article["url"] == f"{BASE_URL}/posts/{slug}"
    assert article["attributedTo"] == f"{BASE_URL}/authors/alice"
    assert article["to"] == ["https://www.w3.org/ns/activitystreams#Public"]
    assert article["cc"] == [
        f"{BASE_URL}/ap/users/alice/followers",
        f"{BASE_URL}/ap/blog/followers",
    ]
    assert article["tag"] == [{"type": "Hashtag", "href": f"{BASE_URL}/tags/pets", "name": "#pets"}]
    assert {"type": "Image", "url": "https://pics.example/cat.png", "name": "A sleeping cat"} in (
        article["attachment"]
    )
    assert article["published"] and article["updated"] and article["summary"]
    by_id = cast.anonymous.get(article["id"].removeprefix(BASE_URL), headers=AS2).json
    assert by_id == article
    browser = cast.anonymous.get(article["id"].removeprefix(BASE_URL))
    assert browser.status_code == 303 and browser.location == f"/posts/{slug}"


def test_a_post_as_a_note_carries_its_title_and_link(tmp_path: Path) -> None:
    app = make_site(tmp_path, FEDERATION_OBJECT_TYPE="Note")
    cast = make_cast(app)
    slug = slug_of(write_post(cast.author, title="Short <form>"))
    note = cast.anonymous.get(f"/posts/{slug}", headers=AS2).json
    assert note["type"] == "Note" and "name" not in note
    assert "<strong>Short &lt;form&gt;</strong>" in note["content"]
    assert f'href="{BASE_URL}/posts/{slug}"' in note["content"]


def test_drafts_are_not_objects(cast: Cast) -> None:
    write_post(cast.author, title="Secret", status="draft")
    with get_database(cast.app).read() as db:
        post_id = db.scalar(select(Post.id))
    assert cast.anonymous.get(f"/ap/objects/{post_id}", headers=AS2).status_code == 404
    assert cast.anonymous.get("/ap/objects/999", headers=AS2).status_code == 404


def test_outbox_is_a_paged_collection_of_creates(cast: Cast) -> None:
    for number in range(23):
        write_post(cast.author if number % 2 else cast.other, title=f"Post {number}")
    outbox = cast.anonymous.get("/ap/blog/outbox").json
    assert outbox["type"] == "OrderedCollection" and outbox["totalItems"] == 23
    first = cast.anonymous.get(outbox["first"].removeprefix(BASE_URL)).json
    assert first["type"] == "OrderedCollectionPage" and first["partOf"] == outbox["id"]
    assert len(first["orderedItems"]) == 20 and "next" in first and "prev" not in first
    create = first["orderedItems"][0]
    assert create["type"] == "Create" and create["object"]["type"] == "Article"
    assert create["actor"] == create["object"]["attributedTo"]
    second = cast.anonymous.get(first["next"].removeprefix(BASE_URL)).json
    assert len(second["orderedItems"]) == 3 and "next" not in second
    alice = cast.anonymous.get("/ap/users/alice/outbox").json
    assert alice["totalItems"] == 11
    assert cast.anonymous.get("/ap/blog/outbox?page=0").status_code == 400
    assert cast.anonymous.get("/ap/users/nobody/outbox").status_code == 404


# --- the inbox: following -----------------------------------------------------------------


def test_follow_is_accepted_and_the_accept_is_signed(cast: Cast, remote: Remote) -> None:
    answer = send(cast, remote, follow(remote))
    assert answer.status_code == 202
    [follower] = rows(cast.app, Follower)
    assert follower.local_actor == "blog" and follower.state == "accepted"
    [actor] = rows(cast.app, RemoteActor)
    assert actor.name == "Carol Remote" and actor.shared_inbox == f"{remote.url}/inbox"
    deliver_all(cast.app)
    [(path, headers, body)] = remote.received
    assert path == "/users/carol/inbox"  # an Accept goes to the follower's own inbox
    accept = json.loads(body)
    assert accept["type"] == "Accept" and accept["actor"] == f"{BASE_URL}/ap/blog"
    assert accept["object"]["type"] == "Follow" and accept["object"]["id"] == follow(remote)["id"]
    assert check_signed_by_us(cast.app, path, headers, body) == f"{BASE_URL}/ap/blog"
    followers = cast.anonymous.get("/ap/blog/followers").json
    assert followers["totalItems"] == 1


def test_following_an_author_through_the_personal_inbox(cast: Cast, remote: Remote) -> None:
    data = follow(remote, f"{BASE_URL}/authors/alice")
    assert send(cast, remote, data, path="/ap/users/alice/inbox").status_code == 202
    with get_database(cast.app).read() as db:
        alice_id = db.scalar(select(User.id).where(User.username == "alice"))
    assert [f.local_actor for f in rows(cast.app, Follower)] == [f"user:{alice_id}"]
    assert cast.anonymous.get("/ap/users/alice/followers").json["totalItems"] == 1


def test_undo_follow_removes_the_follower(cast: Cast, remote: Remote) -> None:
    data = follow(remote)
    send(cast, remote, data)
    undo = {
        "id": f"{remote.actor_uri()}#undo-1",
        "type": "Undo",
        "actor": remote.actor_uri(),
        "object": data,
    }
    assert send(cast, remote, undo).status_code == 202
    assert rows(cast.app, Follower) == []


def test_follows_wait_for_approval_when_the_setting_asks(tmp_path: Path, remote: Remote) -> None:
    app = make_site(tmp_path, FEDERATION_APPROVE_FOLLOWS=True)
    cast = make_cast(app)
    assert cast.anonymous.get("/ap/blog", headers=AS2).json["manuallyApprovesFollowers"] is True
    send(cast, remote, follow(remote))
    [follower] = rows(app, Follower)
    assert follower.state == "pending"
    deliver_all(app)
    assert remote.received == []
    page = cast.admin.get("/admin/federation")
    assert "Carol Remote" in page.text
    form = page.html.select_one(f'form[action="/admin/federation/followers/{follower.id}/approve"]')
    token = form.select_one('input[name="csrf_token"]')["value"]
    approved = cast.admin.post(
        f"/admin/federation/followers/{follower.id}/approve", data={"csrf_token": token}
    )
    assert approved.status_code == 303
    assert rows(app, Follower)[0].state == "accepted"
    deliver_all(app)
    assert [a["type"] for a in remote.activities()] == ["Accept"]


# --- the inbox: every rule of verification ------------------------------------------------


def test_unsigned_requests_are_refused_and_nothing_is_kept(cast: Cast, remote: Remote) -> None:
    before = counts(cast.app)
    answer = cast.anonymous.post(
        "/ap/inbox",
        data=json.dumps(follow(remote)).encode(),
        headers={"Content-Type": "application/activity+json"},
    )
    assert answer.status_code == 401
    assert answer.json["message"].startswith("the request is not signed")
    assert counts(cast.app) == before
    [entry] = rows(cast.app, InboxEntry)
    assert entry.outcome == "bad signature" and entry.status == 401


@pytest.mark.parametrize(
    ("tamper", "outcome"),
    [
        ({"headers": {"Date": "Mon, 01 Jan 2024 00:00:00 GMT"}}, "bad signature"),
        ({"when": "old"}, "bad signature"),
        ({"headers": {"Digest": httpsig.digest_of(b"another body")}}, "bad signature"),
        ({"headers": {"Digest": None}}, "bad signature"),
        ({"keys": "dave's"}, "bad signature"),
        ({"path_signed": "/ap/blog/inbox"}, "bad signature"),
        ({"name": "nobody"}, "unknown key"),
    ],
)
def test_bad_signatures_dates_and_digests_are_refused(
    cast: Cast, remote: Remote, tamper: dict[str, Any], outcome: str
) -> None:
    before = counts(cast.app)
    options: dict[str, Any] = {}
    if "headers" in tamper:
        options["headers"] = tamper["headers"]
    if tamper.get("when") == "old":
        options["when"] = utcnow() - timedelta(hours=13)
    if tamper.get("keys"):
        options["keys"] = remote.keys["dave"]
    if tamper.get("name"):
        remote.keys["nobody"] = httpsig.new_key_pair()
        options["keys"] = remote.keys.pop("nobody")
    data = follow(remote)
    if "path_signed" in tamper:
        raw = json.dumps(data).encode()
        signed = httpsig.sign(
            "POST",
            BASE_URL + tamper["path_signed"],
            body=raw,
            key_id=f"{remote.actor_uri()}#main-key",
            private_pem=remote.keys["carol"][0],
            now=utcnow(),
        )
        answer = cast.anonymous.post("/ap/inbox", data=raw, headers=signed)
    elif tamper.get("name"):
        answer = send(
            cast, remote, data | {"actor": remote.actor_uri("nobody")}, name="nobody", **options
        )
    else:
        answer = send(cast, remote, data, **options)
    assert answer.status_code == 401
    assert counts(cast.app) == before
    assert rows(cast.app, InboxEntry)[-1].outcome == outcome


def test_the_actor_must_be_the_keys_owner(cast: Cast, remote: Remote) -> None:
    data = follow(remote) | {"actor": remote.actor_uri("dave")}
    answer = send(cast, remote, data, name="carol")  # signed by carol, claims to be dave
    assert answer.status_code == 401
    assert rows(cast.app, Follower) == []
    assert rows(cast.app, InboxEntry)[-1].outcome == "wrong actor"


def test_a_rotated_key_is_fetched_again_once(cast: Cast, remote: Remote) -> None:
    send(cast, remote, follow(remote))
    old_pem = rows(cast.app, RemoteActor)[0].public_key_pem
    remote.keys["carol"] = httpsig.new_key_pair()  # the server rotates carol's key
    like = {"id": f"{remote.actor_uri()}#likes/1", "type": "Like", "actor": remote.actor_uri()}
    slug = slug_of(write_post(cast.author, title="Liked"))
    answer = send(cast, remote, like | {"object": f"{BASE_URL}/posts/{slug}"})
    assert answer.status_code == 202
    assert rows(cast.app, RemoteActor)[0].public_key_pem != old_pem
    assert len(rows(cast.app, Reaction)) == 1
    assert [path for path, _ in remote.fetches] == ["/users/carol", "/users/carol"]
    for path, headers in remote.fetches:  # signed by the blog (Mastodon's authorized fetch)
        parsed = httpsig.parse_signature(headers["Signature"])
        assert parsed.key_id == f"{BASE_URL}/ap/blog#main-key"
        httpsig.verify(
            "GET", path, headers, None, our_key(cast.app, f"{BASE_URL}/ap/blog"), now=utcnow()
        )


def test_oversize_bodies_are_refused_with_413(cast: Cast, remote: Remote) -> None:
    data = follow(remote) | {"padding": "x" * 1_000_001}
    answer = send(cast, remote, data)
    assert answer.status_code == 413
    assert rows(cast.app, Follower) == []
    assert rows(cast.app, InboxEntry) == []  # not even a log line


def test_a_chunked_body_is_read_no_further_than_the_limit(cast: Cast, remote: Remote) -> None:
    class Endless:
        read_bytes = 0

        def read(self, size: int = -1) -> bytes:
            self.read_bytes += size
            return b"x" * size

    body = Endless()
    environ = cast.anonymous.build_environ("POST", "/ap/inbox")
    environ.pop("CONTENT_LENGTH", None)
    environ.update({"wsgi.input": body, "wsgi.input_terminated": True})
    answer = cast.anonymous.run(environ)
    assert answer.status_code == 413
    assert body.read_bytes <= 1_000_000 + 64 * 1024
    assert rows(cast.app, InboxEntry) == []


HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def test_hostile_remote_names_and_notes_run_no_script(cast: Cast, remote: Remote) -> None:
    remote.names["carol"] = HOSTILE
    slug = slug_of(write_post(cast.author, title="Target"))
    send(cast, remote, follow(remote))
    like = {
        "id": f"{remote.actor_uri()}#like",
        "type": "Like",
        "actor": remote.actor_uri(),
        "object": f"{BASE_URL}/posts/{slug}",
    }
    send(cast, remote, like)
    send(cast, remote, reply(remote, f"{BASE_URL}/posts/{slug}", f"<p>{HOSTILE}</p>"))
    for client, path in (
        (cast.admin, "/admin/federation"),
        (cast.anonymous, f"/posts/{slug}"),
        (cast.author, "/comments"),
    ):
        page = client.get(path)
        assert page.status_code == 200
        assert "alert(1)" in page.text  # shown, as text
        assert not [s for s in page.html.select("script") if "alert" in s.text], path
        assert not page.html.select("[onerror]"), path


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"type": "Follow"}', b'{"actor": "x", "type": 3}', b"\xff"]
)
def test_malformed_activities_are_400(cast: Cast, remote: Remote, body: bytes) -> None:
    answer = send(cast, remote, {}, body=body)
    assert answer.status_code == 400
    assert counts(cast.app)["federation_remote_actors"] == 0
    assert rows(cast.app, InboxEntry) == []


def test_blocked_domains_and_actors_are_refused_before_anything(cast: Cast, remote: Remote) -> None:
    token = cast.admin.get("/admin/federation").html.select_one(
        '#block-form input[name="csrf_token"]'
    )["value"]
    blocked = cast.admin.post(
        "/admin/federation/blocks",
        data={"csrf_token": token, "kind": "domain", "value": "127.0.0.1"},
    )
    assert blocked.status_code == 303
    answer = send(cast, remote, follow(remote))
    assert answer.status_code == 403
    assert counts(cast.app)["federation_remote_actors"] == 0  # no key was even fetched
    assert rows(cast.app, InboxEntry)[-1].outcome == "blocked"


def test_an_activity_received_twice_is_acted_on_once(cast: Cast, remote: Remote) -> None:
    slug = slug_of(write_post(cast.author, title="Once"))
    like = {
        "id": f"{remote.actor_uri()}#likes/1",
        "type": "Like",
        "actor": remote.actor_uri(),
        "object": f"{BASE_URL}/posts/{slug}",
    }
    assert send(cast, remote, like).status_code == 202
    assert send(cast, remote, like).status_code == 202
    assert [e.outcome for e in rows(cast.app, InboxEntry)] == ["accepted", "repeated"]


def test_other_activities_are_202_and_ignored(cast: Cast, remote: Remote) -> None:
    move = {"id": f"{remote.actor_uri()}#m", "type": "Move", "actor": remote.actor_uri()}
    assert send(cast, remote, move).status_code == 202
    assert rows(cast.app, InboxEntry)[-1].outcome == "ignored"
    assert counts(cast.app)["federation_followers"] == 0


# --- the inbox: likes, announces, replies, deletes, updates -------------------------------


def test_likes_and_announces_are_counted_and_listed_by_name(cast: Cast, remote: Remote) -> None:
    slug = slug_of(write_post(cast.author, title="Popular"))
    with get_database(cast.app).read() as db:
        post_id = db.scalar(select(Post.id))
    for kind, name in (("Like", "carol"), ("Announce", "carol"), ("Like", "dave")):
        activity = {
            "id": f"{remote.actor_uri(name)}#{kind}",
            "type": kind,
            "actor": remote.actor_uri(name),
            "object": f"{BASE_URL}/ap/objects/{post_id}",
        }
        assert send(cast, remote, activity, name=name).status_code == 202
    page = cast.anonymous.get(f"/posts/{slug}")
    section = page.html.select_one("#fediverse")
    assert "Liked by 2" in section.text and "Boosted by 1" in section.text
    assert [a.text for a in section.select("a.reaction-like")] == ["Carol Remote", "Dave Remote"]
    undo = {
        "id": f"{remote.actor_uri()}#undo",
        "type": "Undo",
        "actor": remote.actor_uri(),
        "object": {
            "id": f"{remote.actor_uri()}#Like",
            "type": "Like",
            "actor": remote.actor_uri(),
            "object": f"{BASE_URL}/ap/objects/{post_id}",
        },
    }
    assert send(cast, remote, undo).status_code == 202
    section = cast.anonymous.get(f"/posts/{slug}").html.select_one("#fediverse")
    assert "Liked by 1" in section.text


def reply(remote: Remote, post_url: str, text: str, number: int = 1) -> dict[str, Any]:
    note = {
        "id": f"{remote.url}/users/carol/statuses/{number}",
        "type": "Note",
        "attributedTo": remote.actor_uri(),
        "inReplyTo": post_url,
        "content": text,
        "published": "2026-12-04T12:00:00Z",
    }
    return {
        "id": f"{note['id']}/activity",
        "type": "Create",
        "actor": remote.actor_uri(),
        "object": note,
    }


def test_a_reply_joins_the_moderation_queue_and_a_delete_removes_it(
    cast: Cast, remote: Remote
) -> None:
    slug = slug_of(write_post(cast.author, title="Answer me"))
    create = reply(remote, f"{BASE_URL}/posts/{slug}", "<p>Nice <script>x()</script>post!</p>")
    assert send(cast, remote, create).status_code == 202
    [comment] = rows(cast.app, Comment)
    assert comment.state == "held" and comment.source_url == create["object"]["id"]
    assert comment.kind == "fediverse"  # marked as such in the queue and on the page
    assert "Carol Remote" in comment.name and "@carol@127.0.0.1" in comment.name
    assert "<script" not in comment.body_html and "Nice" in comment.body_md
    queue = cast.author.get("/comments")
    assert "Nice" in queue.text and "(a reply from the fediverse)" in queue.text
    delete = {
        "id": f"{create['object']['id']}#delete",
        "type": "Delete",
        "actor": remote.actor_uri(),
        "object": {"id": create["object"]["id"], "type": "Tombstone"},
    }
    assert send(cast, remote, delete).status_code == 202
    assert rows(cast.app, Comment) == []


def test_replies_to_others_and_notes_of_other_servers_are_not_kept(
    cast: Cast, remote: Remote
) -> None:
    slug = slug_of(write_post(cast.author, title="Answer me"))
    elsewhere = reply(remote, "https://elsewhere.example/post/1", "Hi")
    assert send(cast, remote, elsewhere).status_code == 202
    forged = reply(remote, f"{BASE_URL}/posts/{slug}", "Forged", 2)
    forged["object"]["id"] = "https://elsewhere.example/statuses/2"
    assert send(cast, remote, forged).status_code == 401
    assert rows(cast.app, Comment) == []


def test_an_actor_update_refreshes_its_name_and_key(cast: Cast, remote: Remote) -> None:
    send(cast, remote, follow(remote))
    remote.names["carol"] = "Carol Renamed"
    update_ = {
        "id": f"{remote.actor_uri()}#update",
        "type": "Update",
        "actor": remote.actor_uri(),
        "object": remote.document("carol"),
    }
    assert send(cast, remote, update_).status_code == 202
    assert rows(cast.app, RemoteActor)[0].name == "Carol Renamed"


# --- delivery ------------------------------------------------------------------------------


def deliveries(remote: Remote, kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, json.loads(body))
        for path, _, body in remote.received
        if json.loads(body)["type"] == kind
    ]


def test_publish_edit_trash_restore_tell_followers_once_per_shared_inbox(
    cast: Cast, remote: Remote
) -> None:
    send(cast, remote, follow(remote), name="carol")
    send(cast, remote, follow(remote, name="dave"), name="dave")
    send(cast, remote, follow(remote, f"{BASE_URL}/authors/alice"), name="dave")
    deliver_all(cast.app)
    remote.received.clear()

    slug = slug_of(write_post(cast.author, title="Hello fediverse", body="First words."))
    deliver_all(cast.app)
    [(path, create)] = deliveries(remote, "Create")  # two followers, one shared inbox
    assert path == "/inbox"
    assert create["actor"] == f"{BASE_URL}/authors/alice"
    assert create["object"]["name"] == "Hello fediverse"
    [(_, announce)] = deliveries(remote, "Announce")
    assert announce["actor"] == f"{BASE_URL}/ap/blog"
    assert announce["object"] == create["object"]["id"]
    for path, headers, body in remote.received:
        check_signed_by_us(cast.app, path, headers, body)
    followers = rows(cast.app, Follower)
    assert all(f.delivered == 1 for f in followers)

    remote.received.clear()
    deliver_all(cast.app)
    assert remote.received == []  # nothing told twice

    edit_post(cast.author, slug, body="First words, edited.")
    deliver_all(cast.app)
    [(_, updated)] = deliveries(remote, "Update")
    assert "edited" in updated["object"]["content"]
    assert deliveries(remote, "Create") == []

    remote.received.clear()
    delete_post(cast.author, slug)
    deliver_all(cast.app)
    [(_, deleted)] = deliveries(remote, "Delete")
    assert deleted["object"]["type"] == "Tombstone"
    assert deleted["object"]["id"] == create["object"]["id"]
    gone = cast.anonymous.get(create["object"]["id"].removeprefix(BASE_URL), headers=AS2)
    assert gone.status_code == 410 and gone.json["type"] == "Tombstone"

    remote.received.clear()
    token = cast.author.get("/trash").html.select_one(
        f'form[action="/posts/{slug}/restore"] input[name="csrf_token"]'
    )["value"]
    assert cast.author.post(f"/posts/{slug}/restore", data={"csrf_token": token}).status_code == 303
    deliver_all(cast.app)
    [(_, again)] = deliveries(remote, "Create")
    assert again["id"] != create["id"] and again["object"]["id"] == create["object"]["id"]


def test_scheduled_posts_are_delivered_when_they_go_live(cast: Cast, remote: Remote) -> None:
    send(cast, remote, follow(remote))
    deliver_all(cast.app)
    remote.received.clear()
    write_post(cast.author, title="Later", publish_at=local_input(utcnow() + timedelta(hours=2)))
    deliver_all(cast.app)
    assert deliveries(remote, "Create") == []
    now = utcnow()
    set_clock(lambda: now + timedelta(hours=3))
    assert periodic(cast.app) >= 1
    deliver_all(cast.app)
    assert [a["object"]["name"] for _, a in deliveries(remote, "Create")] == ["Later"]


def test_failed_deliveries_back_off_give_up_after_48_hours_and_pause_after_a_week(
    cast: Cast, remote: Remote
) -> None:
    send(cast, remote, follow(remote))
    deliver_all(cast.app)
    remote.inbox_status = 503
    write_post(cast.author, title="Nobody home")
    deliver_all(cast.app)
    waiting = [d for d in rows(cast.app, Delivery) if d.state == "waiting"]
    assert {d.kind for d in waiting} == {"Create", "Announce"}
    assert all(d.attempts == 1 and d.next_attempt_at > utcnow() for d in waiting)
    assert "503" in waiting[0].last_error

    start = utcnow()
    tries = []
    for hours in (1, 3, 8, 20, 47.9, 49):
        set_clock(lambda hours=hours: start + timedelta(hours=hours))
        periodic(cast.app)
        deliver_all(cast.app)
        tries.append(next(d for d in rows(cast.app, Delivery) if d.kind == "Create").attempts)
    assert tries == sorted(tries) and tries[-1] > 2  # retried, ever more seldom
    create = next(d for d in rows(cast.app, Delivery) if d.kind == "Create")
    assert create.state == "failed"
    [follower] = rows(cast.app, Follower)
    assert follower.failed == 1 and follower.delivered == 0

    # A week of failures pauses the domain; the admin resumes it.
    with get_database(cast.app).write() as db:
        db.execute(
            update(FederationDomain).values(failing_since=start - timedelta(days=6, hours=23))
        )
    set_clock(lambda: start + timedelta(hours=50))
    write_post(cast.author, title="Still nobody")
    deliver_all(cast.app)
    [domain] = rows_domain(cast.app)
    assert domain.paused_at is not None and "503" in domain.last_error
    page = cast.admin.get("/admin/federation")
    assert "127.0.0.1" in page.html.select_one(".paused-table").text
    write_post(cast.author, title="Held back")
    deliver_all(cast.app)
    assert any(d.state == "paused" for d in rows(cast.app, Delivery))
    remote.inbox_status = 202
    token = page.html.select_one(
        'form[action="/admin/federation/domains/resume"] input[name="csrf_token"]'
    )["value"]
    resumed = cast.admin.post(
        "/admin/federation/domains/resume", data={"csrf_token": token, "domain": "127.0.0.1"}
    )
    assert resumed.status_code == 303
    periodic(cast.app)
    deliver_all(cast.app)
    assert "Held back" in [a["object"].get("name") for _, a in deliveries(remote, "Create")]


def rows_domain(app: App) -> list[FederationDomain]:
    with get_database(app).read() as db:
        return list(db.scalars(select(FederationDomain)))


# --- /admin/federation ---------------------------------------------------------------------


def test_admin_page_lists_followers_blocks_and_the_inbox_log(cast: Cast, remote: Remote) -> None:
    send(cast, remote, follow(remote))
    cast.anonymous.post(
        "/ap/inbox", data=json.dumps(follow(remote, name="dave")).encode(), headers={}
    )
    page = cast.admin.get("/admin/federation")
    assert page.status_code == 200
    followers = page.html.select_one(".followers-table")
    assert "Carol Remote" in followers.text and "@carol@127.0.0.1" in followers.text
    log = page.html.select_one(".inbox-table").text
    assert "Follow" in log and "accepted" in log and "bad signature" in log


@pytest.mark.parametrize(
    ("kind", "value", "error"),
    [
        ("domain", "", "domain name"),
        ("domain", "not a domain!", "domain name"),
        ("actor", "javascript:alert(1)", "actor's address"),
        ("planet", "x", "Choose"),
    ],
)
def test_a_bad_block_is_shown_again_with_what_was_typed(
    cast: Cast, kind: str, value: str, error: str
) -> None:
    token = cast.admin.get("/admin/federation").html.select_one(
        '#block-form input[name="csrf_token"]'
    )["value"]
    page = cast.admin.post(
        "/admin/federation/blocks", data={"csrf_token": token, "kind": kind, "value": value}
    )
    assert page.status_code == 422
    assert error in page.html.select_one("#e-value").text
    assert page.html.select_one("#f-value")["value"] == value


def test_blocking_removes_followers_and_unblocking_lets_them_back(
    cast: Cast, remote: Remote
) -> None:
    send(cast, remote, follow(remote))
    page = cast.admin.get("/admin/federation")
    token = page.html.select_one('#block-form input[name="csrf_token"]')["value"]
    actor = remote.actor_uri()
    cast.admin.post(
        "/admin/federation/blocks", data={"csrf_token": token, "kind": "actor", "value": actor}
    )
    assert rows(cast.app, Follower) == []
    page = cast.admin.get("/admin/federation")
    assert actor in page.html.select_one(".blocks-table").text
    assert send(cast, remote, follow(remote)).status_code == 403
    form = page.html.select_one(".blocks-table form")
    cast.admin.post(form["action"], data={"csrf_token": token})
    assert send(cast, remote, follow(remote) | {"id": actor + "#again"}).status_code == 202


@pytest.mark.parametrize("who", ["anonymous", "author", "other"])
def test_only_admins_reach_the_federation_page(cast: Cast, who: str) -> None:
    page = cast.client(who).get("/admin/federation")
    assert page.status_code in (302, 303, 403)
    assert "Follow requests" not in page.text


# --- PostgreSQL -----------------------------------------------------------------------------


def test_following_delivery_and_replies_on_any_database(
    any_db_site: App,  # noqa: F811 (the fixture, imported from test_webmention)
    remote: Remote,
) -> None:
    cast = make_cast(any_db_site)
    assert send(cast, remote, follow(remote)).status_code == 202
    assert send(cast, remote, follow(remote, name="dave"), name="dave").status_code == 202
    slug = slug_of(write_post(cast.author, title="Everywhere"))
    deliver_all(cast.app)
    assert [a["type"] for a in remote.activities()].count("Create") == 1
    assert all(f.delivered == 1 for f in rows(cast.app, Follower))
    create = reply(remote, f"{BASE_URL}/posts/{slug}", "From afar")
    assert send(cast, remote, create).status_code == 202
    assert send(cast, remote, create).status_code == 202
    assert [c.state for c in rows(cast.app, Comment)] == ["held"]
    remote.inbox_status = 500
    edit_post(cast.author, slug, body="Changed.")
    deliver_all(cast.app)
    remote.received.clear()  # the refused try
    assert periodic(cast.app) == 0  # the retry is not due yet
    start = utcnow()
    set_clock(lambda: start + timedelta(minutes=5))
    remote.inbox_status = 202
    assert periodic(cast.app) == 1
    deliver_all(cast.app)
    assert [a["type"] for a in remote.activities()].count("Update") == 1
    assert cast.admin.get("/admin/federation").status_code == 200


def test_two_workers_telling_one_post_at_once_tell_it_once(any_db_site: App) -> None:  # noqa: F811
    """Workers on two hosts may run federate_post for one post together (the multi-host test
    once saw the second insert the same federation_posts row): the second waits for the
    first's transaction, then finds the post told and tells nothing."""
    cast = make_cast(any_db_site)
    slug = slug_of(write_post(cast.author, title="Told once"))
    database = get_database(cast.app)
    with database.read() as db:
        post_id = db.scalar(select(Post.id).where(Post.slug == slug))
    told: list[str] = []

    def tell_again() -> None:
        with database.write() as db:
            told.append(activitypub.tell_followers(cast.app, db, post_id))

    first = database.session(write=True)
    try:
        assert activitypub.tell_followers(cast.app, first, post_id) == "Create"
        first.flush()
        second = threading.Thread(target=tell_again)
        second.start()
        second.join(0.5)
        assert second.is_alive(), f"the second teller did not wait: {told}"
        first.commit()
    finally:
        first.close()
    second.join(20)
    assert told == ["nothing"]
    with database.read() as db:
        kept = db.execute(select(FederatedPost.post_id, FederatedPost.creates)).all()
    assert [tuple(row) for row in kept] == [(post_id, 1)]
