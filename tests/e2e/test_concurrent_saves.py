"""Concurrent saves through a real gunicorn: of N saves racing from one revision, one wins.

Eight browsers (separate cookie jars, signed in over HTTP through the real forms) open
the editor of the same post, so all hold the same `base_revision`, then send their
saves at the same instant. Exactly one save is applied (303); every other one answers
409 with its author's text intact in the form, ready to save again. Four sync workers
take the requests, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from tests.conftest import POSTGRES_URL, postgres_unavailable_reason, reset_postgres
from tests.http_answers import Answer, read_answer

if TYPE_CHECKING:
    from tests.conftest import ServerHandle

CLIENTS = 8
# Each round on PostgreSQL shows the bug below about half the time: ten all but guarantee it.
ROUNDS = 10
WORKERS = 4
TIMEOUT = 20.0

ADMIN = ("admin", "admin@example.com", "admin passphrase 1")
AUTHOR = ("alice", "alice@example.com", "alice passphrase 1")


@dataclass
class Browser:
    """A client with its own cookies, speaking HTTP/1.1 to the server over http.client."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        connection.connect()
        return connection

    def send(
        self,
        method: str,
        path: str,
        fields: dict[str, str] | None = None,
        *,
        connection: http.client.HTTPConnection | None = None,
    ) -> Answer:
        """Send one request (on `connection` if given, already open) and read the answer."""
        headers = {"Host": f"127.0.0.1:{self.port}", "Accept": "text/html"}
        body = None
        if fields is not None:
            body = urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = connection or self.connect()
        try:
            connection.request(method, path, body=body, headers=headers)
            return read_answer(connection.getresponse(), self.cookies)
        finally:
            connection.close()

    def get(self, path: str) -> Answer:
        return self.send("GET", path)

    def submit(self, page: str, selector: str, action: str, **changes: str) -> Answer:
        """Load `page`, fill in the form `selector` (with its CSRF token) and send it."""
        answer = self.get(page)
        assert answer.status == 200, f"GET {page} answered {answer.status}"
        values = answer.form(selector)
        values.update(changes)
        return self.send("POST", action, values)


def sign_in(port: int, login: str, password: str) -> Browser:
    browser = Browser(port)
    answer = browser.submit(
        "/login", 'form[action="/login"]', "/login", login=login, password=password
    )
    assert answer.status == 303, f"sign-in of {login} answered {answer.status}"
    return browser


def set_up_blog(port: int) -> tuple[Browser, Browser]:
    """Create the admin (through /setup) and an author; give both signed-in browsers."""
    admin = Browser(port)
    username, email, password = ADMIN
    answer = admin.submit(
        "/setup",
        'form[action="/setup"]',
        "/setup",
        username=username,
        email=email,
        display_name="Ada Admin",
        password=password,
        confirm=password,
    )
    assert answer.status == 303, f"setup answered {answer.status}"
    username, email, password = AUTHOR
    answer = admin.submit(
        "/admin/users",
        'form[action="/admin/users"]',
        "/admin/users",
        username=username,
        email=email,
        display_name="Alice Author",
        password=password,
        confirm=password,
        role="author",
    )
    assert answer.status == 303, f"adding an author answered {answer.status}"
    return admin, sign_in(port, AUTHOR[0], AUTHOR[2])


def revision_numbers(browser: Browser, slug: str) -> list[int]:
    """Give the numbers in the post's history, as its page lists them (newest first)."""
    answer = browser.get(f"/posts/{slug}/revisions")
    assert answer.status == 200, answer.status
    cells = answer.html.select("main table tbody tr td:first-child a")
    return [int(cell.get_text(strip=True).lstrip("#")) for cell in cells]


def race(browsers: list[Browser], slug: str, round_number: int) -> list[tuple[str, Answer]]:
    """Open the editor in every browser, then send every save at the same instant."""
    path = f"/posts/{slug}/edit"
    forms: list[dict[str, str]] = []
    for index, browser in enumerate(browsers):
        editor = browser.get(path)
        assert editor.status == 200, editor.status
        values = editor.form("#post-form")
        values["body"] = (
            f"Round {round_number}, browser {index}: <words> & “quotes” that must survive.\n\n"
            f"Second paragraph {round_number}-{index}."
        )
        values["title"] = f"Race round {round_number} by {index}"
        forms.append(values)
    bases = {values["base_revision"] for values in forms}
    assert len(bases) == 1, f"the editors did not all start from one revision: {bases}"

    barrier = threading.Barrier(len(browsers), timeout=TIMEOUT)
    results: list[tuple[str, Answer] | BaseException | None] = [None] * len(browsers)

    # Connected only now: a sync worker holding an idle connection serves nothing else.
    connections = [browser.connect() for browser in browsers]

    def save(index: int) -> None:
        values, connection = forms[index], connections[index]
        try:
            barrier.wait()
            results[index] = (
                values["body"],
                browsers[index].send("POST", path, values, connection=connection),
            )
        except BaseException as error:  # reported by the test, not lost in the thread
            results[index] = error

    threads = [threading.Thread(target=save, args=(i,)) for i in range(len(browsers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT + 5)
    errors = [r for r in results if not isinstance(r, tuple)]
    assert not errors, f"some saves did not get an answer: {errors!r}"
    return results  # type: ignore[return-value]


@pytest.fixture(
    params=[
        "sqlite",
        "postgres",
    ]
)
def server(request: pytest.FixtureRequest, gunicorn_factory: Callable[..., Any]) -> ServerHandle:
    """A gunicorn with four workers on a fresh SQLite file, then on PostgreSQL."""
    overrides: dict[str, str] = {}
    if request.param == "postgres":
        reason = postgres_unavailable_reason()
        if reason:
            pytest.skip(reason)
        reset_postgres()
        overrides["DATABASE_URL"] = POSTGRES_URL
    return gunicorn_factory(overrides, workers=WORKERS)


def test_of_simultaneous_saves_exactly_one_wins_and_the_others_get_409(
    server: ServerHandle,
) -> None:
    admin, author = set_up_blog(server.port)
    created = author.submit(
        "/posts/new",
        "#post-form",
        "/posts",
        title="Contested",
        body="The first text.",
        tags="race",
        status="published",
    )
    assert created.status == 303, created.status
    slug = created.headers["location"].rsplit("/", 1)[-1]
    browsers = [author, admin]
    browsers += [
        sign_in(server.port, *(AUTHOR[::2] if i % 2 else ADMIN[::2])) for i in range(2, CLIENTS)
    ]
    assert len({b.cookies.get("session") for b in browsers}) == CLIENTS

    numbers = revision_numbers(author, slug)
    rounds: list[list[int]] = []
    last_losers: list[tuple[Browser, Answer]] = []
    for round_number in range(1, ROUNDS + 1):
        results = race(browsers, slug, round_number)
        statuses = sorted(answer.status for _, answer in results)
        assert not [s for s in statuses if s >= 500], server.stderr_text()[-3000:]
        rounds.append(statuses)

        winners = [text for text, answer in results if answer.status == 303]
        after = revision_numbers(author, slug)
        assert len(after) == len(numbers) + 1, f"round {round_number}: {numbers} -> {after}"
        assert after[1:] == numbers
        numbers = after
        current = author.get(f"/posts/{slug}/edit").form("#post-form")
        assert [current["body"]] == winners
        assert current["base_revision"] == str(numbers[0])

        last_losers = []
        for browser, (text, answer) in zip(browsers, results, strict=True):
            if answer.status != 409:
                continue
            kept = answer.form("main form")
            assert kept["body"] == text, "a losing author's text is not in the 409 form"
            assert kept["base_revision"] == str(numbers[0])
            last_losers.append((browser, answer))

    # Every round: one save applied, every other one refused with the conflict page.
    assert rounds == [[303] + [409] * (CLIENTS - 1)] * ROUNDS

    # A loser who saves the form the 409 page gave back wins now.
    browser, answer = last_losers[0]
    kept = answer.form("main form")
    again = browser.send("POST", f"/posts/{slug}/edit", kept)
    assert again.status == 303, again.status
    assert author.get(f"/posts/{slug}/edit").form("#post-form")["body"] == kept["body"]
    assert len(revision_numbers(author, slug)) == len(numbers) + 1

    assert "Traceback" not in server.stderr_text(), server.stderr_text()[-3000:]
