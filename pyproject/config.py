"""Settings: built-in defaults < .env (python-dotenv) < the environment < create_app overrides."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from pyproject.lib.proxies import parse_networks

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


def _cpu_workers() -> int:
    return max(2, min(8, (os.cpu_count() or 1) * 2 + 1))


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SECRET_KEY",
        "",
        "Secret for signing; required unless DEBUG (then one is kept in instance/).",
    ),
    Setting("DEBUG", False, "Development mode: template reloading and tracebacks on 500 pages."),
    Setting(
        "BASE_URL",
        "http://127.0.0.1:8000",
        "The public address; every absolute URL is built from it.",
    ),
    Setting(
        "READY_TIMEOUT",
        2.0,
        "Seconds /readyz waits for the database and the job queue before answering 503.",
    ),
    Setting(
        "METRICS_ALLOW",
        "127.0.0.1, ::1",
        "Comma-separated addresses or networks that may read /metrics (others get 404).",
    ),
    Setting(
        "TRUSTED_PROXIES",
        "",
        "Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For,"
        " -Proto and -Host are believed (empty: none; the peer is the client).",
    ),
    Setting(
        "ALLOWED_HOSTS",
        "",
        "Comma-separated Host names to answer (default: BASE_URL's host, localhost).",
    ),
    Setting(
        "DATABASE_URL", "", "SQLAlchemy URL; empty means SQLite at instance/pyproject.sqlite3."
    ),
    Setting(
        "INSTANCE_PATH",
        "",
        "Folder for the site's own files (SQLite data, job queue, outbox); empty: instance/.",
    ),
    Setting("HOST", "127.0.0.1", "Address gunicorn and `python main.py` listen on."),
    Setting("PORT", 8000, "Port gunicorn and `python main.py` listen on."),
    Setting("WORKERS", 0, "gunicorn worker processes; 0 means 2 x cores + 1 (at most 8)."),
    Setting(
        "LOG_LEVEL",
        "INFO",
        "Logging level: DEBUG (adds one line per request), INFO, WARNING, ERROR.",
    ),
    Setting(
        "ACCESS_LOG", "", "gunicorn's access log: - for stderr, or a file path; empty for none."
    ),
    Setting("MAX_CONTENT_LENGTH", 16 * 1024 * 1024, "Largest request body in bytes (413 past it)."),
    Setting("MAX_FORM_FIELDS", 1000, "Most fields a form or query string may have."),
    Setting("MAX_FORM_PARTS", 1000, "Most parts a multipart body may have."),
    Setting("MAX_FORM_MEMORY_SIZE", 500_000, "Largest single non-file form field, in bytes."),
    Setting(
        "SESSION_COOKIE_NAME",
        "session",
        "Name of the session cookie (__Host- prefixed over HTTPS).",
    ),
    Setting("SESSION_MAX_AGE", 14 * 24 * 3600, "Seconds a session lasts without a visit."),
    Setting("SITE_NAME", "PyProject", "The blog's name, shown in the header, titles and feeds."),
    Setting(
        "SITE_DESCRIPTION",
        "A small, fast blog.",
        "One line describing the blog, for meta tags and feeds.",
    ),
    Setting("TIMEZONE", "UTC", "Time zone for entering and showing times (an IANA name)."),
    # Defaults of the settings /admin/settings changes (#17): a value saved there wins.
    Setting("SITE_LANGUAGE", "en", "The lang of every page (a BCP 47 tag: en, fr, pt-BR)."),
    Setting("POSTS_PER_PAGE", 10, "Posts on each page of the home page, archive, tags, authors."),
    Setting("ACCENT_COLOR", "#1a56b8", "Accent colour of the light scheme (4.5:1 on white)."),
    Setting("ACCENT_COLOR_DARK", "#8ab4ff", "Accent colour of the dark scheme (4.5:1 on #15161a)."),
    Setting("REQUIRE_SECOND_FACTOR", "none", "Who must use a second factor: none/admins/everyone."),
    Setting("SMART_PUNCTUATION", "off", "Curly quotes and dashes in posts: on or off."),
    Setting(
        "QUEUE_URL",
        "",
        "Job queue: empty for a SQLite file in the instance folder, or redis://host:6379/0.",
    ),
    Setting("JOB_WORKERS", 2, "Threads of each `python main.py worker` process."),
    Setting(
        "JOB_RETRY_SECONDS", 10, "Wait before a failed job's first retry; doubled for each next."
    ),
    Setting("JOB_MODULES", "", "Comma-separated modules whose jobs the queue also runs (plugins)."),
    Setting(
        "SMTP_URL",
        "",
        "Mail server: smtp://user:password@host:587 (STARTTLS), smtps://...:465; empty: outbox.",
    ),
    Setting("MAIL_FROM", "PyProject <noreply@localhost>", "Sender of the site's email."),
    Setting("SMTP_TIMEOUT", 10, "Seconds to wait on the mail server at each step."),
    Setting(
        "PAGE_CACHE_MB",
        8,
        "Memory each worker keeps finished anonymous pages in, in MB (0: no page cache).",
    ),
    Setting("TRASH_DAYS", 30, "Days a deleted post stays in the trash before it is purged."),
    # First-party statistics (#22); /privacy states them.
    Setting("STATS_ENABLED", True, "Count readers' views, referrers, searches and subscribers."),
    Setting(
        "STATS_REPEAT_MINUTES",
        30,
        "Minutes in which a reader's repeat views of one page count once.",
    ),
    Setting("STATS_SEARCH_MIN", 2, "Searches made fewer times than this in a day are not kept."),
    Setting("STATS_DAILY_YEARS", 2, "Years of day counts kept; older ones are rolled into months."),
    Setting(
        "RENDER_TIME_LIMIT_MS",
        5000,
        "Longest one post may take to render, in ms, before its save is refused (0: no limit).",
    ),
    Setting("MARKDOWN_MAX_HEADINGS", 300, "Most headings one post may have."),
    Setting("MARKDOWN_MAX_DEPTH", 32, "Deepest nesting of quotes, lists and HTML in a post."),
    Setting("MARKDOWN_MAX_TABLE_CELLS", 4000, "Most table cells one post may have."),
    Setting("MARKDOWN_MAX_CODE_BLOCKS", 200, "Most fenced code blocks one post may have."),
    Setting("MARKDOWN_MAX_RULES", 200, "Most horizontal rules (---) one post may have."),
    Setting("MARKDOWN_MAX_ATTRIBUTES", 64, "Most attributes one raw HTML tag in a post may have."),
    Setting("MARKDOWN_MAX_ABBREVIATIONS", 100, "Most abbreviation definitions in one post."),
    Setting("MARKDOWN_MAX_FOOTNOTES", 500, "Most footnote references one post may have."),
    Setting(
        "MARKDOWN_MAX_INLINE_MARKS", 12000, "Most characters that start inline markup ([*_`<&)."
    ),
    Setting("MARKDOWN_MAX_HTML_ELEMENTS", 10000, "Most HTML tags one rendered post may have."),
    Setting("MARKDOWN_MAX_HTML_RATIO", 25, "Rendered HTML at most this many times the Markdown."),
    Setting("MARKDOWN_MAX_HTML_KB", 2048, "Largest rendered post, in KB."),
    Setting(
        "MARKDOWN_HIGHLIGHT_MAX", 8000, "Characters of code a post may have and still be coloured."
    ),
    # Pictures in posts (#15).
    Setting(
        "MEDIA_STORAGE",
        "local",
        "Where media files are kept: local (MEDIA_ROOT) or s3 (MEDIA_S3_*).",
    ),
    Setting("MEDIA_ROOT", "", "Folder of local media files; empty: instance/media."),
    Setting("MEDIA_URL", "/media/files/", "Path local media files are served at."),
    Setting(
        "MEDIA_MAX_BYTES", 20_000_000, "Largest picture one may upload, in bytes (413 past it)."
    ),
    Setting(
        "MEDIA_MAX_PIXELS", 50_000_000, "Most pixels an uploaded picture may have (422 past it)."
    ),
    Setting("MEDIA_MAX_FILES", 20, "Most pictures one upload may carry."),
    # Export and import (#16).
    Setting(
        "IMPORT_MAX_BYTES",
        200 * 1024 * 1024,
        "Largest file an import may read or upload, in bytes.",
    ),
    # Media in S3-compatible object storage, with MEDIA_STORAGE=s3 (#15).
    Setting("MEDIA_S3_BUCKET", "", "Bucket media files are stored in (MEDIA_STORAGE=s3)."),
    Setting(
        "MEDIA_S3_ENDPOINT_URL",
        "",
        "S3-compatible server's URL (MinIO, R2, ...); empty for Amazon S3 itself.",
    ),
    Setting("MEDIA_S3_REGION", "", "The bucket's region, like eu-west-1; empty: boto3's default."),
    Setting(
        "MEDIA_S3_ACCESS_KEY", "", "Access key id; empty (with the secret): boto3's own chain."
    ),
    Setting("MEDIA_S3_SECRET_KEY", "", "Secret access key; never logged or shown."),
    Setting(
        "MEDIA_S3_PUBLIC_URL",
        "",
        "Public base URL browsers load media objects from (the bucket's or a CDN's address).",
    ),
    Setting("MEDIA_S3_TIMEOUT", 10, "Seconds to wait on the S3 server to connect, and per read."),
    # Outgoing fetches (pyproject/blog/outgoing.py) and Webmention (#18).
    Setting(
        "OUTGOING_ALLOW_LOOPBACK",
        False,
        "Tests only: let outgoing fetches reach loopback addresses (never private ones).",
    ),
    Setting("OUTGOING_TIMEOUT", 10, "Seconds an outgoing fetch waits to connect, and per read."),
    Setting("OUTGOING_MAX_BYTES", 1_000_000, "Largest answer an outgoing fetch reads, in bytes."),
    Setting("WEBMENTION_PER_HOST_HOUR", 30, "Webmentions accepted per hour from one source host."),
    # ActivityPub federation (#19).
    Setting(
        "FEDERATION_BLOG_USERNAME",
        "blog",
        "The blog's fediverse name: readers follow @NAME@host (authors are @username@host).",
    ),
    Setting(
        "FEDERATION_OBJECT_TYPE",
        "Article",
        "What a post is on the fediverse: Article (title and full text) or Note (title, link).",
    ),
    Setting(
        "FEDERATION_APPROVE_FOLLOWS",
        False,
        "Hold new fediverse followers until an admin approves them in /admin/federation.",
    ),
    Setting(
        "FEDERATION_MAX_INBOX_BYTES",
        1_000_000,
        "Largest activity an inbox reads, in bytes (413 past it).",
    ),
    Setting(
        "FEDERATION_RETRY_SECONDS",
        60,
        "Seconds before a failed delivery's first retry; each next wait doubles.",
    ),
    Setting("FEDERATION_RETRY_HOURS", 48, "Hours a delivery is retried before it is given up."),
    Setting(
        "FEDERATION_PAUSE_DAYS",
        7,
        "Days of failed deliveries after which a domain is paused (resumed by an admin).",
    ),
    # The write API and Micropub (#20).
    Setting(
        "API_MAX_JSON_BYTES", 3_000_000, "Largest JSON body the write API reads (413 past it)."
    ),
    # Readers' comments (#18).
    Setting("COMMENTS_MAX_LINKS", 3, "Most links one comment may hold (422 past it)."),
    Setting(
        "COMMENTS_BLOCKED_WORDS",
        "",
        "Comma-separated words or phrases that send a comment straight to spam.",
    ),
    Setting(
        "COMMENTS_CLOSE_DAYS",
        0,
        "Days after publication that comments close on posts set to auto (0: never).",
    ),
)

DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}


class ConfigError(Exception):
    """A setting is missing or invalid; the message says what to set."""


def _convert(name: str, value: Any) -> Any:
    default = DEFAULTS.get(name)
    if not isinstance(value, str):
        return value
    if isinstance(default, bool):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    if isinstance(default, int):
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value.strip())
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {value!r}") from None
    return value


def layered_settings(
    overrides: dict[str, Any] | None = None, *, env_file: Path | None = ROOT / ".env"
) -> dict[str, Any]:
    """Give the defaults overlaid with .env, the environment and `overrides`, converted."""
    config: dict[str, Any] = dict(DEFAULTS)
    layers: list[dict[str, Any]] = []
    if env_file is not None and env_file.exists():
        layers.append({k: v for k, v in dotenv_values(env_file).items() if k in DEFAULTS})
    layers.append({k: v for k, v in os.environ.items() if k in DEFAULTS})
    for layer in layers:
        for name, value in layer.items():
            if value is not None:
                config[name] = _convert(name, value)
    # Overrides may also carry values that are not settings (a session store, paths).
    for name, value in (overrides or {}).items():
        config[name] = _convert(name, value)
    if not config["WORKERS"]:
        config["WORKERS"] = _cpu_workers()
    return config


def load_config(
    overrides: dict[str, Any] | None = None, *, env_file: Path | None = ROOT / ".env"
) -> dict[str, Any]:
    """Give the settings as a dict, checked and with derived values filled in."""
    config = layered_settings(overrides, env_file=env_file)
    if not config.get("INSTANCE_PATH"):
        config["INSTANCE_PATH"] = str(ROOT / "instance")
    return finish_config(config)


def finish_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill in derived settings and stop with a clear message where one is missing."""
    instance = Path(config["INSTANCE_PATH"])
    base = urlsplit(str(config["BASE_URL"]))
    if base.scheme not in ("http", "https") or not base.hostname:
        raise ConfigError("BASE_URL must be an absolute http(s) URL, like https://blog.example")
    config["BASE_URL"] = str(config["BASE_URL"]).rstrip("/")
    hosts = config["ALLOWED_HOSTS"]
    if isinstance(hosts, str):
        hosts = [h.strip().lower() for h in hosts.split(",") if h.strip()]
    if not hosts:
        hosts = [base.hostname.lower(), "localhost", "127.0.0.1", "[::1]"]
    config["ALLOWED_HOSTS"] = tuple(hosts)
    try:
        config["TRUSTED_PROXIES"] = tuple(
            str(network) for network in parse_networks(config["TRUSTED_PROXIES"] or "")
        )
    except ValueError as error:
        raise ConfigError(f"TRUSTED_PROXIES: {error}") from None
    try:
        parse_networks(config["METRICS_ALLOW"] or "")
    except ValueError as error:
        raise ConfigError(f"METRICS_ALLOW: {error}") from None
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{instance / 'pyproject.sqlite3'}"
    if not config["SECRET_KEY"]:
        if not config["DEBUG"]:
            raise ConfigError(
                "SECRET_KEY is not set. Set it in .env or the environment (for example "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`), "
                "or set DEBUG=true for development."
            )
        config["SECRET_KEY"] = _development_secret(instance)
    return config


def metrics_folder(settings: dict[str, Any]) -> Path:
    """Give the folder where every process of the site keeps its metrics (made if missing)."""
    folder = Path(settings.get("INSTANCE_PATH") or ROOT / "instance") / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _development_secret(instance: Path) -> str:
    """Give the development secret kept in instance/secret_key, making it on first use."""
    path = instance / "secret_key"
    existing = _read_secret(path)
    if existing:
        return existing
    instance.mkdir(parents=True, exist_ok=True)
    # Write the whole key under a private name (mode 0600), then link it into place:
    # a worker starting at the same moment sees no file or a complete one, never an
    # empty key.
    fd, temp = tempfile.mkstemp(prefix=".secret_key-", dir=instance)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temp, path)
        except OSError:  # another worker made it first, or an empty file was left behind
            if not _read_secret(path):
                os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
