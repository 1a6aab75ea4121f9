"""Tests for pyproject/blog/audit.py: what is written to the audit log, and /admin/audit."""

from __future__ import annotations

import json

import pyotp
import pytest
from sqlalchemy import select

from blog.conftest import AUTHOR, Cast, form_of, login
from pyproject.blog import audit
from pyproject.blog.db import get_database
from pyproject.blog.models import AuditEntry, User


def lines(cast: Cast, action: str | None = None) -> list[AuditEntry]:
    with get_database(cast.app).read() as db:
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        found = list(db.scalars(query))
        db.expunge_all()
        return found


def test_sign_ins_are_recorded_with_the_way_in_and_the_network(cast: Cast) -> None:
    signed = lines(cast, "sign_in")
    # setup (admin), then alice and bob through the form
    assert [(e.actor_name, json.loads(e.detail)["with"]) for e in signed] == [
        ("admin", "setup"),
        ("alice", "password"),
        ("bob", "password"),
    ]
    assert all(e.network == "127.0.0.0/24" for e in signed)


def test_failed_sign_ins_name_the_account_tried_or_what_was_typed(cast: Cast) -> None:
    client = cast.app.test_client()
    assert login(client, AUTHOR.username, "wrong password").status_code == 422
    assert login(client, "nobody-here", "wrong password").status_code == 422
    failed = lines(cast, "sign_in_failed")
    assert [(e.actor_name, json.loads(e.detail)["login"]) for e in failed] == [
        ("alice", "alice"),
        ("", "nobody-here"),
    ]
    assert failed[1].actor_id is None


def test_second_factor_changes_and_wrong_codes_are_recorded(cast: Cast) -> None:
    from blog.test_twofactor import turn_on

    secret, _codes = turn_on(cast.author)
    client = cast.app.test_client()
    assert login(client, AUTHOR.username, AUTHOR.password).location == "/login/code"
    values = form_of(client.get("/login/code"), "main form")
    values["code"] = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    assert client.post("/login/code", data=values).status_code == 422
    actions = [e.action for e in lines(cast) if e.actor_name == "alice"]
    assert actions[-2:] == ["totp_enabled", "second_factor_failed"]


def test_record_takes_a_connection_a_text_detail_and_no_actor(cast: Cast) -> None:
    engine = get_database(cast.app).engine
    with engine.begin() as connection:
        audit.record(connection, None, "import_started", "a WXR file", actor_name="job")
    entry = lines(cast, "import_started")[0]
    assert (entry.actor_id, entry.actor_name, entry.detail) == (None, "job", "a WXR file")
    assert audit.describe(entry) == {"note": "a WXR file"}


def test_the_log_page_is_for_admins_only(cast: Cast) -> None:
    assert cast.anonymous.get("/admin/audit").status_code == 303
    assert cast.author.get("/admin/audit").status_code == 403
    page = cast.admin.get("/admin/audit")
    assert page.status_code == 200
    rows = page.html.select(".audit-table tbody tr")
    # setup, alice and bob added, and each signed in: newest first
    assert len(rows) == 5 and "Signed in" in rows[0].get_text()
    assert "setup" in rows[-1].get_text()


def test_the_log_filters_by_action_account_and_day(cast: Cast) -> None:
    login(cast.app.test_client(), "alice", "wrong")
    failed = cast.admin.get("/admin/audit?action=sign_in_failed")
    assert len(failed.html.select(".audit-table tbody tr")) == 1
    by_bob = cast.admin.get("/admin/audit?who=BOB")
    assert [r.select("td")[1].get_text() for r in by_bob.html.select(".audit-table tbody tr")] == [
        "bob"
    ]
    none = cast.admin.get("/admin/audit?from=2001-01-01&to=2001-01-02")
    assert none.html.select(".audit-table") == []


@pytest.mark.parametrize(
    "query", ["from=yesterday", "to=2026-13-45", "who=%00admin", "action=" + "x" * 50]
)
def test_bad_filters_are_422_with_the_field_marked(cast: Cast, query: str) -> None:
    page = cast.admin.get(f"/admin/audit?{query}")
    assert page.status_code == 422
    assert page.html.select_one(".error") is not None


def test_the_log_pages_through_older_lines(cast: Cast) -> None:
    with get_database(cast.app).write() as db:
        admin = db.scalar(select(User).where(User.username == "admin"))
        for number in range(audit.PAGE_SIZE + 5):
            audit.record(db, admin, "settings_changed", {"n": number})
    first = cast.admin.get("/admin/audit?action=settings_changed")
    assert len(first.html.select(".audit-table tbody tr")) == audit.PAGE_SIZE
    older = first.html.select_one('a[rel="next"]')["href"]
    second = cast.admin.get(older)
    assert len(second.html.select(".audit-table tbody tr")) == 5
    assert second.html.select_one('a[rel="next"]') is None


def test_detail_is_escaped_on_the_page(cast: Cast) -> None:
    login(cast.app.test_client(), "<script>alert(1)</script>", "x")
    page = cast.admin.get("/admin/audit?action=sign_in_failed")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text


def test_starting_an_import_is_recorded(cast: Cast, tmp_path) -> None:
    from blog.test_importing import export, upload_import

    archive = export(cast.app, tmp_path / "site.zip")
    checked = upload_import(cast.admin, archive, name="old-site.zip")
    assert checked.status_code == 303
    page = cast.admin.get(checked.location)
    action = page.html.select_one('form[action$="/run"]')["action"]
    assert cast.admin.post(action, data=page.form_values('form[action$="/run"]')).status_code == 303
    [line] = lines(cast, "import_started")
    assert line.actor_name == "admin"
    assert json.loads(line.detail)["file"] == "old-site.zip"


def test_accounts_added_deactivated_activated_and_sign_outs_are_recorded(cast: Cast) -> None:
    from blog.conftest import create_author, csrf_token, logout

    assert create_author(cast.admin, "dora", role="contributor").status_code == 303
    with get_database(cast.app).read() as db:
        dora = db.scalar(select(User.id).where(User.username == "dora"))
    token = csrf_token(cast.admin)
    cast.admin.post(f"/admin/users/{dora}/deactivate", data={"csrf_token": token})
    cast.admin.post(f"/admin/users/{dora}/activate", data={"csrf_token": token})
    assert logout(cast.author).status_code == 303
    found = [
        (e.actor_name, e.action, e.detail)
        for e in lines(cast)
        if "dora" in e.detail or e.action == "sign_out"
    ]
    assert found == [
        ("admin", "user_added", '{"role": "contributor", "user": "dora"}'),
        ("admin", "user_deactivated", '{"user": "dora"}'),
        ("admin", "user_activated", '{"user": "dora"}'),
        ("alice", "sign_out", ""),
    ]
