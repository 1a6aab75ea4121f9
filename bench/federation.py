"""Federation benchmark (issue #19): one new post delivered to 1,000 fediverse followers
spread over 20 servers (shared inboxes), and the post page's speed while that runs.

    .venv/bin/python bench/federation.py
    .venv/bin/python bench/federation.py --followers 300 --servers 5 --threads 4

A fresh blog (SQLite, the SQLite queue) whose blog actor has `--followers` accepted
followers on `--servers` remote servers, each a shared inbox on its own loopback address
(127.0.1.1, 127.0.1.2, ...) served by one local test inbox process (a process of its own,
as remote servers are; it writes a line per activity it accepts). An author publishes a
post through the editor's form (the test client, in process); the real worker
(`jobs.Worker`, `--threads` threads) runs `federate_post`, which queues one signed
delivery per shared inbox for the author's Create and one for the blog's Announce.
Timed from the form's POST until every inbox has both and no delivery waits.
Target: under 60 s.

While delivery runs, the page of an older post is read again and again (the page cache
off, so each read renders); the same number of reads before publishing is the baseline.
Reported: the median and p90 of each and the ratio during/before (target: at most 1.5 on
this shared 2-core machine: "unchanged" within its noise).

Prints the figures with their targets and saves them in bench/results/federation-*.json.
Never asserts: a missed target is printed as MISSED; exit 1 only if an inbox missed an
activity or got one twice.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mailing import make_site, publish_post
from saving import save_results

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DELIVERY_TARGET_S = 60.0
PAGE_RATIO_TARGET = 1.5


# --- the local test inbox: one process, a shared inbox per loopback address -------------------


def serve_inboxes(servers: int, port: int, out: Path) -> None:
    """Serve `servers` shared inboxes until killed, writing `address type id` per POST."""
    lock = threading.Lock()
    log = out.open("a", buffering=1)

    class Inbox(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            signed = "keyId=" in (self.headers.get("Signature") or "")
            activity = json.loads(body)
            with lock:
                log.write(
                    f"{self.server.server_address[0]} {activity['type']} {activity['id']}"
                    f" {'signed' if signed else 'unsigned'}\n"
                )
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpds = []
    for number in range(1, servers + 1):
        httpd = ThreadingHTTPServer((f"127.0.1.{number}", port), Inbox)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, args=(0.1,), daemon=True).start()
        httpds.append(httpd)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def start_inboxes(servers: int, folder: Path) -> tuple[subprocess.Popen, int, Path]:
    with socket.socket() as probe:
        probe.bind(("127.0.1.1", 0))
        port = probe.getsockname()[1]
    out = folder / "received.txt"
    out.touch()
    command = [sys.executable, __file__, "--serve-inboxes", str(servers), str(port), str(out)]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((f"127.0.1.{servers}", port), timeout=1):
                return process, port, out
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the test inboxes did not start")


def received(out: Path) -> list[list[str]]:
    return [line.split(" ") for line in out.read_text().splitlines() if line.count(" ") == 3]


# --- the blog --------------------------------------------------------------------------------


def add_followers(app: Any, followers: int, servers: int, port: int) -> None:
    from pyproject.blog.db import get_database
    from pyproject.blog.models import Follower, RemoteActor, utcnow

    now = utcnow()
    with get_database(app).write() as db:
        for number in range(followers):
            host = f"127.0.1.{number % servers + 1}:{port}"
            uri = f"http://{host}/users/reader{number:05d}"
            actor = RemoteActor(
                uri=uri,
                key_id=f"{uri}#main-key",
                inbox=f"{uri}/inbox",
                shared_inbox=f"http://{host}/inbox",
                name=f"Reader {number}",
                username=f"reader{number:05d}",
                url=uri,
                domain=host.split(":")[0],
                public_key_pem="-----BEGIN PUBLIC KEY-----\n(not used)\n-----END PUBLIC KEY-----",
                fetched_at=now,
            )
            db.add(actor)
            db.flush()
            db.add(
                Follower(
                    local_actor="blog",
                    remote_actor_id=actor.id,
                    state="accepted",
                    follow_activity=f"{uri}#follow",
                    delivered=0,
                    failed=0,
                    created_at=now,
                    accepted_at=now,
                )
            )


def publish(client: Any, title: str) -> str:
    """Publish a post through the editor's form; give its path."""
    values = client.get("/posts/new").form_values("#post-form")
    body = "\n\n".join(f"Paragraph {n}, with [a link](/posts) and *some* words." for n in range(30))
    values.update(title=title, body=body, status="published", tags="bench fediverse")
    answer = client.post("/posts", data=values)
    assert answer.status_code == 303, answer.status_code
    return answer.location


def read_page(app: Any, path: str) -> float:
    reader = app.test_client()
    started = time.perf_counter()
    page = reader.get(path)
    elapsed = time.perf_counter() - started
    assert page.status_code == 200, page.status_code
    return elapsed * 1000


def p90(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.9)] if values else 0.0


def time_delivery(followers: int, servers: int, threads: int, timeout: float) -> dict[str, Any]:
    from sqlalchemy import func, select

    from pyproject.blog import jobs
    from pyproject.blog.db import get_database
    from pyproject.blog.models import Delivery, Post

    with tempfile.TemporaryDirectory(prefix="bench-federation-") as folder:
        inboxes, port, out = start_inboxes(servers, Path(folder))
        app = make_site(
            Path(folder), JOB_WORKERS=threads, OUTGOING_ALLOW_LOOPBACK=True, PAGE_CACHE_MB=0
        )
        database = get_database(app)
        add_followers(app, followers, servers, port)
        client = app.test_client()
        publish_post(client)  # the first account signs up and publishes an older post
        with database.read() as db:
            older = "/posts/" + db.scalar(select(Post.slug))
        worker = jobs.Worker(app, threads=threads)
        worker.start()
        wanted = 2 * servers  # a Create and an Announce per shared inbox

        def delivered(post_id: int) -> list[list[str]]:
            mark = f"/ap/objects/{post_id}#"
            return [line for line in received(out) if mark in line[2]]

        def settled(post_id: int) -> bool:
            with database.read() as db:
                waiting = db.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.state != "done")
                )
            return len(delivered(post_id)) >= wanted and waiting == 0

        try:
            with database.read() as db:
                older_id = db.scalar(select(Post.id))
            deadline = time.perf_counter() + timeout
            while not settled(older_id) and time.perf_counter() < deadline:
                time.sleep(0.1)  # the older post's own delivery, out of the way
            before = [read_page(app, older) for _ in range(60)]
            started, cpu_started = time.perf_counter(), time.process_time()
            new_path = publish(client, "A post for every follower")
            posted = time.perf_counter() - started
            with database.read() as db:
                new_id = db.scalar(select(Post.id).where(Post.slug == new_path.split("/")[-1]))
            during: list[float] = []
            deadline = started + timeout
            while time.perf_counter() < deadline:
                during.append(read_page(app, older))
                if len(during) % 5 == 0 and settled(new_id):
                    break
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        finally:
            worker.stop()
            inboxes.terminate()
            inboxes.wait(timeout=10)
            database.dispose()
        lines = delivered(new_id)
    kinds = [(address, kind) for address, kind, _, _ in lines]
    return {
        "followers": followers,
        "servers": servers,
        "threads": threads,
        "request_s": posted,
        "all_delivered_s": elapsed,
        "activities_received": len(lines),
        "distinct_inbox_activities": len(set(kinds)),
        "all_signed": all(signed == "signed" for *_, signed in lines),
        "cpu_ms_per_delivery": cpu * 1000 / len(lines) if lines else 0.0,
        "page_before_ms": statistics.median(before),
        "page_before_p90_ms": p90(before),
        "page_during_ms": statistics.median(during) if during else 0.0,
        "page_during_p90_ms": p90(during),
        "page_reads_during": len(during),
        "page_ratio": statistics.median(during) / statistics.median(before) if during else 0.0,
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=20, help="shared inboxes (at most 250)")
    parser.add_argument("--threads", type=int, default=2, help="worker threads")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this")
    parser.add_argument("--serve-inboxes", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_inboxes:
        servers, port, out = args.serve_inboxes
        serve_inboxes(int(servers), int(port), Path(out))
        return 0

    figures = time_delivery(args.followers, args.servers, args.threads, args.timeout)
    ok = figures["all_delivered_s"] < DELIVERY_TARGET_S
    ratio_ok = figures["page_ratio"] <= PAGE_RATIO_TARGET
    print(
        f"{figures['followers']:,} followers on {figures['servers']} servers, "
        f"{figures['threads']} worker threads: the publishing request "
        f"{figures['request_s'] * 1000:.0f} ms; {figures['activities_received']} activities "
        f"received ({figures['distinct_inbox_activities']} distinct inbox/kind pairs, "
        f"{'all' if figures['all_signed'] else 'NOT all'} signed) after "
        f"{figures['all_delivered_s']:.1f} s (target < {DELIVERY_TARGET_S:g} s: {verdict(ok)}), "
        f"{figures['cpu_ms_per_delivery']:.1f} ms of the site's CPU per delivery (the page"
        " reads of the same time included)"
    )
    print(
        f"post page, median (p90): {figures['page_before_ms']:.1f} ms "
        f"({figures['page_before_p90_ms']:.1f}) before, {figures['page_during_ms']:.1f} ms "
        f"({figures['page_during_p90_ms']:.1f}) during delivery over "
        f"{figures['page_reads_during']} reads: ratio {figures['page_ratio']:.2f} "
        f"(target <= {PAGE_RATIO_TARGET:g}: {verdict(ratio_ok)})"
    )
    print(f"saved in {save_results('federation', figures)}")
    wanted = 2 * figures["servers"]
    complete = figures["activities_received"] == figures["distinct_inbox_activities"] == wanted
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
