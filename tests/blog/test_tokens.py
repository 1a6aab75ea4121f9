"""Personal API tokens: made at /account/tokens, shown once, kept hashed, revocable, expiring."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from blog.conftest import Cast, Clock, field_error, form_of
from pyproject.blog.db import get_database
from pyproject.blog.models import ApiToken
from pyproject.lib.testing import TestClient, TestResponse

FORM = 'form[action="/account/tokens"]'


def make_token(client: TestClient, name: str = "My app", *scopes: str, expires_in: str = "") -> str:
    """Make a token through the form; give the token the page shows (once)."""
    page = create_token(client, name, *scopes, expires_in=expires_in)
    assert page.status_code == 200, page.text
    return page.html.select_one("#new-token").get_text()


def create_token(client: TestClient, name: str, *scopes: str, expires_in: str = "") -> TestResponse:
    values = form_of(client.get("/account/tokens"), FORM)
    for key in [k for k in values if k.startswith("scope_")]:
        del values[key]
    values.update(name=name, expires_in=expires_in)
    for scope in scopes or ("posts:write",):
        values[f"scope_{scope}"] = "on"
    return client.post("/account/tokens", data=values)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_api_post(client: TestClient, token: str, **fields: object) -> TestResponse:
    return client.post(
        "/api/posts", json={"title": "T", "body": "B", **fields}, headers=bearer(token)
    )


def tokens_in_db(cast: Cast) -> list[ApiToken]:
    with get_database(cast.app).read() as db:
        return list(db.scalars(select(ApiToken).order_by(ApiToken.id)))


def test_a_token_is_shown_once_and_kept_only_as_its_digest(cast: Cast) -> None:
    token = make_token(cast.author, "Phone", "read", "posts:write")
    assert token.startswith("pp_") and len(token) > 40
    [row] = tokens_in_db(cast)
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.prefix, row.name, row.digest, row.scopes)
    assert row.scope_list == ["read", "posts:write"]
    listing = cast.author.get("/account/tokens")
    assert token not in listing.text  # never shown again
    assert row.prefix in listing.text and "Phone" in listing.text
    assert "never" in listing.html.select_one("table.tokens").get_text()
    assert listing.headers["Cache-Control"] == "no-store"


def test_the_token_works_and_its_last_use_is_shown(cast: Cast) -> None:
    token = make_token(cast.author)
    created = create_api_post(cast.anonymous, token)
    assert created.status_code == 201, created.text
    [row] = tokens_in_db(cast)
    assert row.last_used_at is not None
    cells = cast.author.get("/account/tokens").html.select("table.tokens td time")
    assert any(cell["datetime"] == row.last_used_at.isoformat() for cell in cells)


def test_a_form_with_errors_comes_back_as_typed(cast: Cast) -> None:
    values = form_of(cast.author.get("/account/tokens"), FORM)
    values.pop("scope_read", None)
    values.update(name="x" * 81, expires_in="12")
    page = cast.author.post("/account/tokens", data=values)
    assert page.status_code == 422
    assert "too long" in field_error(page, "name")
    assert page.html.select_one("#e-scopes") is not None
    assert page.html.select_one("#e-expires_in") is not None
    assert page.html.select_one("#f-name")["value"] == "x" * 81
    assert tokens_in_db(cast) == []


def test_the_form_needs_its_csrf_token(cast: Cast) -> None:
    values = form_of(cast.author.get("/account/tokens"), FORM)
    values.update(name="Forged", scope_read="on")
    del values["csrf_token"]
    assert cast.author.post("/account/tokens", data=values).status_code == 403
    assert tokens_in_db(cast) == []


def test_a_revoked_token_stops_at_once(cast: Cast) -> None:
    token = make_token(cast.author)
    [row] = tokens_in_db(cast)
    page = cast.author.get("/account/tokens")
    values = form_of(page, f'form[action="/account/tokens/{row.id}/revoke"]')
    assert cast.author.post(f"/account/tokens/{row.id}/revoke", data=values).status_code == 303
    refused = create_api_post(cast.anonymous, token)
    assert refused.status_code == 401
    assert refused.json["error"]["message"] == "This token was revoked."
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert "revoked" in cast.author.get("/account/tokens").text


def test_another_account_cannot_revoke_my_token(cast: Cast) -> None:
    token = make_token(cast.author)
    [row] = tokens_in_db(cast)
    values = form_of(cast.other.get("/account/tokens"), FORM)
    answer = cast.other.post(
        f"/account/tokens/{row.id}/revoke", data={"csrf_token": values["csrf_token"]}
    )
    assert answer.status_code == 404
    assert create_api_post(cast.anonymous, token).status_code == 201


def test_an_expired_token_is_refused(cast: Cast, clock: Clock) -> None:
    token = make_token(cast.author, "Week", "posts:write", expires_in="7")
    assert create_api_post(cast.anonymous, token).status_code == 201
    clock.advance(days=7, seconds=1)
    refused = create_api_post(cast.anonymous, token, title="Later")
    assert refused.status_code == 401
    assert refused.json["error"]["message"] == "This token has expired."
    assert "expired" in cast.author.get("/account/tokens").text


def test_a_deactivated_account_s_token_is_refused(cast: Cast) -> None:
    token = make_token(cast.author)
    users = cast.admin.get("/admin/users")
    [form] = [f for f in users.html.select("form") if "deactivate" in f.get("action", "")][:1]
    values = {i["name"]: i.get("value", "") for i in form.select("input[name]")}
    assert cast.admin.post(form["action"], data=values).status_code == 303
    assert create_api_post(cast.anonymous, token).status_code == 401


def test_tokens_are_written_to_the_audit_log_where_there_is_one(cast: Cast) -> None:
    make_token(cast.author, "Audited")
    try:
        from pyproject.blog.models import AuditEntry
    except ImportError:
        return  # no audit log in this tree: tokens.py records nothing
    with get_database(cast.app).read() as db:
        actions = list(db.scalars(select(AuditEntry.action)))
    assert "token_created" in actions


def test_the_account_page_leads_to_the_tokens(cast: Cast) -> None:
    link = cast.author.get("/account").html.select_one('a[href="/account/tokens"]')
    assert link is not None
    assert cast.anonymous.get("/account/tokens").status_code == 303
