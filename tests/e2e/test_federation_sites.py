"""Two instances of the site federating, each a real gunicorn with its own database, its own
BASE_URL on its own loopback address (127.0.0.2 and 127.0.0.3) and its real job worker.

B's author (bob) stands in for a Mastodon account: the test finds A's blog through
WebFinger and sends bob's activities signed with bob's key from B's own database, as his
server would. A accepts; A publishes and B receives the Create (and the blog's Announce);
bob replies and the reply waits in A's moderation queue; A edits (B gets the Update), A
trashes (B gets the Delete); bob unfollows. Midway, A's worker is killed while a delivery
hangs on B, and started again: B acts on the Create once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyproject.blog import httpsig
from pyproject.blog.models import utcnow
from tests.e2e.conftest import ServerHandle, free_port, start_gunicorn
from tests.e2e.test_webmention_sites import publish, set_up, start_worker  # noqa: F401

AS2 = "application/activity+json"


@pytest.fixture
def two_sites(tmp_path: Path) -> Iterator[tuple[ServerHandle, ServerHandle]]:
    started: list[ServerHandle] = []
    for name, host in (("alpha", "127.0.0.2"), ("beta", "127.0.0.3")):
        port = free_port()
        folder = tmp_path / name
        folder.mkdir()
        started.append(
            start_gunicorn(
                {
                    "BASE_URL": f"http://{host}:{port}",
                    "OUTGOING_ALLOW_LOOPBACK": "true",
                    "OUTGOING_TIMEOUT": 8,
                    "JOB_RETRY_SECONDS": 1,
                    "FEDERATION_RETRY_SECONDS": 1,
                    "LOG_LEVEL": "INFO",
                    "INSTANCE_PATH": str(folder),
                },
                2,
                data_dir=folder,
                host=host,
                port=port,
            )
        )
    yield started[0], started[1]
    for server in started:
        if server.process.poll() is None:
            try:
                os.killpg(server.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        server.stop()


def fetch_json(url: str, accept: str = AS2) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def query(server: ServerHandle, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    database = sqlite3.connect(server.data_dir / "e2e.sqlite3", timeout=10)
    try:
        return database.execute(sql, args).fetchall()
    finally:
        database.close()


def private_key(server: ServerHandle, user: str) -> str:
    user_id = query(server, "SELECT id FROM users WHERE username = ?", user)[0][0]
    return query(
        server, "SELECT private_pem FROM federation_keys WHERE actor = ?", f"user:{user_id}"
    )[0][0]


def send_as(server: ServerHandle, user: str, inbox: str, activity: dict[str, Any]) -> int:
    """POST an activity to an inbox, signed with `user`'s key on `server` (his server's job)."""
    actor = f"{server.url}/authors/{user}"
    body = json.dumps(activity).encode()
    headers = httpsig.sign(
        "POST",
        inbox,
        body=body,
        key_id=f"{actor}#main-key",
        private_pem=private_key(server, user),
        now=utcnow(),
        headers={"Content-Type": AS2},
    )
    request = urllib.request.Request(inbox, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def received(server: ServerHandle, kind: str) -> list[tuple[str, str, int]]:
    """Give (activity id, outcome, status) of what `server`'s inboxes took of a kind."""
    return query(
        server,
        "SELECT activity_id, outcome, status FROM federation_inbox_log"
        " WHERE activity_type = ? ORDER BY id",
        kind,
    )


def wait_for(condition: Callable[[], Any], what: str, *servers: ServerHandle, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    pytest.fail(f"waited {timeout:.0f} s for {what}\n{state_of(*servers)}")


def state_of(*servers: ServerHandle) -> str:
    text = []
    for server in servers:
        for table in (
            "jobs",
            "federation_deliveries",
            "federation_followers",
            "federation_inbox_log",
        ):
            text.append(f"{server.url} {table}: {query(server, f'SELECT * FROM {table}')}")
        log = Path(server.env["INSTANCE_PATH"]) / "worker.log"
        text.append(log.read_text() if log.exists() else "(no worker log)")
    return "\n".join(text)[-20000:]


def acted_on(server: ServerHandle, kind: str) -> list[str]:
    """Give the ids of activities of a kind `server` acted on (a repeat is not acted on)."""
    return [
        a
        for a, outcome, status in received(server, kind)
        if status == 202 and outcome != "repeated"
    ]


def test_two_sites_follow_publish_reply_edit_trash_and_unfollow(
    two_sites: tuple[ServerHandle, ServerHandle],
    start_worker: Callable[[ServerHandle], subprocess.Popen[bytes]],  # noqa: F811
) -> None:
    alpha, beta = two_sites
    workers = {alpha.url: start_worker(alpha), beta.url: start_worker(beta)}
    ada = set_up(alpha, "Ada")
    set_up(beta, "Bob")  # bob, the author on B, stands in for a Mastodon account

    # Bob finds A's blog by its handle, as Mastodon's search does.
    host = urllib.parse.urlsplit(alpha.url).netloc
    finger = fetch_json(
        f"{alpha.url}/.well-known/webfinger?resource=acct:blog@{host}", "application/jrd+json"
    )
    blog_uri = next(link["href"] for link in finger["links"] if link["rel"] == "self")
    blog = fetch_json(blog_uri)
    assert blog["type"] == "Service" and blog["preferredUsername"] == "blog"
    bob_uri = f"{beta.url}/authors/bob"
    assert fetch_json(bob_uri)["type"] == "Person"  # bob's key is made on B now

    follow = {"id": f"{bob_uri}#follow-1", "type": "Follow", "actor": bob_uri, "object": blog_uri}
    assert send_as(beta, "bob", blog["inbox"], follow) == 202
    # A's worker sends the Accept to bob's inbox on B; B verifies it against A's key.
    wait_for(lambda: acted_on(beta, "Accept"), "B to receive the Accept", alpha, beta)
    assert query(alpha, "SELECT state FROM federation_followers") == [("accepted",)]

    # A publishes: B's shared inbox gets the Create (and the blog's Announce), once.
    post = publish(ada, "Hello fediverse", "Words for the followers.")
    post_path = urllib.parse.urlsplit(post.url).path
    creates = wait_for(lambda: acted_on(beta, "Create"), "B to receive the Create", alpha, beta)
    wait_for(lambda: acted_on(beta, "Announce"), "B to receive the Announce", alpha, beta)
    article = fetch_json(post.url)
    assert article["type"] == "Article" and article["name"] == "Hello fediverse"
    assert creates == [f"{article['id']}#create"]

    # Bob replies: it waits in A's moderation queue, marked with his fediverse handle.
    note_id = f"{beta.url}/notes/1"
    reply = {
        "id": f"{note_id}/activity",
        "type": "Create",
        "actor": bob_uri,
        "object": {
            "id": note_id,
            "type": "Note",
            "attributedTo": bob_uri,
            "inReplyTo": article["id"],
            "content": "<p>Welcome to the fediverse!</p>",
        },
    }
    assert send_as(beta, "bob", blog["endpoints"]["sharedInbox"], reply) == 202
    queue = ada.open("/comments")
    assert "Welcome to the fediverse!" in queue.text, queue.text[:2000]
    assert query(alpha, "SELECT state, source_url FROM comments") == [("held", note_id)]

    # A edits: B gets the Update. A trashes: B gets the Delete.
    edit = ada.open(f"{post_path}/edit")
    ada.submit(edit, "#post-form", body="Words for the followers, edited.")
    wait_for(lambda: acted_on(beta, "Update"), "B to receive the Update", alpha, beta)
    page = ada.open(post_path)
    ada.submit(page, f'form[action="{post_path}/delete"]')
    wait_for(lambda: acted_on(beta, "Delete"), "B to receive the Delete", alpha, beta)
    gone = urllib.request.Request(article["id"], headers={"Accept": AS2})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(gone, timeout=10)
    assert answer.value.code == 410

    # A's worker is killed while its delivery hangs on B (stopped), then started again.
    os.killpg(beta.pid, signal.SIGSTOP)
    try:
        second = publish(ada, "Second post", "Through a crash.")
        wait_for(
            lambda: query(
                alpha,
                "SELECT id FROM jobs WHERE name LIKE '%activitypub.deliver' AND state = 'running'",
            ),
            "A's worker to be delivering",
            alpha,
        )
        worker = workers[alpha.url]
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        os.killpg(beta.pid, signal.SIGCONT)
    workers[alpha.url] = start_worker(alpha)
    second_id = fetch_json(second.url)["id"]
    wait_for(
        lambda: f"{second_id}#create" in acted_on(beta, "Create"),
        "B to receive the second Create after the crash",
        alpha,
        beta,
    )
    wait_for(
        lambda: not query(alpha, "SELECT id FROM federation_deliveries WHERE state != 'done'"),
        "every delivery of A to be done",
        alpha,
        beta,
    )
    assert acted_on(beta, "Create").count(f"{second_id}#create") == 1  # not doubled
    assert len(acted_on(beta, "Announce")) == 2

    # Bob unfollows: A forgets him.
    undo = {"id": f"{bob_uri}#undo-1", "type": "Undo", "actor": bob_uri, "object": follow}
    assert send_as(beta, "bob", blog["inbox"], undo) == 202
    assert query(alpha, "SELECT * FROM federation_followers") == []
    assert "Traceback" not in alpha.stderr_text() + beta.stderr_text()
