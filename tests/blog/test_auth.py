"""Authors: first-run setup, the create-user command, sign-in, throttling, accounts, admin."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import select

from blog.conftest import (
    ADMIN,
    AUTHOR,
    OTHER,
    Cast,
    Person,
    create_author,
    csrf_token,
    field_error,
    form_of,
    login,
    logout,
    make_blog_app,
    make_cast,
    move_login_attempts_back,
    signup_admin,
    utc_ago,
)
from blog.conftest import add_login_attempts as add_failures
from pyproject.blog import auth
from pyproject.blog.db import get_database
from pyproject.blog.models import LoginAttempt, User
from pyproject.config import ROOT
from pyproject.lib import App
from pyproject.lib.http import parse_http_date
from pyproject.lib.testing import TestClient, TestResponse

LOGIN_ERROR = "That username or email and password do not match an account."


def get_user(app: App, username: str) -> User | None:
    with get_database(app).read() as db:
        return db.scalar(select(User).where(User.username == username))


def is_signed_in(client: TestClient) -> bool:
    """Give whether the client's session is signed in (the header shows "Sign out")."""
    return client.get("/").html.select_one('form[action="/logout"]') is not None


def argon2_parameters(stored: str) -> dict[str, int]:
    """Give m, t and p from an encoded Argon2 hash."""
    match = re.match(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", stored)
    assert match, stored
    return dict(zip("mtp", map(int, match.groups()), strict=True))


# --- first run ---------------------------------------------------------------------------


def test_sign_in_page_leads_to_setup_while_there_are_no_users(client: TestClient) -> None:
    response = client.get("/login")
    assert response.status_code == 303
    assert response.location == "/setup"


def test_setup_creates_the_first_account_as_an_admin_and_signs_in(
    app: App, client: TestClient
) -> None:
    response = signup_admin(client)
    assert response.status_code == 303
    assert response.location == "/posts/new"
    assert is_signed_in(client)
    assert client.get("/admin/users").status_code == 200
    admin = get_user(app, ADMIN.username)
    assert admin.role == "admin" and admin.is_active
    assert admin.display_name == ADMIN.display_name


def test_setup_is_gone_once_a_user_exists(client: TestClient, app: App) -> None:
    assert signup_admin(client).status_code == 303
    assert app.test_client().get("/setup").status_code == 404
    assert client.get("/setup").status_code == 404
    second = {
        "csrf_token": csrf_token(client),
        "username": "mallory",
        "email": "mallory@example.com",
        "password": "mallory passphrase",
        "confirm": "mallory passphrase",
    }
    assert client.post("/setup", data=second).status_code == 404
    assert get_user(app, "mallory") is None


def test_only_one_of_several_simultaneous_setups_wins(
    any_db_app: App, request: pytest.FixtureRequest
) -> None:
    clients = [any_db_app.test_client() for _ in range(3)]
    forms = [form_of(c.get("/setup"), 'form[action="/setup"]') for c in clients]
    start = threading.Barrier(len(clients))
    statuses: dict[int, int] = {}

    def set_up(n: int) -> None:
        values = {**forms[n], "username": f"first{n}", "email": f"first{n}@example.com"}
        values.update(password="first passphrase", confirm="first passphrase")
        start.wait()
        statuses[n] = clients[n].post("/setup", data=values).status_code

    threads = [threading.Thread(target=set_up, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    with get_database(any_db_app).read() as db:
        admins = db.scalars(select(User.username)).all()
    assert sorted(statuses.values()) == [303, 404, 404]
    assert len(admins) == 1


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"username": ""}, "username", "Username is required."),
        ({"username": "No Spaces!"}, "username", "lower-case letters"),
        ({"email": "not-an-email"}, "email", "email address like"),
        ({"password": "short", "confirm": "short"}, "password", "at least 8"),
        ({"confirm": "something else"}, "confirm", "not the same"),
        ({"display_name": "x" * 81}, "display_name", "too long"),
    ],
)
def test_setup_form_errors_keep_what_was_typed(
    client: TestClient, fields: dict[str, str], field: str, message: str
) -> None:
    response = signup_admin(client, **fields)
    assert response.status_code == 422
    assert message in field_error(response, field)
    typed = {"username": ADMIN.username, "email": ADMIN.email, "display_name": ADMIN.display_name}
    typed.update({k: v for k, v in fields.items() if k in typed})
    shown = response.form_values('form[action="/setup"]')
    for name, value in typed.items():
        assert shown[name] == value


# --- the create-user command -------------------------------------------------------------


def run_main(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "main.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin.encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def command_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment for `python main.py ...` on a migrated SQLite file (one per module)."""
    folder = tmp_path_factory.mktemp("cli")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{folder / 'cli.sqlite3'}",
        "SECRET_KEY": "command-test-secret",
        "DEBUG": "false",
        "BASE_URL": "http://localhost",
        "LOG_LEVEL": "WARNING",
        "PYTHONIOENCODING": "utf-8",
    }
    migrated = run_main(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr.decode()
    return env


def test_create_user_command_makes_an_account_that_can_sign_in(
    command_env: dict[str, str], tmp_path: Path
) -> None:
    password = "pässwörd 🔑 長いパスワード"
    made = run_main(
        command_env,
        "create-user",
        "--username",
        "Carol",
        "--email",
        "Carol@Example.com",
        "--role",
        "admin",
        "--password-stdin",
        stdin=password + "\n",
    )
    assert made.returncode == 0, made.stderr.decode()
    assert "carol" in made.stdout.decode()

    app = make_blog_app(tmp_path, command_env["DATABASE_URL"])
    try:
        carol = get_user(app, "carol")
        assert carol.email == "carol@example.com" and carol.role == "admin"
        assert carol.password_hash.startswith("$argon2id$")
        client = app.test_client()
        assert client.get("/setup").status_code == 404
        assert login(client, "carol@example.com", password).status_code == 303
        assert client.get("/admin/users").status_code == 200
    finally:
        get_database(app).dispose()


@pytest.mark.parametrize(
    ("args", "stdin", "complaint"),
    [
        (["--username", "x", "--email", "x@example.com"], "long enough pass\n", "username"),
        (["--username", "dave", "--email", "nope"], "long enough pass\n", "email"),
        (["--username", "dave", "--email", "dave@example.com"], "short\n", "password"),
    ],
)
def test_create_user_command_refuses_bad_input(
    command_env: dict[str, str], args: list[str], stdin: str, complaint: str
) -> None:
    result = run_main(command_env, "create-user", *args, "--password-stdin", stdin=stdin)
    assert result.returncode == 2
    assert complaint in result.stderr.decode()


def test_create_user_command_refuses_a_taken_username(command_env: dict[str, str]) -> None:
    args = ["create-user", "--username", "erin", "--email", "erin@example.com"]
    assert (
        run_main(command_env, *args, "--password-stdin", stdin="erin passphrase\n").returncode == 0
    )
    again = run_main(
        command_env,
        "create-user",
        "--username",
        "erin",
        "--email",
        "other@example.com",
        "--role",
        "author",
        "--password-stdin",
        stdin="erin passphrase\n",
    )
    assert again.returncode == 2
    assert "exists" in again.stderr.decode()


# --- signing in --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", [AUTHOR.username, AUTHOR.email, AUTHOR.username.upper(), f"  {AUTHOR.email}  "]
)
def test_sign_in_with_username_or_email(shared_cast: Cast, typed: str) -> None:
    client = shared_cast.app.test_client()
    response = login(client, typed, AUTHOR.password)
    assert response.status_code == 303
    assert response.location == "/"
    assert is_signed_in(client)


def test_sign_in_works_on_every_database(any_db_app: App) -> None:
    admin = any_db_app.test_client()
    assert signup_admin(admin).status_code == 303
    assert create_author(admin, AUTHOR.username, AUTHOR.email, AUTHOR.password).status_code == 303
    client = any_db_app.test_client()
    assert login(client, AUTHOR.email, "wrong password").status_code == 422
    assert login(client, AUTHOR.username, AUTHOR.password).status_code == 303
    assert is_signed_in(client)


def failed_page(response: TestResponse) -> tuple[int, str | None, str]:
    """Give what a visitor learns from a failed sign-in: status, error, password field."""
    form = response.form_values('form[action="/login"]')
    return response.status_code, field_error(response, "login"), form["password"]


def test_unknown_user_and_wrong_password_get_the_same_answer(cast: Cast) -> None:
    client = cast.app.test_client()
    unknown = login(client, "nobody-here", "some password")
    wrong = login(client, AUTHOR.username, "not alice's password")
    assert failed_page(unknown) == failed_page(wrong) == (422, LOGIN_ERROR, "")
    assert unknown.form_values('form[action="/login"]')["login"] == "nobody-here"
    assert wrong.form_values('form[action="/login"]')["login"] == AUTHOR.username
    assert not is_signed_in(client)


def test_a_deactivated_user_gets_the_same_answer_as_a_wrong_password(cast: Cast) -> None:
    deactivate(cast.admin, cast.app, AUTHOR.username)
    client = cast.app.test_client()
    assert failed_page(login(client, AUTHOR.username, AUTHOR.password)) == (422, LOGIN_ERROR, "")
    assert not is_signed_in(client)


def test_stored_hashes_are_argon2id_with_owasp_parameters(cast: Cast) -> None:
    for person in (ADMIN, AUTHOR):
        stored = get_user(cast.app, person.username).password_hash
        assert stored.startswith("$argon2id$")
        parameters = argon2_parameters(stored)
        assert parameters["m"] >= 19456 and parameters["t"] >= 2
        assert person.password not in stored


@pytest.mark.parametrize(
    "password",
    [
        "x" * auth.PASSWORD_MAX,
        "🔑🐍 パスワード 密码 пароль",
        "   spaces around   ",
        "ÅÄÖ\tcombining é (e\u0301) and zero\u200bwidth",
    ],
    ids=["1024-chars", "emoji-cjk", "spaces", "tabs-combining"],
)
def test_any_password_up_to_1024_characters_works(
    shared_cast: Cast, password: str, request: pytest.FixtureRequest
) -> None:
    username = "dora-" + request.node.callspec.id
    created = create_author(shared_cast.admin, username, password=password)
    assert created.status_code == 303, field_error(created, "password")
    client = shared_cast.app.test_client()
    assert login(client, username, password).status_code == 303
    stored = get_user(shared_cast.app, username).password_hash
    assert argon2_parameters(stored)["m"] >= 19456


def test_a_password_longer_than_1024_characters_is_refused(cast: Cast) -> None:
    response = create_author(cast.admin, "dora", password="x" * (auth.PASSWORD_MAX + 1))
    assert response.status_code == 422
    assert "at most 1,024" in field_error(response, "password")
    assert get_user(cast.app, "dora") is None
    client = cast.app.test_client()
    assert failed_page(login(client, AUTHOR.username, "x" * 5000)) == (422, LOGIN_ERROR, "")


# --- throttling --------------------------------------------------------------------------


def assert_throttled(response: TestResponse, typed: str, *, at_most: int) -> int:
    """Check a 429 sign-in page; give its Retry-After."""
    assert response.status_code == 429
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= at_most
    assert re.search(r"Try again in \d+ minutes?\.", field_error(response, "login"))
    assert response.form_values('form[action="/login"]')["login"] == typed
    return wait


def test_five_failures_then_429_even_with_the_right_password(cast: Cast) -> None:
    client = cast.app.test_client()
    for _ in range(auth.ACCOUNT_FREE_FAILURES):
        assert login(client, AUTHOR.username, "wrong password").status_code == 422
    assert_throttled(login(client, AUTHOR.username, "wrong password"), AUTHOR.username, at_most=30)
    assert_throttled(login(client, AUTHOR.username, AUTHOR.password), AUTHOR.username, at_most=30)
    assert not is_signed_in(client)
    # Another account is not held back by alice's failures.
    assert login(client, OTHER.username, OTHER.password).status_code == 303


def fail_to_sign_in(client: TestClient, login_as: str, times: int) -> None:
    for _ in range(times):
        assert login(client, login_as, "wrong password").status_code == 422


def test_throttling_works_on_every_database(any_db_cast: Cast) -> None:
    app = any_db_cast.app
    client = app.test_client()
    fail_to_sign_in(client, AUTHOR.email, auth.ACCOUNT_FREE_FAILURES)
    assert_throttled(login(client, AUTHOR.username, AUTHOR.password), "alice", at_most=30)
    fail_to_sign_in(client, "ghost", auth.ACCOUNT_FREE_FAILURES)
    assert_throttled(login(client, "ghost", "anything at all"), "ghost", at_most=30)
    move_login_attempts_back(app, minutes=2)
    assert login(client, AUTHOR.username, AUTHOR.password).status_code == 303


def test_the_wait_ends(cast: Cast) -> None:
    client = cast.app.test_client()
    fail_to_sign_in(client, AUTHOR.username, auth.ACCOUNT_FREE_FAILURES)
    wait = assert_throttled(login(client, "alice", AUTHOR.password), "alice", at_most=30)
    move_login_attempts_back(cast.app, seconds=wait - 3)
    assert login(client, AUTHOR.username, AUTHOR.password).status_code == 429
    move_login_attempts_back(cast.app, seconds=4)
    assert login(client, AUTHOR.username, AUTHOR.password).status_code == 303


def test_failures_outside_the_window_are_forgotten(cast: Cast) -> None:
    client = cast.app.test_client()
    fail_to_sign_in(client, AUTHOR.username, auth.ACCOUNT_FREE_FAILURES)
    move_login_attempts_back(cast.app, minutes=16)
    fail_to_sign_in(client, AUTHOR.username, auth.ACCOUNT_FREE_FAILURES - 1)
    assert login(client, AUTHOR.username, AUTHOR.password).status_code == 303


def test_the_wait_grows_with_more_failures(cast: Cast) -> None:
    client = cast.app.test_client()
    fail_to_sign_in(client, AUTHOR.username, auth.ACCOUNT_FREE_FAILURES)
    first = assert_throttled(login(client, "alice", "wrong password"), "alice", at_most=30)
    move_login_attempts_back(cast.app, seconds=first + 1)
    fail_to_sign_in(client, AUTHOR.username, 1)
    second = assert_throttled(login(client, "alice", AUTHOR.password), "alice", at_most=60)
    assert second > first


def test_a_success_resets_the_account_count(cast: Cast) -> None:
    client = cast.app.test_client()
    fail_to_sign_in(client, AUTHOR.username, auth.ACCOUNT_FREE_FAILURES - 1)
    assert login(client, AUTHOR.email, AUTHOR.password).status_code == 303
    # Nine failures in the window, but only the ones since the success count. They come
    # from a new browser elsewhere: the one that signed in is now exempt from this count.
    elsewhere = browser_at(cast, "192.0.2.44")
    fail_to_sign_in(elsewhere, AUTHOR.username, auth.ACCOUNT_FREE_FAILURES)
    assert_throttled(login(elsewhere, "alice", AUTHOR.password), "alice", at_most=30)


def test_failures_are_throttled_per_address(cast: Cast) -> None:
    crowd = "198.51.100.7"
    for n in range(auth.ADDRESS_FREE_FAILURES):
        add_failures(cast.app, f"guess{n}", 1, utc_ago(seconds=1), address=crowd)
    there = cast.app.test_client(environ_overrides={"REMOTE_ADDR": crowd})
    assert_throttled(login(there, AUTHOR.username, AUTHOR.password), AUTHOR.username, at_most=30)
    elsewhere = cast.app.test_client(environ_overrides={"REMOTE_ADDR": "192.0.2.1"})
    assert login(elsewhere, AUTHOR.username, AUTHOR.password).status_code == 303


def test_username_and_email_share_one_failure_count(cast: Cast) -> None:
    client = cast.app.test_client()
    fail_to_sign_in(client, AUTHOR.username, auth.ACCOUNT_FREE_FAILURES - 2)
    fail_to_sign_in(client, AUTHOR.email.upper(), 2)
    assert_throttled(login(client, AUTHOR.email, AUTHOR.password), AUTHOR.email, at_most=30)
    assert_throttled(login(client, AUTHOR.username, AUTHOR.password), "alice", at_most=30)


# --- strangers cannot lock the owner out (issue #24) -------------------------------------

OWNER_ADDRESS, STRANGER_ADDRESS, NEW_ADDRESS = "192.0.2.10", "203.0.113.66", "198.51.100.23"


def browser_at(cast: Cast, address: str) -> TestClient:
    """Give a new browser whose requests come from `address`."""
    return cast.app.test_client(environ_overrides={"REMOTE_ADDR": address})


def account_key(app: App, person: Person) -> str:
    return f"user:{get_user(app, person.username).id}"


def owners_browser(cast: Cast, person: Person = AUTHOR) -> TestClient:
    """Give a browser at the owner's address that has signed in before (and signed out)."""
    owner = browser_at(cast, OWNER_ADDRESS)
    assert login(owner, person.username, person.password).status_code == 303
    assert logout(owner).status_code == 303
    return owner


def stranger_fails(cast: Cast, person: Person = AUTHOR, times: int = 20) -> None:
    """A stranger fails at `person`'s password `times` times from STRANGER_ADDRESS.

    Through the form until the pair throttle stops them; the rest are recorded directly
    (a patient stranger would make them as each wait ends).
    """
    stranger = browser_at(cast, STRANGER_ADDRESS)
    fail_to_sign_in(stranger, person.username, auth.PAIR_FREE_FAILURES)
    assert login(stranger, person.username, "wrong password").status_code == 429
    key = account_key(cast.app, person)
    rest = times - auth.PAIR_FREE_FAILURES
    add_failures(cast.app, key, rest, utc_ago(seconds=0), address=STRANGER_ADDRESS)


def known_device_cookie(response: TestResponse) -> tuple[str, str, dict[str, str]]:
    """Give the name, value and attributes (names lower-cased) of the known-device cookie."""
    for header in response.headers.getlist("Set-Cookie"):
        pair, *parts = header.split(";")
        name, _, value = pair.strip().partition("=")
        if name.endswith(auth.KNOWN_DEVICE_COOKIE):
            attributes = {}
            for part in parts:
                key, _, val = part.strip().partition("=")
                attributes[key.lower()] = val
            return name, value, attributes
    raise AssertionError(f"no known-device cookie in {response.headers.getlist('Set-Cookie')}")


def test_a_strangers_failures_do_not_stop_the_owners_browser(cast: Cast) -> None:
    owner = owners_browser(cast)
    stranger_fails(cast, times=20)
    newcomer = browser_at(cast, NEW_ADDRESS)
    wait = auth.MAX_WAIT_SECONDS
    assert_throttled(login(newcomer, AUTHOR.username, AUTHOR.password), "alice", at_most=wait)
    assert not is_signed_in(newcomer)
    assert login(owner, AUTHOR.username, AUTHOR.password).status_code == 303
    assert is_signed_in(owner)


def test_the_owners_browser_is_exempt_by_email_too_and_after_a_wrong_password(
    cast: Cast,
) -> None:
    owner = owners_browser(cast)
    stranger_fails(cast, times=20)
    assert failed_page(login(owner, AUTHOR.email, "a typo")) == (422, LOGIN_ERROR, "")
    assert login(owner, AUTHOR.email.upper(), AUTHOR.password).status_code == 303


def test_the_pair_throttle_stops_the_strangers_own_address(cast: Cast) -> None:
    stranger_fails(cast, times=auth.PAIR_FREE_FAILURES)
    stranger = browser_at(cast, STRANGER_ADDRESS)
    assert_throttled(login(stranger, AUTHOR.username, AUTHOR.password), "alice", at_most=30)
    # Five failures are far from the address's twenty: another account signs in from there.
    assert login(stranger, OTHER.username, OTHER.password).status_code == 303


def test_the_owners_success_elsewhere_does_not_free_the_strangers_address(cast: Cast) -> None:
    owner = owners_browser(cast)
    stranger_fails(cast, times=auth.PAIR_FREE_FAILURES)
    assert login(owner, AUTHOR.username, AUTHOR.password).status_code == 303
    stranger = browser_at(cast, STRANGER_ADDRESS)
    assert_throttled(login(stranger, AUTHOR.username, AUTHOR.password), "alice", at_most=30)


def test_a_stolen_known_device_cookie_still_meets_the_pair_and_address_throttles(
    cast: Cast,
) -> None:
    owner = owners_browser(cast)
    thief = browser_at(cast, STRANGER_ADDRESS)
    thief.cookies[auth.KNOWN_DEVICE_COOKIE] = owner.cookies[auth.KNOWN_DEVICE_COOKIE]
    fail_to_sign_in(thief, AUTHOR.username, auth.PAIR_FREE_FAILURES)
    assert_throttled(login(thief, AUTHOR.username, AUTHOR.password), "alice", at_most=30)
    crowd = "198.51.100.99"
    for n in range(auth.ADDRESS_FREE_FAILURES):
        add_failures(cast.app, f"guess{n}", 1, utc_ago(seconds=1), address=crowd)
    there = browser_at(cast, crowd)
    there.cookies[auth.KNOWN_DEVICE_COOKIE] = owner.cookies[auth.KNOWN_DEVICE_COOKIE]
    assert_throttled(login(there, AUTHOR.username, AUTHOR.password), "alice", at_most=30)
    assert not is_signed_in(thief) and not is_signed_in(there)


def test_a_tampered_known_device_cookie_gives_no_exemption(cast: Cast) -> None:
    owner = owners_browser(cast)
    stranger_fails(cast, times=20)
    value = owner.cookies[auth.KNOWN_DEVICE_COOKIE]
    owner.cookies[auth.KNOWN_DEVICE_COOKIE] = value[:-1] + ("A" if value[-1] != "A" else "B")
    response = login(owner, AUTHOR.username, AUTHOR.password)
    assert_throttled(response, "alice", at_most=auth.MAX_WAIT_SECONDS)
    assert not is_signed_in(owner)


def test_another_accounts_known_device_cookie_gives_no_exemption(cast: Cast) -> None:
    owner = owners_browser(cast, OTHER)  # this browser knows bob, not alice
    stranger_fails(cast, AUTHOR, times=20)
    response = login(owner, AUTHOR.username, AUTHOR.password)
    assert_throttled(response, "alice", at_most=auth.MAX_WAIT_SECONDS)


def test_the_known_device_cookie_is_httponly_lax_and_lasts_a_year(cast: Cast) -> None:
    browser = browser_at(cast, OWNER_ADDRESS)
    failed = login(browser, AUTHOR.username, "wrong password")
    assert not any("known_device" in c for c in failed.headers.getlist("Set-Cookie"))
    response = login(browser, AUTHOR.username, AUTHOR.password)
    name, value, attributes = known_device_cookie(response)
    assert name == "known_device" and value
    assert "httponly" in attributes
    assert attributes["samesite"] == "Lax"
    assert attributes["path"] == "/"
    assert "secure" not in attributes and "domain" not in attributes
    assert int(attributes["max-age"]) == 365 * 24 * 3600
    expires = parse_http_date(attributes["expires"])
    assert abs((expires - utc_ago(days=-365)).total_seconds()) < 60


@pytest.mark.parametrize(
    ("base_url", "client_url"),
    [("https://localhost", "https://localhost"), ("https://localhost", "http://localhost")],
    ids=["https", "https site behind a proxy that says http"],
)
def test_on_an_https_site_the_known_device_cookie_is_secure_and_host_prefixed(
    make_app, base_url: str, client_url: str
) -> None:
    app = make_app(BASE_URL=base_url)
    admin = app.test_client(base_url=client_url)
    response = signup_admin(admin)
    assert response.status_code == 303
    name, _, attributes = known_device_cookie(response)
    assert name == "__Host-known_device"
    assert "secure" in attributes and "httponly" in attributes
    assert attributes["path"] == "/" and "domain" not in attributes


def test_the_known_device_cookie_remembers_the_five_newest_accounts(cast: Cast) -> None:
    people = [ADMIN, AUTHOR, OTHER]
    for n in range(3):
        person = Person(f"extra{n}", f"extra{n}@example.com", f"extra passphrase {n}")
        created = create_author(cast.admin, person.username, password=person.password)
        assert created.status_code == 303
        people.append(person)
    browser = browser_at(cast, OWNER_ADDRESS)
    for person in people:  # admin first, so admin is the one forgotten
        assert login(browser, person.username, person.password).status_code == 303
        assert logout(browser).status_code == 303
    for person in (ADMIN, AUTHOR):
        add_failures(cast.app, account_key(cast.app, person), 20, utc_ago(seconds=0))
    wait = auth.MAX_WAIT_SECONDS
    assert_throttled(login(browser, ADMIN.username, ADMIN.password), "admin", at_most=wait)
    assert login(browser, AUTHOR.username, AUTHOR.password).status_code == 303


def test_changing_the_password_is_throttled_even_from_a_known_browser(cast: Cast) -> None:
    # A stolen session comes with its browser's cookies: the account-wide count still guards
    # the current password, so a stranger's failures may delay a change (never a sign-in).
    assert auth.KNOWN_DEVICE_COOKIE in cast.author.cookies
    stranger_fails(cast, times=auth.ACCOUNT_FREE_FAILURES)
    response = change_password(cast.author, AUTHOR.password, "a brand new passphrase")
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 30
    assert "Too many wrong passwords" in field_error(response, "current_password")


# --- signing out -------------------------------------------------------------------------


def test_sign_out_ends_the_session_on_the_server(cast: Cast) -> None:
    cookies = dict(cast.author.cookies)
    response = logout(cast.author)
    assert response.status_code == 303 and response.location == "/"
    assert not is_signed_in(cast.author)
    replay = cast.app.test_client()
    replay.cookies.update(cookies)
    assert not is_signed_in(replay)
    assert replay.get("/drafts").status_code == 303


def test_sign_out_is_a_post_with_a_csrf_token(cast: Cast) -> None:
    assert cast.author.get("/logout").status_code == 405
    assert cast.author.post("/logout", data={}).status_code == 403
    assert is_signed_in(cast.author)


# --- where sign-in leads -----------------------------------------------------------------

PRIVATE_PAGES = ["/posts/new", "/drafts", "/account", "/admin/users", "/drafts?page=1"]


@pytest.mark.parametrize("path", PRIVATE_PAGES)
def test_private_pages_send_visitors_to_sign_in_and_back(shared_cast: Cast, path: str) -> None:
    visitor = shared_cast.app.test_client()
    response = visitor.get(path)
    assert response.status_code == 303
    assert response.location == "/login?next=" + quote(path, safe="")
    back = login(visitor, ADMIN.username, ADMIN.password, next=quote(path, safe=""))
    assert back.status_code == 303
    assert back.location == path


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "http:evil.example",
        "javascript:alert(1)",
        "/%0d%0aLocation:%20https://evil.example",
        "%2F%2Fevil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "/\t/evil.example",
        " //evil.example",
        "evil.example",
    ],
)
@pytest.mark.parametrize("via", ["query", "form"])
def test_next_never_leads_off_the_site(shared_cast: Cast, target: str, via: str) -> None:
    client = shared_cast.app.test_client()
    if via == "query":
        response = login(client, AUTHOR.username, AUTHOR.password, next=quote(target, safe=""))
    else:
        values = form_of(client.get("/login"), 'form[action="/login"]')
        values.update(login=AUTHOR.username, password=AUTHOR.password, next=target)
        response = client.post("/login", data=values)
    assert response.status_code == 303
    location = response.location
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert location == "/"


def test_a_signed_in_visitor_is_sent_on_from_the_sign_in_page(cast: Cast) -> None:
    response = cast.author.get("/login?next=%2Fdrafts")
    assert response.status_code == 303 and response.location == "/drafts"
    assert cast.author.get("/login?next=%2F%2Fevil.example").location == "/"


# --- the account page --------------------------------------------------------------------


def test_display_name_and_bio_can_be_changed(cast: Cast) -> None:
    values = form_of(cast.author.get("/account"), 'form[action="/account"]')
    values.update(display_name="Alice Liddell 🐇", bio="Writes about rabbit holes.")
    response = cast.author.post("/account", data=values)
    assert response.status_code == 303
    page = cast.anonymous.get("/authors/alice")
    assert page.html.h1.get_text(strip=True) == "Alice Liddell 🐇"
    assert "Writes about rabbit holes." in page.text
    shown = form_of(cast.author.get("/account"), 'form[action="/account"]')
    assert shown["display_name"] == "Alice Liddell 🐇"


def test_a_too_long_display_name_keeps_what_was_typed(cast: Cast) -> None:
    values = form_of(cast.author.get("/account"), 'form[action="/account"]')
    values.update(display_name="n" * 81, bio="My <b>bio</b>\nsecond line")
    response = cast.author.post("/account", data=values)
    assert response.status_code == 422
    assert "too long" in field_error(response, "display_name")
    shown = response.form_values('form[action="/account"]')
    assert shown["display_name"] == "n" * 81
    assert shown["bio"] == "My <b>bio</b>\nsecond line"
    assert get_user(cast.app, AUTHOR.username).display_name == AUTHOR.display_name


def change_password(client: TestClient, current: str, new: str, confirm: str | None = None):
    values = form_of(client.get("/account"), 'form[action="/account/password"]')
    values.update(
        current_password=current, password=new, confirm=new if confirm is None else confirm
    )
    return client.post("/account/password", data=values)


@pytest.mark.parametrize(
    ("current", "new", "confirm", "field"),
    [
        ("not my password", "a new passphrase", None, "current_password"),
        (AUTHOR.password, "short", None, "password"),
        (AUTHOR.password, "a new passphrase", "a different one", "confirm"),
    ],
)
def test_a_password_change_needs_the_current_password_and_a_good_new_one(
    cast: Cast, current: str, new: str, confirm: str | None, field: str
) -> None:
    response = change_password(cast.author, current, new, confirm)
    assert response.status_code == 422
    assert field_error(response, field)
    assert login(cast.app.test_client(), AUTHOR.username, AUTHOR.password).status_code == 303


def test_changing_the_password_signs_out_other_devices(cast: Cast) -> None:
    laptop = cast.app.test_client()
    assert login(laptop, AUTHOR.username, AUTHOR.password).status_code == 303
    new = "a brand new passphrase ✨"
    response = change_password(cast.author, AUTHOR.password, new)
    assert response.status_code == 303
    assert is_signed_in(cast.author)
    assert not is_signed_in(laptop)
    assert login(laptop, AUTHOR.username, AUTHOR.password).status_code == 422
    assert login(laptop, AUTHOR.username, new).status_code == 303


# --- administering users -----------------------------------------------------------------


def deactivate(admin_client: TestClient, app: App, username: str) -> TestResponse:
    user_id = get_user(app, username).id
    page = admin_client.get("/admin/users")
    action = f"/admin/users/{user_id}/deactivate"
    return admin_client.post(action, data=form_of(page, f'form[action="{action}"]'))


def test_admins_list_users_and_add_authors(cast: Cast) -> None:
    page = cast.admin.get("/admin/users")
    assert page.status_code == 200
    listed = [row.td.get_text(" ", strip=True) for row in page.html.select("tbody tr")]
    assert [name.split()[0] for name in listed] == ["admin", "alice", "bob"]
    response = create_author(cast.admin, "carol", display_name="Carol C")
    assert response.status_code == 303 and response.location == "/admin/users"
    carol = get_user(cast.app, "carol")
    assert carol.role == "author" and carol.display_name == "Carol C"
    assert "carol" in cast.admin.get("/admin/users").text
    client = cast.app.test_client()
    assert login(client, "carol", "author passphrase 1").status_code == 303
    assert client.get("/admin/users").status_code == 403


@pytest.mark.parametrize(
    ("username", "email", "field"),
    [
        (AUTHOR.username, "new@example.com", "username"),
        ("newbie", AUTHOR.email.upper(), "email"),
        ("x", "newbie@example.com", "username"),
    ],
)
def test_adding_a_user_with_errors_keeps_what_was_typed(
    shared_cast: Cast, username: str, email: str, field: str
) -> None:
    response = create_author(shared_cast.admin, username, email, display_name="New Person")
    assert response.status_code == 422
    assert field_error(response, field)
    shown = response.form_values('form[action="/admin/users"]')
    assert (shown["username"], shown["email"], shown["display_name"]) == (
        username,
        email,
        "New Person",
    )


def test_a_bad_role_is_an_error_beside_its_field(shared_cast: Cast) -> None:
    response = create_author(shared_cast.admin, "newbie", role="owner")
    assert response.status_code == 422
    assert field_error(response, "role") == "Choose administrator, editor, author or contributor."


@pytest.mark.parametrize("who", ["anonymous", "author"])
def test_only_admins_may_add_users(cast: Cast, who: str) -> None:
    client = cast.client(who)
    token = csrf_token(client)
    response = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "username": "sneaky",
            "email": "sneaky@example.com",
            "password": "sneaky passphrase",
            "confirm": "sneaky passphrase",
            "role": "admin",
        },
    )
    assert response.status_code == (303 if who == "anonymous" else 403)
    assert get_user(cast.app, "sneaky") is None


def test_deactivating_an_author_ends_their_sessions_at_once(any_db_cast: Cast) -> None:
    assert is_signed_in(any_db_cast.author)
    response = deactivate(any_db_cast.admin, any_db_cast.app, AUTHOR.username)
    assert response.status_code == 303
    assert "Deactivated" in any_db_cast.admin.get("/admin/users").text
    drafts = any_db_cast.author.get("/drafts")
    assert drafts.status_code == 303 and drafts.location.startswith("/login?next=")
    assert not is_signed_in(any_db_cast.author)
    assert login(any_db_cast.author, AUTHOR.username, AUTHOR.password).status_code == 422
    assert is_signed_in(any_db_cast.other)


def test_a_reactivated_author_can_sign_in_again(cast: Cast) -> None:
    deactivate(cast.admin, cast.app, AUTHOR.username)
    user_id = get_user(cast.app, AUTHOR.username).id
    action = f"/admin/users/{user_id}/activate"
    page = cast.admin.get("/admin/users")
    assert (
        cast.admin.post(action, data=form_of(page, f'form[action="{action}"]')).status_code == 303
    )
    assert login(cast.author, AUTHOR.username, AUTHOR.password).status_code == 303


def test_a_deactivated_user_whose_session_survived_is_still_anonymous(cast: Cast) -> None:
    with get_database(cast.app).write() as db:
        db.scalar(select(User).where(User.username == AUTHOR.username)).is_active = False
    assert cast.author.get("/drafts").status_code == 303
    assert not is_signed_in(cast.author)


def test_admins_cannot_deactivate_themselves_nor_authors_anyone(cast: Cast) -> None:
    admin_id = get_user(cast.app, ADMIN.username).id
    token = csrf_token(cast.admin)
    response = cast.admin.post(f"/admin/users/{admin_id}/deactivate", data={"csrf_token": token})
    assert response.status_code == 403
    bob_id = get_user(cast.app, OTHER.username).id
    token = csrf_token(cast.author)
    response = cast.author.post(f"/admin/users/{bob_id}/deactivate", data={"csrf_token": token})
    assert response.status_code == 403
    assert get_user(cast.app, ADMIN.username).is_active
    assert get_user(cast.app, OTHER.username).is_active
    assert (
        cast.admin.post(
            "/admin/users/9999/deactivate", data={"csrf_token": csrf_token(cast.admin)}
        ).status_code
        == 404
    )


# --- behind a reverse proxy (#21) ---------------------------------------------------------

PROXY = "10.0.0.5"


@pytest.fixture
def proxied_cast(tmp_path: Path) -> Iterator[Cast]:
    """The blog behind a trusted reverse proxy at PROXY."""
    app = make_blog_app(tmp_path, overrides={"TRUSTED_PROXIES": f"{PROXY}, ::1"})
    yield make_cast(app)
    get_database(app).dispose()


def through_proxy(cast: Cast, client_address: str, claimed: str = "") -> TestClient:
    """Give a browser at `client_address` whose requests reach the site through the proxy."""
    forwarded = f"{claimed}, {client_address}" if claimed else client_address
    return cast.app.test_client(
        environ_overrides={"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": forwarded}
    )


def crowd_failures(cast: Cast, address: str) -> None:
    """Give `address` as many recent failures as it may have before it waits."""
    for n in range(auth.ADDRESS_FREE_FAILURES):
        add_failures(cast.app, f"guess{n}", 1, utc_ago(seconds=1), address=address)


def test_behind_the_proxy_each_reader_has_their_own_failure_count(proxied_cast: Cast) -> None:
    crowd_failures(proxied_cast, STRANGER_ADDRESS)
    stranger = through_proxy(proxied_cast, STRANGER_ADDRESS)
    assert_throttled(login(stranger, AUTHOR.username, AUTHOR.password), "alice", at_most=30)
    # Another reader through the same proxy is not lumped in with the stranger.
    owner = through_proxy(proxied_cast, OWNER_ADDRESS)
    assert login(owner, AUTHOR.username, AUTHOR.password).status_code == 303
    # And a failure is recorded under the reader's address, never the proxy's.
    fail_to_sign_in(through_proxy(proxied_cast, NEW_ADDRESS), "nobody-here", 1)
    with get_database(proxied_cast.app).session() as db:
        addresses = set(db.scalars(select(LoginAttempt.remote_addr)))
    assert NEW_ADDRESS in addresses and PROXY not in addresses


def test_a_reader_cannot_escape_the_throttle_by_claiming_another_address(
    proxied_cast: Cast,
) -> None:
    crowd_failures(proxied_cast, STRANGER_ADDRESS)
    # Its own X-Forwarded-For, passed along by the proxy, stays to the left: not believed.
    disguised = through_proxy(proxied_cast, STRANGER_ADDRESS, claimed=OWNER_ADDRESS)
    assert_throttled(login(disguised, AUTHOR.username, AUTHOR.password), "alice", at_most=30)


def test_forwarded_headers_from_anyone_but_the_proxy_are_ignored(proxied_cast: Cast) -> None:
    crowd_failures(proxied_cast, STRANGER_ADDRESS)
    spoofing = proxied_cast.app.test_client(
        environ_overrides={"REMOTE_ADDR": STRANGER_ADDRESS, "HTTP_X_FORWARDED_FOR": OWNER_ADDRESS}
    )
    assert_throttled(login(spoofing, AUTHOR.username, AUTHOR.password), "alice", at_most=30)


def test_a_forwarded_host_is_still_checked_against_allowed_hosts(proxied_cast: Cast) -> None:
    client = proxied_cast.app.test_client(
        environ_overrides={"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_HOST": "evil.example"}
    )
    assert client.get("/").status_code == 400
    secure = proxied_cast.app.test_client(
        environ_overrides={"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_PROTO": "https"}
    )
    signed_in = login(secure, AUTHOR.username, AUTHOR.password)
    assert signed_in.status_code == 303
    session_cookie = next(
        value for name, value in signed_in.headers.items() if name.lower() == "set-cookie"
        and value.startswith("__Host-session=")
    )  # fmt: skip
    assert "; Secure" in session_cookie
