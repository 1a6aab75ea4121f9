"""Passwords: Argon2id at OWASP's parameters with a salt per hash, long and Unicode passwords,
one answer (and one time) for every failed sign-in, and throttling that engages after five
failures and resets after a success.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import Type, extract_parameters
from blog.conftest import (
    ADMIN,
    create_author,
    csrf_token,
    form_of,
    login,
    make_blog_app,
    signup_admin,
)
from sqlalchemy import select

from pyproject.blog.db import get_database
from pyproject.blog.models import LoginAttempt, User, set_clock
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

from .live import Live, LiveClient

OWASP_MEMORY_KIB = 19456
OWASP_TIME_COST = 2
PASSWORD = "a fine passphrase"
TIMING_TRIES = 15


@dataclass
class Blog:
    app: App
    admin: TestClient

    def add(self, name: str, password: str = PASSWORD) -> TestResponse:
        return create_author(self.admin, name, password=password)

    def hash_of(self, name: str) -> str:
        with get_database(self.app).read() as db:
            return db.scalar(select(User.password_hash).where(User.username == name))


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blog]:
    app = make_blog_app(tmp_path_factory.mktemp("passwords"))
    admin = app.test_client()
    signup_admin(admin)
    yield Blog(app, admin)
    get_database(app).dispose()


def attempt(
    client: TestClient, typed: str, password: str, address: str, form: dict | None = None
) -> TestResponse:
    """Send the sign-in form (read from the page unless given) from a client address."""
    values = dict(form or form_of(client.get("/login"), 'form[action="/login"]'))
    values.update(login=typed, password=password)
    environ = client.build_environ("POST", "/login", data=values)
    environ["REMOTE_ADDR"] = address
    return client.run(environ)


# --- how passwords are kept ----------------------------------------------------------------------


def test_hashes_are_argon2id_at_owasp_parameters_with_a_salt_each(blog: Blog) -> None:
    names = ["salt1", "salt2", "salt3"]
    for name in names:
        assert blog.add(name).status_code == 303
    hashes = [blog.hash_of(name) for name in [*names, ADMIN.username]]
    salts = set()
    for stored in hashes:
        parameters = extract_parameters(stored)
        assert parameters.type is Type.ID, stored
        assert parameters.memory_cost >= OWASP_MEMORY_KIB
        assert parameters.time_cost >= OWASP_TIME_COST
        assert parameters.parallelism >= 1
        assert parameters.salt_len >= 16
        salts.add(stored.split("$")[4])
    assert len(set(hashes)) == len(hashes), "the same password gave the same hash"
    assert len(salts) == len(hashes), "two hashes share a salt"


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("long", "x" * 1023 + "y"),
        ("unicode", "pässwörd ✓ 密码 🔑 Ωμέγα"),
        ("spaced", "  spaces at both ends  "),
        ("emoji", "🔑" * 300),
        ("rtl", "كلمة السر \u202e secret"),
    ],
)
def test_long_and_unicode_passwords_work_exactly(blog: Blog, name: str, password: str) -> None:
    assert blog.add(name, password).status_code == 303
    assert login(blog.app.test_client(), name, password).status_code == 303
    for wrong in (password[:-1], password.strip(), password + "x", password.upper()):
        if wrong != password:
            assert login(blog.app.test_client(), name, wrong).status_code in (422, 429), wrong


def test_a_password_over_1024_characters_is_refused(blog: Blog) -> None:
    assert blog.add("toolong", "x" * 1025).status_code == 422
    assert blog.add("justright", "x" * 1024).status_code == 303
    assert login(blog.app.test_client(), "justright", "x" * 1024 + "y").status_code == 422


# --- one answer for every failure -------------------------------------------------------------


def normalised(response: TestResponse, typed: str, token: str) -> str:
    text = response.data.decode().replace(token, "TOKEN")
    return re.sub(r'value="' + re.escape(typed) + '"', 'value="LOGIN"', text)


def test_every_failed_sign_in_gets_the_same_answer(blog: Blog) -> None:
    assert blog.add("same", PASSWORD).status_code == 303
    assert blog.add("gone", PASSWORD).status_code == 303
    with get_database(blog.app).read() as db:
        gone = db.scalar(select(User.id).where(User.username == "gone"))
    token = csrf_token(blog.admin, "/admin/users")
    assert (
        blog.admin.post(f"/admin/users/{gone}/deactivate", data={"csrf_token": token}).status_code
        == 303
    )
    tries = {
        "unknown user": ("nosuchuser", PASSWORD),
        "wrong password": ("same", "not the password"),
        "unknown email": ("nobody@example.com", PASSWORD),
        "wrong password by email": ("same@example.com", "not the password"),
        "deactivated, right password": ("gone", PASSWORD),
        "empty password": ("same", ""),
    }
    answers = {}
    for i, (case, (typed, password)) in enumerate(tries.items()):
        client = blog.app.test_client()
        response = attempt(client, typed, password, f"10.9.0.{i}")
        token = csrf_token(client, "/login")
        headers = {
            k: v for k, v in response.headers.items() if k not in ("Set-Cookie", "Content-Length")
        }
        answers[case] = (response.status_code, headers, normalised(response, typed, token))
    first = next(iter(answers.values()))
    for case, answer in answers.items():
        assert answer[0] == first[0] == 422, case
        assert answer[1] == first[1], case
        assert answer[2] == first[2], case


def test_unknown_users_and_wrong_passwords_take_the_same_time(blog: Blog) -> None:
    """Medians of 15 interleaved tries each, within 10%; up to three rounds, because other
    work on a shared machine only adds noise, while a real difference shows every time."""
    names = [f"timed{i}" for i in range(TIMING_TRIES)]
    for name in names:
        assert blog.add(name).status_code == 303
    client = blog.app.test_client()
    form = form_of(client.get("/login"), 'form[action="/login"]')
    rounds = []
    for round_ in range(3):
        known, unknown = [], []
        for i, name in enumerate(names):
            for times, typed in ((known, name), (unknown, f"ghost{round_}x{i}")):
                address = f"10.{round_}.{i}.{len(times)}"
                started = time.perf_counter()
                response = attempt(client, typed, "wrong password", address, form)
                times.append(time.perf_counter() - started)
                assert response.status_code == 422
        a, b = statistics.median(known), statistics.median(unknown)
        rounds.append((a, b))
        if abs(a - b) / max(a, b) < 0.10:
            return
    pytest.fail(f"median known/unknown times differ by more than 10% in every round: {rounds}")


# --- throttling ------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Iterator[list[timedelta]]:
    """A clock the test moves forward by appending to the list it gives."""
    shift: list[timedelta] = [timedelta(0)]
    set_clock(lambda: datetime.now(UTC) + sum(shift, timedelta(0)))
    yield shift
    set_clock(None)


@pytest.mark.parametrize("who", ["known", "unknown"])
def test_throttling_engages_after_five_failures_and_resets_after_a_success(
    blog: Blog, clock, who: str
) -> None:
    name = f"throttled-{who}"
    if who == "known":
        assert blog.add(name).status_code == 303
    client = blog.app.test_client()
    address = f"10.8.{len(who)}.1"
    for _ in range(5):
        assert attempt(client, name, "wrong password", address).status_code == 422
    for password in ("wrong password", PASSWORD):
        refused = attempt(client, name, password, address)
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        assert 0 < wait <= 15 * 60
    if who == "unknown":
        return
    clock.append(timedelta(seconds=wait + 1))
    assert attempt(client, name, PASSWORD, address).status_code == 303
    other = blog.app.test_client()
    for _ in range(5):
        assert attempt(other, name, "wrong password", address).status_code == 422
    assert attempt(other, name, "wrong password", address).status_code == 429


def test_one_address_is_throttled_after_twenty_failures(blog: Blog) -> None:
    client = blog.app.test_client()
    address = "10.7.0.1"
    for i in range(20):
        assert attempt(client, f"nobody{i}", "wrong password", address).status_code == 422
    assert attempt(client, ADMIN.username, ADMIN.password, address).status_code == 429
    assert attempt(client, ADMIN.username, ADMIN.password, "10.7.0.2").status_code == 303


def test_guessing_the_current_password_is_throttled(blog: Blog) -> None:
    assert blog.add("guessed").status_code == 303
    client = blog.app.test_client()
    assert login(client, "guessed", PASSWORD).status_code == 303
    token = csrf_token(client)
    statuses = []
    for i in range(6):
        data = {
            "csrf_token": token,
            "current_password": f"guess number {i}",
            "password": "a new passphrase",
            "confirm": "a new passphrase",
        }
        statuses.append(client.post("/account/password", data=data).status_code)
    assert statuses == [422] * 5 + [429]


# --- over a real gunicorn ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "header",
    [
        "X-Forwarded-For: 9.9.9.9",
        "Forwarded: for=9.9.9.9",
        "X-Real-IP: 9.9.9.9",
        "Client-IP: 9.9.9.9",
    ],
)
def test_gunicorn_counts_failures_by_the_real_address(live: Live, live_log, header: str) -> None:
    client = LiveClient(live.server)
    page = client.get("/login")
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.body).group(1).decode()
    name, value = header.split(": ")
    account = f"spoof-{name.lower()}"
    response = client.post(
        "/login",
        data={"csrf_token": token, "login": account, "password": "wrong", "next": ""},
        headers={name: value},
    )
    assert response.status == 422
    with get_database(live.world.app).read() as db:
        addresses = set(
            db.scalars(select(LoginAttempt.remote_addr).where(LoginAttempt.account == account))
        )
    assert addresses == {"127.0.0.1"}
