"""Pure HTTP helpers: dates, ETags, conditional requests, cookies, header checks, paths.

Every function here is small, has no side effects and is tested directly in
tests/lib/test_http.py; the Request, Response and static middleware build on them.
"""

from __future__ import annotations

import email.utils
import functools
import os
import posixpath
import re
from datetime import UTC, datetime
from http import HTTPStatus
from urllib.parse import unquote

STATUS_PHRASES: dict[int, str] = {s.value: s.phrase for s in HTTPStatus}


_STATUS_LINES: dict[int, str] = {
    code: f"{code} {phrase}" for code, phrase in STATUS_PHRASES.items()
}


def status_line(code: int) -> str:
    """Give the WSGI status string ("404 Not Found") for a status code."""
    line = _STATUS_LINES.get(code)
    if line is None:
        raise ValueError(f"unknown HTTP status code {code}")
    return line


# --- dates -----------------------------------------------------------------------------


def http_date(value: datetime | float) -> str:
    """Give an RFC 9110 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") for a time."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.timestamp()
    return _format_http_date(int(value))


@functools.lru_cache(maxsize=256)
def _format_http_date(seconds: int) -> str:
    # Pages and files repeat a few Last-Modified times: format each once.
    return email.utils.formatdate(seconds, usegmt=True)


def parse_http_date(value: str | None) -> datetime | None:
    """Give the aware UTC datetime an HTTP date header names, or None if it is not one."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # "31 Dec 9999 23:59:59 -2359" is past what datetime holds in UTC
        return None


# --- ETags -----------------------------------------------------------------------------

_ETAG_RE = re.compile(r'\s*(W/)?"([^"]*)"\s*,?')


_BAD_ETAG = re.compile(r'["\x00-\x20\x7f]')


def quote_etag(tag: str, weak: bool = False) -> str:
    """Give the header form of an entity tag: the tag in quotes, W/ before it if weak."""
    if _BAD_ETAG.search(tag):
        raise ValueError("an entity tag may not hold quotes, spaces or control characters")
    return f'{"W/" if weak else ""}"{tag}"'


def parse_etags(value: str | None) -> tuple[set[str], bool]:
    """Give the opaque tags of an If-None-Match value (weakness dropped) and whether it was *."""
    if not value:
        return set(), False
    if value.strip() == "*":
        return set(), True
    return {m.group(2) for m in _ETAG_RE.finditer(value)}, False


def unquote_etag(value: str) -> str:
    """Give the opaque part of a quoted (possibly weak) entity tag."""
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def is_not_modified(
    *,
    etag: str | None,
    last_modified: datetime | None,
    if_none_match: str | None,
    if_modified_since: str | None,
) -> bool:
    """Give whether a GET/HEAD may be answered 304 (If-None-Match wins over If-Modified-Since).

    `etag` is the header form (quoted); comparison is weak, as RFC 9110 asks for
    If-None-Match.
    """
    if if_none_match:
        if if_none_match == etag:  # what a browser revalidating its copy sends
            return True
        tags, star = parse_etags(if_none_match)
        if star:
            return etag is not None
        return etag is not None and unquote_etag(etag) in tags
    if if_modified_since and last_modified is not None:
        since = parse_http_date(if_modified_since)
        if since is None:
            return False
        if last_modified.tzinfo is None:  # naive times are UTC here, as in http_date
            last_modified = last_modified.replace(tzinfo=UTC)
        return last_modified.replace(microsecond=0) <= since
    return False


# --- header values ---------------------------------------------------------------------

# \Z, not $: `$` also matches before a trailing newline, which would let "X-Name\n" through.
# A token is what header, method and cookie names are made of.
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def is_token(value: str) -> bool:
    """Give whether a string is an RFC 9110 token (a valid header or method name)."""
    return bool(_TOKEN_RE.match(value))


_GOOD_NAMES: set[str] = set()


def check_header(name: str, value: str) -> None:
    """Raise ValueError if a header name is not a token or its value holds CR, LF or NUL."""
    if name not in _GOOD_NAMES:
        if not is_token(name):
            raise ValueError(f"invalid header name {name!r}")
        if len(_GOOD_NAMES) < 512:  # names are few; a bounded memo of the valid ones
            _GOOD_NAMES.add(name)
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"header {name} holds a CR, LF or NUL character")


def parse_options_header(value: str | None) -> tuple[str, dict[str, str]]:
    """Give the main value (lower-cased) and the parameters of a header like Content-Type."""
    if not value:
        return "", {}
    parts = _split_params(value)
    main = parts[0].strip().lower()
    params: dict[str, str] = {}
    for item in parts[1:]:
        key, sep, val = item.partition("=")
        if not sep:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[key.strip().lower()] = val
    return main, params


def _split_params(value: str) -> list[str]:
    parts, current, quoted, escaped = [], [], False, False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_accept(value: str | None) -> list[tuple[str, float]]:
    """Give the media ranges of an Accept header with their q-values, best first."""
    if not value:
        return []
    ranges = []
    for index, item in enumerate(value.split(",")):
        media, params = parse_options_header(item)
        if not media:
            continue
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0
        if not 0 <= q <= 1:
            q = 0.0
        ranges.append((media, q, index))
    ranges.sort(key=lambda r: (-r[1], r[2]))
    return [(media, q) for media, q, _ in ranges]


def prefers_json(accept: str | None) -> bool:
    """Give whether a client's Accept header ranks JSON above HTML."""
    best_json = best_html = 0.0
    for media, q in parse_accept(accept):
        if media in ("application/json", "application/problem+json") or media.endswith("+json"):
            best_json = max(best_json, q)
        elif media in ("text/html", "application/xhtml+xml", "*/*", "text/*"):
            best_html = max(best_html, q)
    return best_json > best_html


# --- cookies ---------------------------------------------------------------------------

_COOKIE_VALUE_RE = re.compile(r"^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*\Z")


def parse_cookie(header: str | None) -> dict[str, str]:
    """Give the cookies of a Cookie header; where a name repeats, the first one wins.

    Pairs that are malformed are skipped rather than failing the request: a browser
    or an attacker may send anything here.
    """
    cookies: dict[str, str] = {}
    if not header:
        return cookies
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        if not sep:
            continue
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if not _TOKEN_RE.match(name) or not _COOKIE_VALUE_RE.match(value):
            continue
        cookies.setdefault(name, value)
    return cookies


def dump_cookie(
    name: str,
    value: str = "",
    *,
    max_age: int | None = None,
    expires: datetime | float | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = True,
    samesite: str | None = "Lax",
) -> str:
    """Give a Set-Cookie header value; refuse names and values a browser would mangle."""
    if not _TOKEN_RE.match(name):
        raise ValueError(f"invalid cookie name {name!r}")
    if not _COOKIE_VALUE_RE.match(value):
        raise ValueError("cookie values may hold only printable ASCII without ; , \\ or quotes")
    parts = [f"{name}={value}"]
    if max_age is not None:
        parts.append(f"Max-Age={int(max_age)}")
    if expires is not None:
        parts.append(f"Expires={http_date(expires)}")
    for label, attr in (("Path", path), ("Domain", domain)):
        if attr is not None:
            if any(c in attr for c in ";\r\n\0,"):
                raise ValueError(f"invalid cookie {label}")
            parts.append(f"{label}={attr}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite is not None:
        if samesite.capitalize() not in ("Strict", "Lax", "None"):
            raise ValueError("SameSite must be Strict, Lax or None")
        if samesite.capitalize() == "None" and not secure:
            raise ValueError("SameSite=None needs Secure")
        parts.append(f"SameSite={samesite.capitalize()}")
    return "; ".join(parts)


# --- paths and URLs --------------------------------------------------------------------


def safe_join(directory: str, untrusted: str) -> str | None:
    """Give the real path of `untrusted` inside `directory`, or None if it would leave it.

    `untrusted` is an already percent-decoded URL path. Refused: NUL, backslashes,
    `%` (a second encoding layer), absolute paths, `..` segments, hidden segments (a
    leading dot), and anything whose real path (after following symbolic links) is not
    inside the real `directory`.
    """
    if not untrusted or any(c in untrusted for c in "\0\\%"):
        return None
    if untrusted.startswith("/") or (len(untrusted) > 1 and untrusted[1] == ":"):
        return None
    segments = untrusted.split("/")
    if any(seg in ("", ".", "..") or seg.startswith(".") for seg in segments):
        return None
    root = os.path.realpath(directory)
    candidate = os.path.realpath(os.path.join(root, *segments))
    if os.path.commonpath([root, candidate]) != root or candidate == root:
        return None
    return candidate


def is_safe_redirect(target: str | None) -> bool:
    """Give whether `target` is a path on this site (not //host, not a scheme, no controls)."""
    if not target or not target.startswith("/"):
        return False
    # Check the decoded form too: %0d%0a, %5c or %2f%2f are only safe until someone decodes.
    decoded = unquote(target)
    if decoded.startswith(("//", "/\\")):
        return False
    return not any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in target + decoded)


def normalize_path(path: str) -> str:
    """Give a URL path with `.`/`..` segments resolved, never climbing above the root."""
    trailing = path.endswith("/")
    result = posixpath.normpath("/" + path.lstrip("/"))
    if result.startswith("//"):
        result = "/" + result.lstrip("/")
    if trailing and result != "/":
        result += "/"
    return result
