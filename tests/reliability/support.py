"""What the reliability tests share: signed-in HTTP clients, load runners, database checks.

Clients speak HTTP/1.1 through http.client (standard library only), each with its own
cookies, so each has its own server-side session. Writes carry a unique marker in the
title and body; afterwards the database is read directly and every marker is accounted
for: an acknowledged write (303) must be there exactly once, and whole.
"""

from __future__ import annotations

import http.client
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import create_engine, make_url, text

from tests.http_answers import Answer, read_answer

TIMEOUT = 30.0
ADMIN_NAME, ADMIN_EMAIL, ADMIN_PASSWORD = "admin", "admin@example.com", "admin passphrase 1"
MARKER_RE = re.compile(r"\[([a-z][0-9a-z-]*)\]")
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
# What a client sees when a worker dies under it, or nothing listens on the port.
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


class Client:
    """One browser: its own cookies and one kept-open connection (reopened when closed).

    gunicorn's sync workers close the connection after each response, so in practice
    http.client opens a new one for every request, as a browser would.
    """

    def __init__(self, port: int, timeout: float = TIMEOUT) -> None:
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.csrf_token = ""
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def send(self, method: str, path: str, fields: dict[str, str] | None = None) -> Answer:
        """Send one request and read the answer; a connection error closes the connection."""
        headers = {"Accept": "text/html"}
        body = None
        if fields is not None:
            body = urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self._connection is None:
            self._connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=self.timeout
            )
        try:
            self._connection.request(method, path, body=body, headers=headers)
            return read_answer(self._connection.getresponse(), self.cookies)
        except CONNECTION_ERRORS:
            self.close()
            raise

    def get(self, path: str) -> Answer:
        return self.send("GET", path)

    def load_token(self, path: str) -> Answer:
        """GET a page with a form and keep its CSRF token."""
        answer = self.get(path)
        assert answer.status == 200, f"GET {path} answered {answer.status}"
        found = _CSRF_RE.search(answer.text)
        assert found, f"no csrf_token in the form of {path}"
        self.csrf_token = found.group(1)
        return answer

    def post(self, path: str, fields: dict[str, str]) -> Answer:
        return self.send("POST", path, {**fields, "csrf_token": self.csrf_token})

    def sign_in(self, login: str = ADMIN_NAME, password: str = ADMIN_PASSWORD) -> Client:
        """Sign in through the real form; afterwards hold the editor's CSRF token."""
        self.load_token("/login")
        answer = self.post("/login", {"login": login, "password": password, "next": ""})
        assert answer.status == 303, f"sign-in of {login} answered {answer.status}"
        self.load_token("/posts/new")
        return self

    def create_post(self, fields: dict[str, str]) -> Answer:
        """POST /posts with the editor's fields (a new post: no base revision)."""
        values = {
            "summary": "",
            "tags": "",
            "slug": "",
            "status": "draft",
            "publish_at": "",
            "base_revision": "",
            **fields,
        }
        return self.post("/posts", values)


def set_up_admin(port: int) -> Client:
    """Create the first account through /setup; give its signed-in client."""
    admin = Client(port)
    admin.load_token("/setup")
    answer = admin.post(
        "/setup",
        {
            "username": ADMIN_NAME,
            "email": ADMIN_EMAIL,
            "display_name": "Ada Admin",
            "password": ADMIN_PASSWORD,
            "confirm": ADMIN_PASSWORD,
        },
    )
    assert answer.status == 303, f"setup answered {answer.status}"
    admin.load_token("/posts/new")
    return admin


def client_tags(client: int) -> list[str]:
    """Give the tags a client's posts carry: one every post shares, one of the client's own."""
    return ["reliability", f"client-{client:02d}"]


def seed_tags(admin: Client, clients: int) -> list[str]:
    """Create every tag the load will use, in posts of their own; give those posts' slugs.

    Two transactions that both create a new tag collide on PostgreSQL (a separate test
    shows it); creating the tags first keeps the load tests about their own subject.
    """
    names = sorted({name for c in range(clients) for name in client_tags(c)})
    slugs = []
    for start in range(0, len(names), 10):
        answer = admin.create_post(
            {
                "title": f"Tags seed {start}",
                "body": "Seeds the tags of the load.",
                "status": "published",
                "tags": ", ".join(names[start : start + 10]),
            }
        )
        assert answer.status == 303, (answer.status, answer.form_errors)
        slugs.append(answer.location.rsplit("/", 1)[-1])
    return slugs


def signed_in_clients(port: int, count: int) -> list[Client]:
    """Give `count` clients of the admin account, each signed in with its own session."""
    clients = [Client(port) for _ in range(count)]
    run_threads([c.sign_in for c in clients])
    assert len({c.cookies.get("session") for c in clients}) == count
    return clients


def run_threads(tasks: Iterable[Callable[[], Any]], timeout: float = 180.0) -> list[Any]:
    """Run each task in its own thread; give their results; re-raise the first failure."""
    tasks = list(tasks)
    results: list[Any] = [None] * len(tasks)
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = tasks[index]()
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout} s"
    if failures:
        raise failures[0]
    return results


def all_at_once(count: int, send: Callable[[int], Any]) -> list[Any]:
    """Run `send(index)` in `count` threads released at the same instant; give the results."""
    barrier = threading.Barrier(count)

    def task(index: int) -> Any:
        barrier.wait()
        return send(index)

    return run_threads([lambda i=i: task(i) for i in range(count)])


# --- writes and what became of them --------------------------------------------------------


@dataclass
class Write:
    """One attempt to create a post, and what the client heard back (None: no answer)."""

    marker: str
    fields: dict[str, str]
    status: int | None = None
    location: str = ""
    error: str = ""
    form_errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 400


def post_fields(marker: str, client: int) -> dict[str, str]:
    """Give the editor's fields for a post identified by `marker` (in title and body)."""
    return {
        "title": f"Load test [{marker}]",
        "body": (
            f"Post [{marker}] from client {client}: *emphasis*, `code` & <angle> text.\n\n"
            f"- one\n- two\n\nLast paragraph of [{marker}]."
        ),
        "tags": ", ".join(client_tags(client)),
        "status": "published" if client % 2 else "draft",
    }


def attempt(client: Client, write: Write) -> Write:
    """Send one creation; record its status, or the connection error that ended it."""
    started = time.monotonic()
    try:
        answer = client.create_post(write.fields)
    except CONNECTION_ERRORS as error:
        write.error = f"{type(error).__name__}: {error}"
        return write
    finally:
        write.seconds = time.monotonic() - started
    write.status = answer.status
    write.location = answer.location
    write.form_errors = answer.form_errors
    return write


@dataclass
class Tally:
    """Counts for a load run, printed for the report and used in assertion messages."""

    writes: list[Write] = field(default_factory=list)
    done: int = 0
    started: float = 0.0
    seconds: float = 0.0

    @property
    def statuses(self) -> Counter[str]:
        return Counter(str(w.status) if w.status else "no answer" for w in self.writes)

    @property
    def server_errors(self) -> list[Write]:
        return [w for w in self.writes if w.status is not None and w.status >= 500]

    @property
    def unanswered(self) -> list[Write]:
        return [w for w in self.writes if w.status is None]


def create_posts(
    clients: list[Client],
    count: int | None = None,
    *,
    seconds: float | None = None,
    retry_for: float = 0.0,
    tally: Tally | None = None,
) -> Tally:
    """Have the clients create `count` posts (or as many as fit in `seconds`), all at once.

    The clients start together and each takes the next number from a shared queue. With
    `retry_for`, a creation that got no answer is sent again (as a new attempt, with a
    new marker: the lost attempt may have been written) for up to that many seconds.
    `tally.done` counts the numbers finished so far, for a thread watching the progress.
    """
    tally = tally if tally is not None else Tally()
    lock = threading.Lock()
    numbers = iter(range(count if count is not None else 10**9))
    start = threading.Barrier(len(clients))
    deadline = None

    def work(index: int) -> None:
        nonlocal deadline
        start.wait()
        with lock:
            if deadline is None and seconds is not None:
                deadline = time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            given_up = time.monotonic() + retry_for
            for attempt_number in range(1000):
                marker = f"m{number:04d}-{attempt_number}"
                write = attempt(clients[index], Write(marker, post_fields(marker, index)))
                tally.writes.append(write)
                if write.status is not None or time.monotonic() > given_up:
                    break
                time.sleep(min(0.05 * (attempt_number + 1), 0.5))
            with lock:
                tally.done += 1

    tally.started = time.monotonic()
    run_threads([lambda i=i: work(i) for i in range(len(clients))])
    tally.seconds = time.monotonic() - tally.started
    return tally


# --- the database, read directly -------------------------------------------------------------


@dataclass
class StoredPost:
    id: int
    title: str
    slug: str
    body_md: str
    body_html: str
    tag_names: str
    view_count: int
    tag_slugs: set[str] = field(default_factory=set)
    saves: list[str] = field(default_factory=list)  # body_md of each 'save' revision

    @property
    def marker(self) -> str | None:
        found = MARKER_RE.search(self.title)
        return found.group(1) if found else None


def stored_posts(url: str) -> list[StoredPost]:
    """Give every post in the database with its tags and saved revisions."""
    counts = view_counts(url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            posts = {
                row.id: StoredPost(
                    row.id,
                    row.title,
                    row.slug,
                    row.body_md,
                    row.body_html,
                    row.tag_names,
                    counts.get(row.id, 0),
                )
                for row in connection.execute(
                    text("SELECT id, title, slug, body_md, body_html, tag_names FROM posts")
                )
            }
            for post_id, slug in connection.execute(
                text("SELECT pt.post_id, t.slug FROM post_tags pt JOIN tags t ON t.id = pt.tag_id")
            ):
                posts[post_id].tag_slugs.add(slug)
            for post_id, body in connection.execute(
                text("SELECT post_id, body_md FROM revisions WHERE kind = 'save'")
            ):
                posts[post_id].saves.append(body)
    finally:
        engine.dispose()
    return list(posts.values())


def view_counts(url: str) -> dict[int, int]:
    """Give every post's view count by post id, from wherever the site keeps them.

    SQLite sites keep them in a database of their own beside the site's (pyproject.blog.db).
    """
    if url.startswith("sqlite"):
        path = Path(f"{make_url(url).database}-views")
        if not path.exists():
            return {}
        connection = sqlite3.connect(path)
        try:
            return dict(connection.execute("SELECT post_id, views FROM post_views").fetchall())
        finally:
            connection.close()
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return dict(connection.execute(text("SELECT post_id, views FROM post_views")).all())
    finally:
        engine.dispose()


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def sqlite_integrity(url: str) -> str:
    """Give PRAGMA integrity_check's answer ("ok" when all is well) for a SQLite URL."""
    connection = sqlite3.connect(make_url(url).database)
    try:
        return "\n".join(str(row[0]) for row in connection.execute("PRAGMA integrity_check"))
    finally:
        connection.close()


def wholeness_problems(post: StoredPost, sent: dict[str, str]) -> list[str]:
    """Give what is missing or wrong in a stored post compared with what was sent."""
    problems = []
    names = [" ".join(t.split()) for t in sent["tags"].split(",") if t.strip()]
    if post.title != sent["title"]:
        problems.append(f"title {post.title!r}")
    if post.body_md != sent["body"]:
        problems.append("body_md differs")
    if not post.body_html.strip():
        problems.append("body_html empty")
    if post.tag_names != " ".join(names):
        problems.append(f"tag_names {post.tag_names!r}")
    if post.tag_slugs != set(names):
        problems.append(f"tags {sorted(post.tag_slugs)}")
    if sent["body"] not in post.saves:
        problems.append(f"no 'save' revision with its body ({len(post.saves)} saves)")
    return problems


def account_for(
    writes: list[Write], posts: list[StoredPost], ignore: Iterable[str] = ()
) -> dict[str, Any]:
    """Match writes to stored posts by marker; give counts and every problem found.

    Posts whose slug is in `ignore` (made by the test itself, before the load) are left out.
    """
    ignored = set(ignore)
    posts = [post for post in posts if post.slug not in ignored]
    by_marker: dict[str, list[StoredPost]] = {}
    for post in posts:
        by_marker.setdefault(post.marker or "", []).append(post)
    sent = {w.marker: w for w in writes}
    acknowledged = [w for w in writes if w.acknowledged]
    report: dict[str, Any] = {
        "requests": len(writes),
        "acknowledged": len(acknowledged),
        "present": sum(len(v) for k, v in by_marker.items() if k in sent),
        "lost": [w.marker for w in acknowledged if not by_marker.get(w.marker)],
        "duplicated": sorted(k for k, v in by_marker.items() if k in sent and len(v) > 1),
        "unacknowledged_present": sorted(
            w.marker for w in writes if not w.acknowledged and by_marker.get(w.marker)
        ),
        "strangers": sorted(p.slug for p in posts if p.marker not in sent),
        "broken": {},
    }
    for marker, found in by_marker.items():
        if marker in sent:
            for post in found:
                problems = wholeness_problems(post, sent[marker].fields)
                if problems:
                    report["broken"][marker] = problems
    return report


def server_trouble(stderr: str) -> list[str]:
    """Give the lines of a server's stderr that show a failure (tracebacks, lock errors)."""
    wanted = ("Traceback", "database is locked", "Error", "ERROR", "Exception")
    return [line for line in stderr.splitlines() if any(w in line for w in wanted)]


def summary(name: str, **counts: Any) -> None:
    """Print one line of counts, for whoever reads the run's output (-s)."""
    print(f"\nRELIABILITY {name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
