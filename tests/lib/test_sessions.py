"""Tests for pyproject/lib/sessions.py: server-side sessions behind an HttpOnly cookie."""

from __future__ import annotations

import secrets
import time

import pytest

from pyproject.lib.sessions import MemoryStore, Session, session_key


@pytest.fixture
def app(make_app):
    """Give an App whose views read, write, rotate and clear the session."""
    app = make_app()

    def write(request):
        request.session["name"] = request.args.get("name", "ada")
        return "saved"

    def read(request):
        return request.session.get("name", "anonymous")

    def rotate(request):
        request.session.rotate()
        return "rotated"

    def logout(request):
        request.session.clear()
        return "signed out"

    def cached_page(request):
        return (request.session.get("name", "anonymous"), 200, {"Cache-Control": "public"})

    app.add_route("/write", write)
    app.add_route("/read", read)
    app.add_route("/rotate", rotate)
    app.add_route("/logout", logout)
    app.add_route("/cached", cached_page)
    app.add_route("/untouched", lambda request: "no session here", endpoint="untouched")
    return app


def cookie_attributes(header: str) -> tuple[str, str, set[str]]:
    """Give the name, value and attributes (as written, lower-cased) of a Set-Cookie value."""
    pair, *attributes = header.split(";")
    name, _, value = pair.strip().partition("=")
    return name, value, {a.strip().lower() for a in attributes}


def signed_in(app, **kwargs):
    """Give a client whose session holds a name, and its session id."""
    client = app.test_client(validate=True, **kwargs)
    client.get("/write?name=ada")
    (sid,) = client.cookies.values()
    return client, sid


# --- the cookie ------------------------------------------------------------------------


def test_session_cookie_is_httponly_samesite_lax_path_root(app):
    response = app.test_client(validate=True).get("/write")

    (header,) = response.headers.getlist("Set-Cookie")
    name, value, attributes = cookie_attributes(header)
    assert name == "session"
    assert len(value) >= 43
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    assert "secure" not in attributes
    assert not any(a.startswith("domain") for a in attributes)


def test_session_cookie_over_https_is_secure_and_host_prefixed(app):
    response = app.test_client(validate=True, base_url="https://localhost").get("/write")

    (header,) = response.headers.getlist("Set-Cookie")
    name, _, attributes = cookie_attributes(header)
    assert name == "__Host-session"
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)


def test_https_session_is_not_read_from_the_unprefixed_cookie(app):
    _, sid = signed_in(app)
    client = app.test_client(validate=True, base_url="https://localhost")

    response = client.get("/read", headers={"Cookie": f"session={sid}"})

    assert response.data == b"anonymous"


@pytest.mark.parametrize("path", ["/read", "/untouched", "/missing", "/logout"])
def test_no_cookie_is_set_for_a_visitor_whose_session_stays_empty(app, path):
    client = app.test_client(validate=True)

    response = client.get(path)

    assert "Set-Cookie" not in response.headers
    assert client.cookies == {}
    assert app.session_interface.store.keys() == []


def test_session_data_persists_across_requests(app):
    client = app.test_client(validate=True)
    client.get("/write?name=grace")

    assert client.get("/read").data == b"grace"
    assert client.get("/read").data == b"grace"


def test_an_unchanged_session_is_not_written_again_on_every_request(app):
    client, _ = signed_in(app)

    response = client.get("/read")

    assert "Set-Cookie" not in response.headers


def test_two_visitors_do_not_share_a_session(app):
    ada, _ = signed_in(app)
    other = app.test_client(validate=True)

    assert other.get("/read").data == b"anonymous"
    assert ada.get("/read").data == b"ada"


# --- rotate and clear ------------------------------------------------------------------


def test_rotate_issues_a_new_id_for_the_same_data(app):
    client, old_sid = signed_in(app)

    client.get("/rotate")

    new_sid = client.cookies["session"]
    assert new_sid != old_sid
    assert client.get("/read").data == b"ada"


def test_after_rotate_the_old_id_no_longer_loads(app):
    client, old_sid = signed_in(app)
    client.get("/rotate")
    attacker = app.test_client(validate=True)

    response = attacker.get("/read", headers={"Cookie": f"session={old_sid}"})

    assert response.data == b"anonymous"
    assert app.session_interface.store.expires_at(session_key(old_sid)) is None  # deleted


def test_rotate_of_an_anonymous_session_gives_a_fresh_id(app):
    client = app.test_client(validate=True)
    planted = secrets.token_urlsafe(32)
    client.cookies["session"] = planted

    client.get("/write")
    client.get("/rotate")

    assert client.cookies["session"] != planted


def test_logout_deletes_the_cookie(app):
    client, _ = signed_in(app)

    response = client.get("/logout")

    (header,) = response.headers.getlist("Set-Cookie")
    name, value, attributes = cookie_attributes(header)
    assert (name, value) == ("session", "")
    assert "max-age=0" in attributes
    assert client.cookies == {}
    assert client.get("/read").data == b"anonymous"


def test_after_logout_the_old_cookie_is_anonymous_even_if_replayed(app):
    client, old_sid = signed_in(app)
    client.get("/logout")

    replayed = app.test_client(validate=True)
    response = replayed.get("/read", headers={"Cookie": f"session={old_sid}"})

    assert response.data == b"anonymous"
    assert app.session_interface.store.keys() == []


# --- hostile cookies -------------------------------------------------------------------


def hostile_cookies(sid: str) -> dict[str, str]:
    other = secrets.token_urlsafe(32)
    flipped = sid[:-1] + ("A" if sid[-1] != "A" else "B")
    return {
        "tampered": f"session={flipped}",
        "truncated": f"session={sid[:-1]}",
        "extended": f"session={sid}A",
        "unknown": f"session={other}",
        "empty": "session=",
        # Non-ASCII as a WSGI server hands it over: the UTF-8 bytes as latin-1 text.
        "non-ascii": f"session={sid[:-1]}é".encode().decode("latin-1"),
        "latin-1-byte": f"session={sid[:-1]}\xe9",
        "quoted": f'session="{sid[:-1]}"',
        "spaces": f"session={sid[:20]} {sid[21:]}",
        "control": f"session={sid[:-1]}\x01",
        "path-chars": "session=../../etc/passwd",
        "huge": "session=" + "A" * 8000,
        "no-equals": f"session{sid}",
        "duplicated-unknown-first": f"session={other}; session={sid}",
        "duplicated-live-first": f"session={sid}; session={other}",
        "duplicated-same": f"session={sid}; session={sid}",
    }


@pytest.mark.parametrize(
    "kind",
    list(hostile_cookies(secrets.token_urlsafe(32))),
)
def test_hostile_session_cookies_are_anonymous_never_a_500(app, kind):
    _, sid = signed_in(app)
    cookie = hostile_cookies(sid)[kind]
    client = app.test_client(validate=True)

    response = client.get("/read", headers={"Cookie": cookie})

    assert response.status_code == 200
    assert response.data == b"anonymous"


@pytest.mark.parametrize("kind", ["tampered", "unknown", "non-ascii", "duplicated-live-first"])
def test_writing_with_a_hostile_cookie_starts_a_new_session(app, kind):
    _, sid = signed_in(app)
    client = app.test_client(validate=True)

    response = client.get("/write?name=mallory", headers={"Cookie": hostile_cookies(sid)[kind]})

    _, new_sid, _ = cookie_attributes(response.headers["Set-Cookie"])
    assert new_sid != sid
    assert new_sid not in hostile_cookies(sid)[kind]
    victim = app.test_client(validate=True)
    assert victim.get("/read", headers={"Cookie": f"session={sid}"}).data == b"ada"


# --- caching ---------------------------------------------------------------------------


def test_a_response_that_used_the_clients_session_varies_on_cookie_and_is_private(app):
    client, _ = signed_in(app)

    response = client.get("/read")

    assert "cookie" in response.headers["Vary"].lower()
    assert "private" in response.headers["Cache-Control"]


def test_a_session_page_marked_public_by_its_view_becomes_private(app):
    client, _ = signed_in(app)

    response = client.get("/cached")

    assert response.data == b"ada"
    assert "public" not in response.headers["Cache-Control"]
    assert "private" in response.headers["Cache-Control"]


def test_the_response_that_starts_a_session_is_private(app):
    response = app.test_client(validate=True).get("/write")

    assert "cookie" in response.headers["Vary"].lower()
    assert "private" in response.headers["Cache-Control"]


def test_a_page_that_never_touched_the_session_does_not_vary_on_cookie(app):
    client, _ = signed_in(app)

    response = client.get("/untouched")

    assert "Vary" not in response.headers
    assert "Cache-Control" not in response.headers


# --- the store -------------------------------------------------------------------------


def test_the_store_keeps_a_hash_of_the_id_never_the_id(app):
    _, sid = signed_in(app)

    store = app.session_interface.store
    (key,) = store.keys()
    assert key == session_key(sid)
    assert sid not in key
    assert sid not in repr(store.load(key))


def test_the_cookie_lasts_as_long_as_the_store_keeps_the_session(make_app):
    app = make_app(session_max_age=60)
    app.add_route("/write", lambda request: request.session.update(n=1) or "ok", endpoint="w")
    before = time.time()

    response = app.test_client(validate=True).get("/write")

    _, sid, attributes = cookie_attributes(response.headers["Set-Cookie"])
    assert "max-age=60" in attributes
    expires_at = app.session_interface.store.expires_at(session_key(sid))
    assert before + 60 <= expires_at <= time.time() + 60


def expire(store: MemoryStore, sid: str) -> None:
    """Make the stored session of `sid` one second past its expiry."""
    key = session_key(sid)
    store.save(key, store.load(key), time.time() - 1)


def test_an_expired_session_is_anonymous(app):
    client, sid = signed_in(app)
    expire(app.session_interface.store, sid)

    response = client.get("/read")

    assert response.data == b"anonymous"


def test_an_expired_session_cookie_is_deleted_when_the_session_is_read(app):
    client, sid = signed_in(app)
    expire(app.session_interface.store, sid)

    response = client.get("/read")

    _, value, attributes = cookie_attributes(response.headers["Set-Cookie"])
    assert value == ""
    assert "max-age=0" in attributes


def test_the_memory_store_lists_its_keys_and_when_each_expires():
    store = MemoryStore()
    store.save("a", {"n": 1}, 100.0)
    store.save("b", {"n": 2}, 200.0)
    store.delete("b")

    assert store.keys() == ["a"]
    assert store.expires_at("a") == 100.0
    assert store.expires_at("b") is None
    assert store.load("a") is None  # expired long ago, though still listed


# --- what a Session offers the interface -----------------------------------------------


def stored_session(data: dict) -> tuple[MemoryStore, str]:
    """Give a store holding `data` under a fresh, live session id, and that id."""
    store, sid = MemoryStore(), secrets.token_urlsafe(32)
    store.save(session_key(sid), data, time.time() + 60)
    return store, sid


def test_incoming_sid_is_the_well_formed_id_the_cookie_carried_live_or_not():
    store, sid = stored_session({"name": "ada"})
    unknown = secrets.token_urlsafe(32)

    assert Session(store, sid).incoming_sid == sid
    assert Session(store, unknown).incoming_sid == unknown
    assert Session(store, None).incoming_sid is None


@pytest.mark.parametrize("sid", ["", "short", "A" * 44, "A" * 42 + "é", "A" * 42 + ";"])
def test_incoming_sid_of_a_malformed_cookie_is_none(sid):
    assert Session(MemoryStore(), sid).incoming_sid is None


def test_incoming_sid_is_read_only_and_outlives_rotate():
    store, sid = stored_session({"name": "ada"})
    session = Session(store, sid)

    session.rotate()

    assert session.incoming_sid == sid
    assert session.sid is None
    with pytest.raises(AttributeError):
        session.incoming_sid = secrets.token_urlsafe(32)


def test_snapshot_gives_the_stored_data_loading_it_first():
    store, sid = stored_session({"name": "ada"})
    session = Session(store, sid)

    assert session.snapshot() == {"name": "ada"}
    assert session.accessed
    assert session.sid == sid


def test_snapshot_is_a_copy_that_does_not_change_the_session():
    session = Session(MemoryStore(), None)
    session["name"] = "ada"

    snapshot = session.snapshot()
    snapshot["name"] = "mallory"
    snapshot["extra"] = 1

    assert dict(session) == {"name": "ada"}


def test_pop_stale_sids_gives_the_ids_rotated_away_from_once():
    store, sid = stored_session({"name": "ada"})
    session = Session(store, sid)
    session.rotate()

    assert session.pop_stale_sids() == [sid]
    assert session.pop_stale_sids() == []


def test_clear_leaves_the_old_id_stale_too():
    store, sid = stored_session({"name": "ada"})
    session = Session(store, sid)
    session.clear()

    assert session.pop_stale_sids() == [sid]
    assert session.snapshot() == {}


@pytest.mark.parametrize("kind", ["none", "unknown"])
def test_rotating_a_session_without_a_live_id_leaves_nothing_stale(kind):
    sid = None if kind == "none" else secrets.token_urlsafe(32)
    session = Session(MemoryStore(), sid)
    session["name"] = "ada"

    session.rotate()

    assert session.pop_stale_sids() == []
