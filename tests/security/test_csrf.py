"""CSRF: every state-changing route refuses a forged request with 403 and changes nothing.

The table crosses every POST rule of the app with every way a forged or replayed request
can carry (or not carry) the token; each case snapshots every table before and after.
A request that is otherwise exactly the valid one (a control per route) succeeds, so the
403s are the token's doing.

Some routes are exempt, on purpose: POST /unsubscribe/<token>, RFC 8058's one-click
unsubscribe, which mail clients send with no session, POST /webmention, which other
sites' servers send, and the comment form with a writer's edit and delete, which carry
tokens signed with SECRET_KEY instead (world.CSRF_EXEMPT says why). The tests below
check that they are the only ones, that without its signed token unsubscribing or
commenting does nothing, and that a forged Webmention changes no content.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from blog.conftest import ADMIN, csrf_token, login, make_blog_app

from pyproject.blog.db import get_database
from pyproject.lib import App

from .checks import changed_tables, snapshot
from .live import Live
from .world import (
    CSRF_EXEMPT,
    CSRF_EXEMPT_OTHER_METHODS,
    PASSWORD,
    POST_RULES,
    World,
    post_targets,
)

MISSING = object()
# Whose token is "another session's token" for each sender.
OTHER = {"admin": "erin", "erin": "admin", "anonymous": "admin"}
EVIL = "https://evil.example"
# What a valid request answers, and whether it writes: (status, changes the database).
CONTROL_OUTCOME = {
    "/posts/preview": (200, False),
    "/posts/autosave": (200, True),
    "/posts/<slug:slug>/autosave": (200, True),
    "/reset": (200, True),  # the same page whether or not an account matches: no redirect
    # Two-step sign-in (#20): nobody here has it on, so a valid request writes only to its
    # own session (a flash, or the secret the page offers next).
    "/login/code": (303, True),  # no password step first: back to sign-in, with a flash
    "/account/security/totp": (422, True),  # a code that does not match the secret
    "/account/security/recovery-codes": (303, False),  # nothing to renew: back to the page
    "/account/security/totp/off": (303, True),  # already off: a flash says so
    "/account/sessions/<public_id>/end": (404, False),  # no session of erin's has that id
    "/media": (422, False),  # past the token, refused for carrying no file (see world.py)
    "/admin/export": (200, False),  # a download (#16)
    "/account/export": (200, False),
    "/admin/import": (422, False),  # past the token, refused for carrying no file
    "/account/tokens": (200, True),  # a new token, shown once on the page (#20)
    "/account/tokens/<int:token_id>/revoke": (404, False),  # no token of erin's has that id
    # roles, review and passkeys (#20)
    "/review/<int:post_id>/approve": (404, False),  # nobody submitted that post
    "/review/<int:post_id>/changes": (404, False),
    "/login/passkey/options": (200, True),  # a challenge kept in the session
    "/login/passkey": (422, True),  # no credential: refused past the token (the session
    "/account/security/passkeys/options": (200, True),  # drops its challenge)
    "/account/security/passkeys": (422, True),
    "/account/security/passkeys/<int:passkey_id>/delete": (404, False),  # nobody's passkey
    # site structure (#17), the author's picture (#23), the federation page (#19)
    "/admin/settings": (422, False),  # past the token, refused for an incomplete form
    "/series/<slug:slug>/edit": (404, False),  # no such series
    "/admin/federation/blocks/<int:block_id>/remove": (404, False),
    "/admin/federation/domains/resume": (404, False),  # that domain is not paused
    "/admin/federation/followers/<int:follower_id>/approve": (404, False),
    "/admin/federation/followers/<int:follower_id>/remove": (404, False),
}


def forgeries(token: str, other: str, own_host: str) -> dict[str, tuple[Any, str, dict]]:
    """Give each attack as (csrf_token field value or MISSING, query string, headers)."""
    return {
        "no token": (MISSING, "", {}),
        "empty token": ("", "", {}),
        "one character short": (token[:-1], "", {}),
        "one character long": (token + "A", "", {}),
        "eight characters": (token[:8], "", {}),
        "non-ASCII, same length": ("é" * len(token), "", {}),
        "NUL inside": (token[:10] + "\x00" + token[11:], "", {}),
        "padded with spaces": (f" {token} ", "", {}),
        "random, same length": (secrets.token_urlsafe(32), "", {}),
        "another session's token": (other, "", {}),
        "another session's token in the header": (MISSING, "", {"X-CSRF-Token": other}),
        "wrong header beats the right field": (token, "", {"X-CSRF-Token": "x" * len(token)}),
        "only in the query string": (MISSING, f"csrf_token={token}", {}),
        "valid, Origin another site": (token, "", {"Origin": EVIL}),
        "valid, Origin null": (token, "", {"Origin": "null"}),
        "valid, Origin a look-alike": (token, "", {"Origin": f"http://{own_host}.evil.example"}),
        "valid, Origin the other scheme": (token, "", {"Origin": f"https://{own_host}"}),
        "valid, Sec-Fetch-Site cross-site": (token, "", {"Sec-Fetch-Site": "cross-site"}),
    }


ATTACKS = tuple(forgeries("token", "other", "host"))


def forged_request(world: World, rule: str, attack: str, own_host: str):
    who, path, data = post_targets(world)[rule]
    tokens = world.token(who), world.token(OTHER[who])
    value, query, headers = forgeries(*tokens, own_host)[attack]
    form = dict(data)
    if value is not MISSING:
        form["csrf_token"] = value
    return who, f"{path}?{query}" if query else path, form, headers


def test_the_table_names_every_post_route(world_app: App) -> None:
    posting = {rule.rule for rule in world_app.router.rules if "POST" in rule.methods}
    assert posting == set(POST_RULES) | set(CSRF_EXEMPT), (
        "a POST route was added or removed: update world.py"
    )


def test_only_the_listed_routes_are_exempt_from_the_check(world_app: App) -> None:
    exempt = {rule.rule for rule in world_app.router.rules if not rule.options["csrf"]}
    expected = set(CSRF_EXEMPT) | set(CSRF_EXEMPT_OTHER_METHODS)
    assert exempt == expected, "a route skips the CSRF check: say why in world.py"


def test_one_click_unsubscribe_without_its_signed_token_changes_nothing(world: World) -> None:
    """The exemption's proof is the link's signature: forged or made-up links do nothing."""
    engine = get_database(world.app).engine
    for client in world.clients.values():
        for token in ("1." + "A" * 43, "1", "1.2.3", "x" * 300):
            before = snapshot(engine)
            response = client.post(f"/unsubscribe/{token}", headers={"Origin": EVIL})
            assert response.status_code == 404, token
            assert changed_tables(before, snapshot(engine)) == [], token


def test_a_reply_mails_stop_link_without_its_signed_token_changes_nothing(world: World) -> None:
    """Like unsubscribing: forged or made-up stop links (#18) answer 404 and change nothing."""
    engine = get_database(world.app).engine
    for client in world.clients.values():
        for comment_id, token in ((1, "A" * 43), (1, "x"), (999999, "A" * 43), (1, "x" * 300)):
            before = snapshot(engine)
            response = client.post(
                f"/comments/{comment_id}/quiet/{token}", headers={"Origin": EVIL}
            )
            assert response.status_code == 404, token
            assert changed_tables(before, snapshot(engine)) == [], token


def test_a_forged_webmention_changes_no_content(world: World) -> None:
    """The Webmention endpoint takes no token: a cross-site POST from a signed-in browser can
    only queue the check any stranger could ask for; bad input changes nothing at all."""
    engine = get_database(world.app).engine
    slug = world.slugs["edit"]
    target = f"http://localhost/posts/{slug}"
    for client in world.clients.values():
        for source, wanted in (
            ("https://a.example/1", "http://localhost/admin/users"),
            ("javascript:alert(1)", target),
            (target, target),
        ):
            before = snapshot(engine)
            response = client.post(
                "/webmention", data={"source": source, "target": wanted}, headers={"Origin": EVIL}
            )
            assert response.status_code == 400, (source, wanted)
            assert changed_tables(before, snapshot(engine)) == [], (source, wanted)
    before = snapshot(engine)
    response = world.clients["admin"].post(
        "/webmention",
        data={"source": "https://a.example/forged", "target": target},
        headers={"Origin": EVIL},
    )
    assert response.status_code == 202
    assert set(changed_tables(before, snapshot(engine))) <= {"mentions", "jobs", "rate_events"}


def test_a_comment_without_its_signed_token_changes_nothing(world: World) -> None:
    """The comment form's exemption: its proof is the signed token, and a writer's edit or
    delete needs their signed cookie and the comment's own token."""
    engine = get_database(world.app).engine
    slug = world.slugs["edit"]
    comment = world.comments["held"]
    for client in world.clients.values():
        for token in ("", "1.2.3", f"{world.comments['post']}.1700000000.{'A' * 43}"):
            before = snapshot(engine)
            response = client.post(
                f"/posts/{slug}/comments",
                data={"token": token, "name": "Forger", "body": "Forged."},
                headers={"Origin": EVIL},
            )
            # 422 for a reader; a signed-in client's session check refuses it first (403)
            assert response.status_code in (403, 422), token
            assert changed_tables(before, snapshot(engine)) == [], token
        for path in (f"/comments/{comment}/edit", f"/comments/{comment}/delete"):
            before = snapshot(engine)
            response = client.post(path, data={"body": "Forged."}, headers={"Origin": EVIL})
            assert response.status_code == 404, path
            assert changed_tables(before, snapshot(engine)) == [], path


@pytest.mark.parametrize("rule", POST_RULES)
def test_forged_post_is_refused_and_changes_nothing(world: World, rule: str) -> None:
    engine = get_database(world.app).engine
    failures = []
    for attack in ATTACKS:
        who, path, form, headers = forged_request(world, rule, attack, "localhost")
        before = snapshot(engine)
        response = world.clients[who].post(path, data=form, headers=headers)
        changed = changed_tables(before, snapshot(engine))
        if response.status_code != 403 or changed:
            failures.append(f"{attack}: {response.status_code}, changed {changed}")
    assert not failures, f"{rule} let forged requests through:\n" + "\n".join(failures)


@pytest.mark.parametrize("rule", [r for r in POST_RULES if r != "/setup"])
def test_the_same_request_with_its_token_goes_through(world: World, rule: str) -> None:
    """The control: with the session's own token the request does what it is for."""
    who, path, data = post_targets(world)[rule]
    client = world.clients[who]
    if rule in ("/login", "/reset/<token>", "/join/<token>"):  # these sign the client in
        client = world.app.test_client()
    elif rule == "/logout":
        client = world.app.test_client()
        assert login(client, ADMIN.username, ADMIN.password).status_code == 303
    token = csrf_token(client)  # also shows any flash left, so the session is quiet
    engine = get_database(world.app).engine
    before = snapshot(engine)
    response = client.post(path, data={**data, "csrf_token": token})
    changed = changed_tables(before, snapshot(engine))
    status, changes = CONTROL_OUTCOME.get(rule, (303, True))
    assert response.status_code == status, f"{rule} answered {response.status_code}"
    assert bool(changed) == changes, f"{rule} changed {changed}"


def test_setup_on_a_new_blog_needs_the_token(tmp_path) -> None:
    """/setup only exists before the first account: forged, it must not create the admin."""
    app = make_blog_app(tmp_path)
    try:
        client = app.test_client()
        token = csrf_token(client, "/setup")
        other = csrf_token(app.test_client(), "/setup")
        data = {
            "username": "usurper",
            "email": "usurper@example.com",
            "display_name": "",
            "password": PASSWORD,
            "confirm": PASSWORD,
        }
        engine = get_database(app).engine
        for attack in ATTACKS:
            value, query, headers = forgeries(token, other, "localhost")[attack]
            form = dict(data) if value is MISSING else {**data, "csrf_token": value}
            before = snapshot(engine)
            path = f"/setup?{query}" if query else "/setup"
            response = client.post(path, data=form, headers=headers)
            assert response.status_code == 403, attack
            assert changed_tables(before, snapshot(engine)) == [], attack
        assert client.post("/setup", data={**data, "csrf_token": token}).status_code == 303
    finally:
        get_database(app).dispose()


# --- over a real gunicorn ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("rule", POST_RULES)
def test_forged_posts_are_refused_by_gunicorn(live: Live, live_log, rule: str) -> None:
    engine = get_database(live.world.app).engine
    own_host = f"127.0.0.1:{live.server.port}"
    failures = []
    for attack in ATTACKS:
        who, path, form, headers = forged_request(live.world, rule, attack, own_host)
        before = snapshot(engine)
        response = live.client(who).post(path, data=form, headers=headers)
        changed = changed_tables(before, snapshot(engine))
        if response.status != 403 or changed:
            failures.append(f"{attack}: {response.status}, changed {changed}")
    assert not failures, f"{rule} let forged requests through:\n" + "\n".join(failures)


@pytest.mark.slow
def test_a_valid_autosave_goes_through_gunicorn(live: Live, live_log) -> None:
    """The control over the socket: an autosave with the token and our Origin is kept."""
    who, path, data = post_targets(live.world)["/posts/<slug:slug>/autosave"]
    client = live.client(who)
    origin = live.base_url
    response = client.post(
        path, data={**data, "csrf_token": live.world.token(who)}, headers={"Origin": origin}
    )
    assert response.status == 200, response.text[:300]
