"""Many machines, proven (#21): three app hosts behind Debian's nginx, under load.

Three app hosts on the loopback addresses 127.0.0.2, .3 and .4 (A, B, C), each its own
`gunicorn main:app` and its own `python main.py worker`, share one PostgreSQL database,
one Redis queue (a database number of its own, flushed), S3 media (a moto_server started
here) and one SECRET_KEY, with TRUSTED_PROXIES=127.0.0.1. In front of them runs nginx
with deploy/nginx.conf itself: the test substitutes only the placeholders that file
documents (server name, ports, certificate paths, upstream lines, the monitoring network,
the cache folder) and drops its IPv6 listens, and wraps it in a main configuration like
Debian's /etc/nginx/nginx.conf. The certificate is self-signed (`openssl req`); clients do
not verify it. The hosts are started the way DEPLOY.md says: `python main.py prepare`
(migrations) once, from host A, then on every host gunicorn and the worker with the
shared settings; host A, killed, is started again without migrating.

While readers and a writer keep requests going through nginx (threads), the tests show:
a post saved through A is shown, never stale, by B and C; a session made on A works on B
and C; sign-in throttling counts each client's own address through the proxy (clients
bound to 127.0.0.10 and 127.0.0.11); an image uploaded through A is served by B from S3;
a job enqueued on A is run by C's worker while A's and B's are stopped; and with A killed
(SIGKILL of its gunicorn and worker) nginx routes around it, no acknowledged write is
lost or doubled, and A rejoins when started again.

Requests "through host X" go to X's gunicorn directly, from 127.0.0.1 (the proxy's
address) with the headers nginx sets, so each step can name the host that answers.
Skipped, saying why, without nginx, openssl, PostgreSQL, Redis or moto[server].
"""

from __future__ import annotations

import http.client
import importlib.util
import io
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.conftest import POSTGRES_URL, postgres_unavailable_reason, reset_postgres
from tests.e2e.conftest import ROOT, ServerHandle, start_gunicorn
from tests.http_answers import Answer, read_answer

REDIS_DB = 13  # test_jobs.py uses 15
IN_USE = "pyproject-multi-host-test-running"
REDIS_URL = os.environ.get("TEST_MULTI_HOST_REDIS_URL", f"redis://127.0.0.1:6379/{REDIS_DB}")
HOSTS = {"A": "127.0.0.2", "B": "127.0.0.3", "C": "127.0.0.4"}
PROXY = "127.0.0.1"  # nginx's address as the app hosts see it
READER_ONE, READER_TWO, MONITOR = "127.0.0.10", "127.0.0.11", "127.0.0.12"
SECRET = "multi-host shared secret key"
TIMEOUT = 20.0
ADMIN = ("admin", "admin@example.com", "admin passphrase 1")
AUTHOR = ("alice", "alice@example.com", "alice passphrase 1")
VICTIM = ("bob", "bob@example.com", "bob passphrase 1")
NGINX_CONF = ROOT / "deploy" / "nginx.conf"


# --- what is needed, and why it is missing ----------------------------------------------------


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )


def _redis_reason() -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as error:
        return f"Redis at {REDIS_URL} is not reachable: {error}".splitlines()[0]
    return None


def missing_reason() -> str | None:
    if nginx_binary() is None:
        return "nginx is not installed (apt-get install nginx; .ci/run does it)"
    if shutil.which("openssl") is None:
        return "openssl is not installed (it makes the test's certificate)"
    if importlib.util.find_spec("moto") is None:
        return "moto[server] is not installed (pip install -r requirements-dev.txt)"
    for address in (*HOSTS.values(), READER_ONE, READER_TWO, MONITOR):
        try:
            with socket.socket() as probe:
                probe.bind((address, 0))
        except OSError as error:
            return f"loopback address {address} cannot be used here: {error}"
    return postgres_unavailable_reason() or _redis_reason()


# --- clients ------------------------------------------------------------------------------------


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    return context


@dataclass
class Host:
    """One app host: its address, its gunicorn and its job worker."""

    name: str
    address: str
    port: int
    data_dir: Path
    env: dict[str, str]
    server: ServerHandle | None = None
    worker: subprocess.Popen[bytes] | None = None

    def start_server(self, *, prepare: bool = False) -> None:
        """Start its gunicorn; `prepare` first (migrations) only where asked (DEPLOY.md)."""
        self.server = start_gunicorn(
            self.env,
            2,
            data_dir=self.data_dir,
            host=self.address,
            port=self.port,
            prepare=prepare,
        )

    def start_worker(self) -> None:
        log = (self.data_dir / "worker.log").open("ab")
        self.worker = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "python"), "main.py", "worker"],
            cwd=ROOT,
            env=self.server.env if self.server else self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(15)
            except subprocess.TimeoutExpired:
                _kill_group(self.worker.pid)
                self.worker.wait(5)
        self.worker = None

    def stop(self) -> None:
        """Stop its worker and its gunicorn, each gracefully."""
        self.stop_worker()
        if self.server is not None:
            self.server.stop()

    def kill(self) -> None:
        """SIGKILL of its gunicorn (every process of it) and its worker: a host gone."""
        assert self.server is not None and self.worker is not None
        _kill_group(self.server.pid)
        _kill_group(self.worker.pid)
        self.server.process.wait(5)
        self.worker.wait(5)
        self.server._stopped = True
        self.worker = None

    def log_text(self) -> str:
        worker_log = self.data_dir / "worker.log"
        text = self.server.stderr_text() if self.server else ""
        return text + (worker_log.read_text(errors="replace") if worker_log.exists() else "")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class Client:
    """A browser with its own cookies, at its own source address.

    By default it speaks HTTPS to nginx; `via=host` sends the request to that app host
    directly, from the proxy's address, with the headers nginx would set.
    """

    cluster: Cluster
    source: str = READER_ONE
    cookies: dict[str, str] = field(default_factory=dict)

    def send(
        self,
        method: str,
        path: str,
        fields: dict[str, str] | None = None,
        *,
        via: Host | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Answer:
        sent = {"Accept": "text/html", **(headers or {})}
        if fields is not None:
            body = urlencode(fields).encode()
            content_type = "application/x-www-form-urlencoded"
        if content_type:
            sent["Content-Type"] = content_type
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection: http.client.HTTPConnection
        if via is None:
            connection = http.client.HTTPSConnection(
                "127.0.0.1",
                self.cluster.https_port,
                timeout=TIMEOUT,
                context=_unverified(),
                source_address=(self.source, 0),
            )
        else:
            sent.update(
                {
                    "Host": f"127.0.0.1:{self.cluster.https_port}",
                    "X-Forwarded-For": self.source,
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-Host": "127.0.0.1",
                }
            )
            connection = http.client.HTTPConnection(
                via.address, via.port, timeout=TIMEOUT, source_address=(PROXY, 0)
            )
        try:
            connection.request(method, path, body=body, headers=sent)
            return read_answer(connection.getresponse(), self.cookies)
        finally:
            connection.close()

    def get(self, path: str, *, via: Host | None = None, **kwargs: Any) -> Answer:
        return self.send("GET", path, via=via, **kwargs)

    def submit(
        self, page: str, selector: str, action: str, *, via: Host | None = None, **changes: str
    ) -> Answer:
        """Load `page`, fill in the form `selector` (with its CSRF token) and send it."""
        answer = self.get(page, via=via)
        assert answer.status == 200, f"GET {page} answered {answer.status}"
        values = answer.form(selector)
        values.update(changes)
        return self.send("POST", action, values, via=via)

    def sign_in(self, login: str, password: str, *, via: Host | None = None) -> Answer:
        return self.submit(
            "/login", 'form[action="/login"]', "/login", via=via, login=login, password=password
        )


# --- the cluster --------------------------------------------------------------------------------


@dataclass
class Cluster:
    hosts: dict[str, Host]
    https_port: int
    http_port: int
    prefix: Path
    s3_endpoint: str
    bucket: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def database(self) -> Any:
        import psycopg

        return psycopg.connect(POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://"))

    def nginx_log(self) -> str:
        return (self.prefix / "error.log").read_text(errors="replace")


def _free_port(*addresses: str) -> int:
    """Give a port free on every one of `addresses`."""
    while True:
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        try:
            for address in addresses[1:]:
                with socket.socket() as probe:
                    probe.bind((address, port))
            return port
        except OSError:
            continue


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _start_moto(folder: Path, port: int, bucket: str) -> subprocess.Popen[bytes]:
    """Start moto_server on `port` and make `bucket` there, readable by anyone."""
    from tests.blog.test_s3store import public_read_policy, raw_client

    endpoint = f"http://127.0.0.1:{port}"
    with (folder / "moto_server.log").open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while not _answers(endpoint + "/moto-api/"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"moto_server did not start on {endpoint}")
        time.sleep(0.1)
    client = raw_client(endpoint)
    client.create_bucket(Bucket=bucket)
    client.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
    return process


class Background(threading.Thread):
    """A thread whose result, or error, the caller takes with `result()`."""

    def __init__(self, target: Any, *args: Any) -> None:
        super().__init__(daemon=True)
        self._call, self._args = target, args
        self._result: Any = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._result = self._call(*self._args)
        except BaseException as error:  # given to the caller by result()
            self._error = error

    def result(self) -> Any:
        self.join(90)
        if self._error is not None:
            raise self._error
        return self._result


def nginx_site(https_port: int, http_port: int, prefix: Path, app_port: int) -> str:
    """Give deploy/nginx.conf with its documented placeholders filled in for this test."""
    text = NGINX_CONF.read_text()
    substitutions = {
        "server_name blog.example.com;": "server_name 127.0.0.1;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:80;\n": "",
        "listen [::]:443 ssl http2;\n": "",
        "/etc/ssl/blog/fullchain.pem": str(prefix / "cert.pem"),
        "/etc/ssl/blog/privkey.pem": str(prefix / "key.pem"),
        "10.0.0.11:8000": f"{HOSTS['A']}:{app_port}",
        "10.0.0.12:8000": f"{HOSTS['B']}:{app_port}",
        "10.0.0.13:8000": f"{HOSTS['C']}:{app_port}",
        "10.0.9.0/24": MONITOR,
        "/var/cache/nginx/blog": str(prefix / "cache"),
        "/var/www/letsencrypt": str(prefix / "acme"),
    }
    for placeholder, value in substitutions.items():
        assert placeholder in text, f"deploy/nginx.conf lost its placeholder {placeholder!r}"
        text = text.replace(placeholder, value)
    directives = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert "example.com" not in directives and "10.0.0." not in directives
    return text


def nginx_main(prefix: Path) -> str:
    """Give a main configuration like Debian's /etc/nginx/nginx.conf, all paths in `prefix`."""
    user = "user root;\n" if os.getuid() == 0 else ""  # workers must read the test's files
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 2;
daemon off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 512; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix / "access.log"};
{temp}
    include {prefix / "blog.conf"};
}}
"""


def _start_nginx(prefix: Path, https_port: int, http_port: int, app_port: int):
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-keyout", str(prefix / "key.pem"),
            "-out", str(prefix / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    (prefix / "blog.conf").write_text(nginx_site(https_port, http_port, prefix, app_port))
    (prefix / "nginx.conf").write_text(nginx_main(prefix))
    command = [
        nginx_binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
        "-e", str(prefix / "error.log"),  # not Debian's /var/log/nginx, even before the conf
    ]  # fmt: skip
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, f"nginx -t refused the configuration:\n{checked.stderr}"
    log = (prefix / "nginx.out").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start: {(prefix / 'error.log').read_text()}")
            time.sleep(0.05)


# --- the steady load ----------------------------------------------------------------------------


@dataclass
class Load:
    """Readers (anonymous, at /, the archive and one post) and one writer, through nginx."""

    cluster: Cluster
    author: Client
    stop: threading.Event = field(default_factory=threading.Event)
    acknowledged: list[str] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    read_failures: list[str] = field(default_factory=list)
    reads: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for source in (READER_ONE, READER_TWO):
            self.threads.append(threading.Thread(target=self.read, args=(source,), daemon=True))
        self.threads.append(threading.Thread(target=self.write, daemon=True))
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(TIMEOUT + 5)

    def read(self, source: str) -> None:
        reader = Client(self.cluster, source)
        while not self.stop.is_set():
            for path in ("/", "/posts", "/healthz"):
                try:
                    status = reader.get(path).status
                except OSError as error:
                    self.read_failures.append(f"GET {path}: {error!r}")
                    continue
                self.reads += 1
                if status != 200:
                    self.read_failures.append(f"GET {path}: {status}")
            self.stop.wait(0.05)

    def write(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            title = f"Load write {number} {uuid.uuid4().hex[:8]}"
            try:
                editor = self.author.get("/posts/new")
                if editor.status != 200:
                    self.unknown.append((title, f"editor {editor.status}"))
                    continue
                values = editor.form("#post-form")
                values.update(title=title, body=f"Written under load: {title}.")
                values.update(status="published")
                answer = self.author.send("POST", "/posts", values)
            except OSError as error:
                self.unknown.append((title, repr(error)))
                continue
            if answer.status == 303:
                self.acknowledged.append(title)
            else:
                self.unknown.append((title, str(answer.status)))
            self.stop.wait(0.1)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    import redis

    queue = redis.Redis.from_url(REDIS_URL)
    # The Redis database is this test's own, but two runs at once (a developer's and CI's)
    # would share it: the second one skips while the first one's mark is there.
    if queue.exists(IN_USE):
        pytest.skip(f"another run of this test is using {REDIS_URL} (key {IN_USE})")
    queue.flushdb()
    queue.set(IN_USE, os.getpid(), ex=600)
    reset_postgres()
    folder = tmp_path_factory.mktemp("multi-host")
    app_port = _free_port(*HOSTS.values())
    https_port, http_port, s3_port = (_free_port("127.0.0.1") for _ in range(3))
    endpoint, bucket = f"http://127.0.0.1:{s3_port}", f"media-{uuid.uuid4().hex[:12]}"
    prefix = folder / "nginx"
    prefix.mkdir()
    # moto and nginx start while the first host migrates (nginx needs no host up to start).
    starting_moto = Background(_start_moto, folder, s3_port, bucket)
    starting_nginx = Background(_start_nginx, prefix, https_port, http_port, app_port)
    moto = nginx = None
    hosts: dict[str, Host] = {}
    try:
        shared = {
            "SECRET_KEY": SECRET,
            "DATABASE_URL": POSTGRES_URL,
            "QUEUE_URL": REDIS_URL,
            "TRUSTED_PROXIES": PROXY,
            "BASE_URL": f"https://127.0.0.1:{https_port}",
            "METRICS_ALLOW": f"127.0.0.1, {MONITOR}",
            "MEDIA_STORAGE": "s3",
            "MEDIA_S3_BUCKET": bucket,
            "MEDIA_S3_ENDPOINT_URL": endpoint,
            "MEDIA_S3_REGION": "us-east-1",
            "MEDIA_S3_ACCESS_KEY": "testing-access-key",
            "MEDIA_S3_SECRET_KEY": "testing-secret-key-never-shown",
            "MEDIA_S3_PUBLIC_URL": f"{endpoint}/{bucket}",
        }
        for name, address in HOSTS.items():
            data_dir = folder / f"host-{name}"
            data_dir.mkdir()
            env = {**shared, "INSTANCE_PATH": str(data_dir)}
            hosts[name] = Host(name, address, app_port, data_dir, env)
        # Migrations run once, from one host (DEPLOY.md); the others only start.
        hosts["A"].start_server(prepare=True)
        for started in [Background(hosts[name].start_server) for name in ("B", "C")]:
            started.result()
        for host in hosts.values():
            host.start_worker()
        moto = starting_moto.result()
        nginx = starting_nginx.result()
        yield Cluster(hosts, https_port, http_port, prefix, endpoint, bucket)
        logs = {name: host.log_text() for name, host in hosts.items()}
        for name, text in logs.items():
            assert "Traceback" not in text, f"host {name} logged a traceback:\n{text[-4000:]}"
    finally:
        moto = moto or _result_or_none(starting_moto)
        nginx = nginx or _result_or_none(starting_nginx)
        if nginx is not None:
            nginx.terminate()
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                _kill_group(nginx.pid)
        stopping = [Background(host.stop) for host in hosts.values()]
        for stopped in stopping:
            stopped.result()
        if moto is not None:
            moto.terminate()
            moto.wait(10)
        queue.flushdb()
        queue.close()


def _result_or_none(thread: Background) -> Any:
    try:
        return thread.result()
    except BaseException:
        return None


@pytest.fixture(scope="module")
def people(cluster: Cluster) -> dict[str, Client]:
    """The admin (made through /setup on A) and two authors, signed in through nginx."""
    admin = Client(cluster)
    username, email, password = ADMIN
    made = admin.submit(
        "/setup",
        'form[action="/setup"]',
        "/setup",
        via=cluster.hosts["A"],
        username=username,
        email=email,
        display_name="Ada Admin",
        password=password,
        confirm=password,
    )
    assert made.status == 303, f"setup answered {made.status}"
    for username, email, password in (AUTHOR, VICTIM):
        added = admin.submit(
            "/admin/users",
            'form[action="/admin/users"]',
            "/admin/users",
            username=username,
            email=email,
            display_name=username.title(),
            password=password,
            confirm=password,
            role="author",
        )
        assert added.status == 303, f"adding {username} answered {added.status}"
    author = Client(cluster, READER_TWO)
    assert author.sign_in(AUTHOR[0], AUTHOR[2]).status == 303
    writer = Client(cluster, READER_ONE)
    assert writer.sign_in(AUTHOR[0], AUTHOR[2]).status == 303
    return {"admin": admin, "author": author, "writer": writer}


@pytest.fixture(scope="module")
def load(cluster: Cluster, people: dict[str, Client]) -> Iterator[Load]:
    running = Load(cluster, people["writer"])
    running.start()
    yield running
    running.finish()


# --- the tests ------------------------------------------------------------------------------------


def test_nginx_serves_the_site_over_tls_and_http2_and_redirects_plain_http(
    cluster: Cluster, load: Load
) -> None:
    context = _unverified()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", cluster.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"

    plain = http.client.HTTPConnection("127.0.0.1", cluster.http_port, timeout=5)
    plain.request("GET", "/posts?page=2", headers={"Host": "blog.test"})
    redirect = plain.getresponse()
    assert redirect.status == 301
    assert redirect.getheader("Location") == "https://blog.test/posts?page=2"
    plain.close()

    deadline = time.monotonic() + 15
    while len(load.acknowledged) < 2:  # the feeds and the API have posts to show
        assert time.monotonic() < deadline, f"the writer got nothing through: {load.unknown}"
        time.sleep(0.1)
    reader = Client(cluster, READER_ONE)
    home = reader.get("/", headers={"Accept-Encoding": "gzip"})
    assert home.status == 200
    assert home.headers.get("content-encoding") == "gzip"
    for path in ("/feed.atom", "/feed.rss", "/api/posts"):
        answer = reader.get(path, headers={"Accept-Encoding": "gzip", "Accept": "*/*"})
        assert answer.status == 200, (path, answer.status)
        assert answer.headers.get("content-encoding") == "gzip", path


def test_fingerprinted_static_files_are_cached_by_nginx_for_a_year(cluster: Cluster) -> None:
    reader = Client(cluster, READER_ONE)
    page = reader.get("/").text
    found = re.search(r'href="(/static/[^"]+\?v=[^"]+)"', page)
    assert found, "no fingerprinted stylesheet on the home page"
    path = found.group(1).replace("&amp;", "&")
    first, second = reader.get(path), reader.get(path)
    assert first.status == second.status == 200
    assert "immutable" in second.headers["cache-control"]
    assert "max-age=31536000" in second.headers["cache-control"]
    assert second.headers.get("x-cache") == "HIT"


def test_metrics_only_for_the_monitoring_network_and_probes_answer(cluster: Cluster) -> None:
    assert Client(cluster, READER_ONE).get("/metrics").status == 403
    scrape = Client(cluster, MONITOR).get("/metrics")
    assert scrape.status == 200
    assert "pyproject_requests_total" in scrape.text
    for path in ("/healthz", "/readyz"):
        probe = Client(cluster, READER_ONE).get(path)
        assert probe.status == 200, (path, probe.text)
        assert probe.headers["cache-control"] == "no-store"


def test_a_body_over_the_limit_is_refused_at_the_door(cluster: Cluster) -> None:
    context = _unverified()
    with (
        socket.create_connection(("127.0.0.1", cluster.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 17000000\r\nConnection: close\r\n\r\n"
        )
        assert tls.recv(64).startswith(b"HTTP/1.1 413")


def test_an_upload_larger_than_other_bodies_passes_nginx_to_the_app(
    cluster: Cluster, people: dict[str, Client]
) -> None:
    """POST /media may carry more than MAX_CONTENT_LENGTH: nginx lets the app judge it."""
    author = people["author"]
    fields = author.get("/media").form("#media-upload")
    junk = b"\x00not a picture" * (17_000_000 // 15)  # 17 MB: over 16m, under MEDIA_MAX_BYTES
    body, content_type = _multipart(fields, "file", "big.jpg", junk)
    answer = author.send(
        "POST", "/media", body=body, content_type=content_type, headers={"Accept": "text/html"}
    )
    assert answer.status == 422, answer.status  # the app's answer: not a picture
    assert "nginx" not in answer.text and "Nothing was stored." in answer.text


def test_a_post_saved_through_a_is_shown_never_stale_by_b_and_c(
    cluster: Cluster, people: dict[str, Client], load: Load
) -> None:
    a, b, c = (cluster.hosts[name] for name in "ABC")
    author, reader = people["author"], Client(cluster, READER_ONE)
    made = author.submit(
        "/posts/new", "#post-form", "/posts", via=a, title="Shared truth one",
        body="The first words.", status="published",
    )  # fmt: skip
    assert made.status == 303, made.status
    path = urlsplit(made.location).path
    # B and C serve the page (and keep it in their page caches) with its ETag.
    tags = {}
    for host in (b, c):
        for _ in range(2):
            page = reader.get(path, via=host)
            assert page.status == 200 and "Shared truth one" in page.text
        tags[host.name] = page.headers["etag"]
    # (The writer's posts change the site meanwhile, so the two tags may differ.)

    changed = author.submit(
        f"{path}/edit", "#post-form", f"{path}/edit", via=a, title="Shared truth two"
    )
    assert changed.status == 303, changed.status
    for host in (b, c):
        page = reader.get(path, via=host)
        assert page.status == 200
        assert "Shared truth two" in page.text and "Shared truth one" not in page.text
        again = reader.get(path, via=host, headers={"If-None-Match": tags[host.name]})
        assert again.status == 200, f"{host.name} answered 304 for a page that changed"
        home = reader.get("/", via=host)
        assert "Shared truth two" in home.text


def test_a_session_made_on_a_works_on_b_and_c(cluster: Cluster, load: Load) -> None:
    a, b, c = (cluster.hosts[name] for name in "ABC")
    person = Client(cluster, READER_TWO)
    assert person.sign_in(AUTHOR[0], AUTHOR[2], via=a).status == 303
    assert any("session" in name for name in person.cookies)
    for host in (b, c):
        account = person.get("/account", via=host)
        assert account.status == 200, f"{host.name} did not know the session: {account.status}"
        assert AUTHOR[1] in account.text
    # Signed out on C: gone on A too (the session lives in the shared database).
    signed_out = person.submit("/", 'form[action="/logout"]', "/logout", via=c)
    assert signed_out.status == 303
    assert person.get("/account", via=a).status in (302, 303)


def test_sign_in_throttling_counts_each_clients_own_address_through_the_proxy(
    cluster: Cluster, load: Load
) -> None:
    owner, stranger = Client(cluster, READER_TWO), Client(cluster, READER_ONE)
    # The owner signed in from 127.0.0.11 before (its browser is a known device), then out.
    assert owner.sign_in(VICTIM[0], VICTIM[2]).status == 303
    assert owner.submit("/", 'form[action="/logout"]', "/logout").status == 303
    # A stranger at 127.0.0.10 guesses, claiming other addresses: nginx replaces the claim.
    statuses = [
        stranger.send(
            "POST", "/login", {**stranger.get("/login").form('form[action="/login"]'),
                               "login": VICTIM[0], "password": f"wrong {n}"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        ).status
        for n in range(7)
    ]  # fmt: skip
    assert statuses[:5] == [422] * 5 and statuses[-1] == 429, statuses
    with cluster.database() as db:
        addresses = {
            row[0]
            for row in db.execute(
                "SELECT remote_addr FROM login_attempts WHERE account = "
                "(SELECT 'user:' || id FROM users WHERE username = %s)",
                (VICTIM[0],),
            )
        }
    assert addresses == {READER_ONE, READER_TWO}, addresses
    # The owner, at its own address, is not locked out by the stranger's failures.
    assert owner.sign_in(VICTIM[0], VICTIM[2]).status == 303
    assert owner.get("/account").status == 200


def _jpeg(width: int, height: int) -> bytes:
    from PIL import Image

    picture = Image.new("RGB", (width, height))
    for x in range(0, width, 50):  # something to compress
        picture.paste((x % 256, 90, 200 - x % 200), (x, 0, min(width, x + 25), height))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=80)
    return out.getvalue()


def _multipart(fields: dict[str, str], name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_an_upload_on_a_is_served_by_b_and_its_job_run_by_cs_worker(
    cluster: Cluster, people: dict[str, Client], load: Load
) -> None:
    a, b, c = (cluster.hosts[name] for name in "ABC")
    a.stop_worker()
    b.stop_worker()  # only C's worker is left to take the job
    try:
        author = people["author"]
        library = author.get("/media", via=a)
        assert library.status == 200
        fields = library.form("#media-upload")
        fields["alt"] = "Stripes shared by every host"
        body, content_type = _multipart(fields, "file", "stripes.jpg", _jpeg(1200, 800))
        uploaded = author.send("POST", "/media", via=a, body=body, content_type=content_type)
        assert uploaded.status == 303, (uploaded.status, uploaded.text[-2000:])

        deadline = time.monotonic() + 30
        while True:
            with cluster.database() as db:
                variants = db.execute(
                    "SELECT variants FROM media WHERE alt = %s", (fields["alt"],)
                ).fetchone()
            assert variants is not None, "the upload left no picture"
            if variants[0] != "[]":
                break
            assert time.monotonic() < deadline, (
                f"C's worker did not make the variants:\n{c.log_text()[-4000:]}"
            )
            time.sleep(0.2)
        assert '"w": 960' in variants[0] or '"w":960' in variants[0], variants[0]

        shown = author.get("/media", via=b)
        assert shown.status == 200 and "Stripes shared by every host" in shown.text
        assert "sizes being made" not in shown.text
        item = shown.html.select_one(".media-item a[href]")
        original = item["href"]
        assert original.startswith(f"{cluster.s3_endpoint}/{cluster.bucket}/")
        thumbnail = item.select_one("img")["src"]
        with urllib.request.urlopen(original, timeout=5) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
            assert response.read(3) == b"\xff\xd8\xff"
        assert thumbnail != original  # a variant C's worker made, stored in S3
        with urllib.request.urlopen(thumbnail, timeout=5) as response:
            assert response.headers["Content-Type"] in ("image/jpeg", "image/webp")
            assert len(response.read()) > 100
    finally:
        a.start_worker()
        b.start_worker()


def _requests_served(host: Host) -> float:
    """Give the requests a host's gunicorn has counted (its /metrics, asked directly)."""
    connection = http.client.HTTPConnection(
        host.address, host.port, timeout=5, source_address=(PROXY, 0)
    )
    connection.request("GET", "/metrics", headers={"Host": "127.0.0.1"})
    text = connection.getresponse().read().decode()
    connection.close()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("pyproject_requests_total{")
    )


def test_host_a_killed_is_routed_around_no_write_is_lost_and_a_rejoins(
    cluster: Cluster, load: Load
) -> None:
    a = cluster.hosts["A"]
    served = _requests_served(a)
    time.sleep(1)
    assert _requests_served(a) > served, "A took no share of the load before it was killed"
    written_before = len(load.acknowledged)
    a.kill()
    assert "Traceback" not in a.log_text(), a.log_text()[-4000:]  # its next start rewrites it
    killed_at = time.monotonic()
    # Readers and the writer go on for a few seconds with A gone (beyond its fail_timeout).
    while time.monotonic() - killed_at < 6 or len(load.acknowledged) < written_before + 3:
        assert time.monotonic() - killed_at < 30, f"writes stalled with A gone: {load.unknown}"
        time.sleep(0.2)
    assert not load.read_failures, load.read_failures[:10]

    a.start_server()
    a.start_worker()
    served = _requests_served(a)
    deadline = time.monotonic() + 20
    while _requests_served(a) <= served + 3:
        assert time.monotonic() < deadline, "nginx sent no readers to A after it came back"
        time.sleep(0.5)
    ready = http.client.HTTPConnection(a.address, a.port, timeout=5, source_address=(PROXY, 0))
    ready.request("GET", "/readyz", headers={"Host": "127.0.0.1"})
    assert ready.getresponse().status == 200
    ready.close()

    load.finish()
    assert load.reads > 100 and len(load.acknowledged) > 10, (load.reads, load.acknowledged)
    assert not load.read_failures, load.read_failures[:10]
    with cluster.database() as db:
        titles = [row[0] for row in db.execute("SELECT title FROM posts")]
    counts = {title: titles.count(title) for title in set(titles)}
    lost = [title for title in load.acknowledged if counts.get(title) != 1]
    assert not lost, f"acknowledged writes lost or doubled: {lost}"
    doubled = [title for title, _ in load.unknown if counts.get(title, 0) > 1]
    assert not doubled, f"unacknowledged writes made twice: {doubled}"
    # A write in flight on A when it died may fail (502): nginx never resends a POST.
    assert len(load.unknown) <= 3, load.unknown
