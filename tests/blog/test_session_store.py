"""The sessions table as the session store: outside a request on a session of its own,
inside one on the request's own ORM session (one connection, closed in teardown).

On a real SQLite file, and on PostgreSQL where one is reachable.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from blog.conftest import ADMIN, login, signup_admin
from pyproject.blog.db import get_database, get_db
from pyproject.blog.models import SessionRecord, Tag, User, utcnow
from pyproject.blog.session_store import DatabaseSessionStore
from pyproject.lib import App, Request

HOUR = 3600


def store_of(app: App) -> DatabaseSessionStore:
    store = app.session_interface.store
    assert isinstance(store, DatabaseSessionStore)
    return store


def add_user(app: App, username: str) -> int:
    with get_database(app).write() as db:
        user = User(username=username, email=f"{username}@example.com", password_hash="x")
        db.add(user)
        db.flush()
        return user.id


def rows(app: App) -> dict[str, dict[str, Any]]:
    """Give every stored session as key -> its columns, read on a connection of its own."""
    with get_database(app).read() as db:
        return {
            record.key: {"data": record.data, "user_id": record.user_id}
            for record in db.scalars(select(SessionRecord))
        }


# --- outside a request (commands, tests) ------------------------------------------------


def test_saved_data_loads_back(any_db_app: App) -> None:
    store = store_of(any_db_app)
    store.save("k1", {"user_id": None, "theme": "dark"}, time.time() + HOUR)
    assert store.load("k1") == {"user_id": None, "theme": "dark"}
    store.save("k1", {"theme": "light"}, time.time() + HOUR)  # saved again: replaced
    assert store.load("k1") == {"theme": "light"}
    assert store.load("unknown") is None


def test_expired_or_unreadable_data_loads_as_nothing(any_db_app: App) -> None:
    store = store_of(any_db_app)
    store.save("old", {"a": 1}, time.time() - 1)
    assert store.load("old") is None
    with get_database(any_db_app).write() as db:
        expires = utcnow() + timedelta(hours=1)
        db.add(SessionRecord(key="broken", data="{not json", expires_at=expires))
        db.add(SessionRecord(key="list", data="[1, 2]", expires_at=expires))
    assert store.load("broken") is None
    assert store.load("list") is None


def test_delete_forgets_one_session(any_db_app: App) -> None:
    store = store_of(any_db_app)
    store.save("gone", {"a": 1}, time.time() + HOUR)
    store.save("kept", {"a": 2}, time.time() + HOUR)
    store.delete("gone")
    store.delete("never there")
    assert set(rows(any_db_app)) == {"kept"}


def test_delete_for_user_ends_every_session_of_that_user_but_the_one_kept(
    any_db_app: App,
) -> None:
    store = store_of(any_db_app)
    alice, bob = add_user(any_db_app, "alice"), add_user(any_db_app, "bob")
    for key, user_id in (("a1", alice), ("a2", alice), ("a3", alice), ("b1", bob)):
        store.save(key, {"user_id": user_id}, time.time() + HOUR)
    store.delete_for_user(alice, keep="a2")
    assert set(rows(any_db_app)) == {"a2", "b1"}
    store.delete_for_user(alice)
    assert set(rows(any_db_app)) == {"b1"}
    assert rows(any_db_app)["b1"]["user_id"] == bob


def test_purge_expired_deletes_only_expired_sessions(any_db_app: App) -> None:
    store = store_of(any_db_app)
    store.save("past", {"a": 1}, time.time() - 10)
    store.save("long past", {"a": 1}, time.time() - 10 * HOUR)
    store.save("future", {"a": 1}, time.time() + HOUR)
    assert store.purge_expired() == 2
    assert set(rows(any_db_app)) == {"future"}
    assert store.purge_expired() == 0


# --- inside a request -------------------------------------------------------------------


@contextmanager
def checkouts(app: App) -> Iterator[list[int]]:
    """Give, for each connection checkout while the block runs, how many were then out."""
    engine = get_database(app).engine
    seen: list[int] = []

    def on_checkout(*_args: Any) -> None:
        seen.append(engine.pool.checkedout())

    event.listen(engine, "checkout", on_checkout)
    try:
        yield seen
    finally:
        event.remove(engine, "checkout", on_checkout)


def add_routes(app: App) -> None:
    """Routes that use the store inside a request, as views and the session do."""

    def remember(request: Request) -> str:
        request.session["remembered"] = request.args.get("value", "yes")
        return "remembered"

    def forget_user(request: Request) -> str:
        store_of(app).delete_for_user(int(request.args["user_id"]))
        # The store wrote (and committed) in the request's session; it goes on reading.
        db = get_db(request)
        assert not db.in_transaction()
        return str(db.scalar(select(User.username).where(User.id == int(request.args["user_id"]))))

    def abandoned_write(request: Request) -> Any:
        # A view that flushed a change and then gave up without committing it.
        db = get_db(request)
        db.add(Tag(name="Abandoned", slug="abandoned"))
        db.flush()
        request.session["tried"] = True
        return "given up", 422

    def read_then_remember(request: Request) -> str:
        # A read transaction is open when another worker writes; the session is saved after.
        db = get_db(request)
        db.scalar(select(User.id))
        engine = get_database(app).engine
        if engine.dialect.name == "sqlite":
            other = sqlite3.connect(engine.url.database)
            with other:
                other.execute("INSERT INTO tags (name, slug) VALUES ('Elsewhere', 'elsewhere')")
            other.close()
        request.session["after"] = "a write elsewhere"
        return "saved"

    app.add_route("/t/remember", remember)
    app.add_route("/t/forget-user", forget_user)
    app.add_route("/t/abandon", abandoned_write, methods=["POST"], csrf=False)
    app.add_route("/t/read-then-remember", read_then_remember)


@pytest.fixture
def site(any_db_app: App) -> App:
    add_routes(any_db_app)
    return any_db_app


def test_a_request_saves_its_session_on_its_own_connection(site: App) -> None:
    client = site.test_client()
    with checkouts(site) as seen:
        response = client.get("/t/remember?value=one")
    assert response.status_code == 200
    # Never two at once. (On PostgreSQL a GET reads in autocommit, and the save that
    # rolls back first takes a connection again, in a transaction of its own: #13.)
    assert seen and max(seen) == 1
    [record] = rows(site).values()
    assert '"remembered": "one"' in record["data"]
    assert get_database(site).engine.pool.checkedout() == 0  # closed in teardown

    with checkouts(site) as seen:
        assert client.get("/t/remember?value=two").status_code == 200
    assert seen and max(seen) == 1  # loaded, then saved, in the same session
    [record] = rows(site).values()
    assert '"remembered": "two"' in record["data"]


def test_a_signed_in_page_never_holds_two_connections(site: App) -> None:
    client = site.test_client()
    assert signup_admin(client).status_code == 303
    with checkouts(site) as seen:
        assert client.get("/").status_code == 200
    assert seen and max(seen) == 1  # never a second connection beside the request's
    assert get_database(site).engine.pool.checkedout() == 0


def test_signing_in_stores_the_session_for_the_next_request(site: App) -> None:
    assert signup_admin(site.test_client()).status_code == 303
    client = site.test_client()
    assert login(client, ADMIN.username, ADMIN.password).status_code == 303
    with get_database(site).read() as db:
        admin_id = db.scalar(select(User.id).where(User.username == ADMIN.username))
    # Two signed-in sessions: the one that signed up, and this one.
    assert [row["user_id"] for row in rows(site).values()] == [admin_id, admin_id]
    assert client.get("/").html.select_one('form[action="/logout"]') is not None


def test_a_store_write_in_a_view_commits_and_the_view_goes_on(site: App) -> None:
    alice = add_user(site, "alice")
    store = store_of(site)
    store.save("a1", {"user_id": alice}, time.time() + HOUR)
    response = site.test_client().get(f"/t/forget-user?user_id={alice}")
    assert response.status_code == 200
    assert response.text == "alice"
    assert "a1" not in rows(site)


def test_what_a_view_did_not_commit_is_not_committed_by_the_store(site: App) -> None:
    client = site.test_client()
    response = client.post("/t/abandon")
    assert response.status_code == 422
    with get_database(site).read() as db:
        assert db.scalar(select(Tag).where(Tag.slug == "abandoned")) is None
    [record] = rows(site).values()
    assert '"tried": true' in record["data"]  # the session itself was saved


def test_a_session_saved_after_another_worker_wrote_is_not_refused(site: App) -> None:
    """A read transaction is ended before the store writes, so it never has to upgrade."""
    client = site.test_client()
    response = client.get("/t/read-then-remember")
    assert response.status_code == 200, response.text
    [record] = rows(site).values()
    assert '"after": "a write elsewhere"' in record["data"]
    assert get_database(site).engine.pool.checkedout() == 0
