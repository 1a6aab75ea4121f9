"""The Request: a lazy, parse-once view of a WSGI environ.

Every property is computed on first use and cached. Limits are class attributes
(the app sets them from configuration; tests may change them on a subclass): a
body over `max_content_length` is refused with 413 before it is read.
"""

from __future__ import annotations

import json
import re
import tempfile
from typing import Any
from urllib.parse import parse_qsl

import multipart

from pyproject.lib.datastructures import EnvironHeaders, FileStorage, MultiDict, cached_property
from pyproject.lib.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType
from pyproject.lib.http import parse_cookie, parse_options_header, prefers_json

_CHUNK = 64 * 1024


class Request:
    """One HTTP request, wrapping the WSGI environ."""

    max_content_length: int = 16 * 1024 * 1024
    max_form_fields: int = 1000
    max_form_parts: int = 1000
    max_form_memory_size: int = 500_000
    spool_file_size: int = 512 * 1024
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        # Things the app or hooks attach for the rest of the request (session, user, db).
        self.context: dict[str, Any] = {}
        self.endpoint: str | None = None
        self.view_args: dict[str, Any] = {}
        self.session: Any = None  # set by the app from its session interface
        self._body: bytes | None = None
        self._spooled: list[FileStorage] = []

    # --- the request line ----------------------------------------------------------

    @cached_property
    def method(self) -> str:
        """Give the request method as sent (methods are case-sensitive: `post` is not POST)."""
        return self.environ.get("REQUEST_METHOD", "GET")

    @cached_property
    def path(self) -> str:
        """Give the URL path as text: WSGI's latin-1 undone, then decoded as UTF-8."""
        raw = self.environ.get("PATH_INFO", "") or "/"
        try:
            return raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise BadRequest("The address is not valid UTF-8.") from None

    @cached_property
    def script_root(self) -> str:
        """Give the mount point of the app (SCRIPT_NAME), usually empty."""
        raw = self.environ.get("SCRIPT_NAME", "")
        return raw.encode("latin-1").decode("utf-8", "replace").rstrip("/")

    @cached_property
    def query_string(self) -> str:
        """Give the raw query string (latin-1 text as WSGI gives it)."""
        return self.environ.get("QUERY_STRING", "")

    @cached_property
    def full_path(self) -> str:
        """Give the path and, if any, the query string, for `next=` links."""
        from urllib.parse import quote

        path = quote(self.path, safe="/:@!$&'()*+,;=-._~")
        return f"{path}?{self.query_string}" if self.query_string else path

    @cached_property
    def args(self) -> MultiDict:
        """Give the query-string parameters."""
        return self._parse_urlencoded(self.query_string.encode("latin-1"), "query string")

    # --- headers and connection ----------------------------------------------------

    @cached_property
    def headers(self) -> EnvironHeaders:
        """Give the request headers, case-insensitive."""
        return EnvironHeaders(self.environ)

    @cached_property
    def cookies(self) -> dict[str, str]:
        """Give the request cookies (malformed pairs are skipped, the first of a name wins)."""
        raw = self.environ.get("HTTP_COOKIE", "")
        try:
            text = raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            text = raw.encode("latin-1").decode("utf-8", "replace")
        return parse_cookie(text)

    @cached_property
    def content_type(self) -> str:
        """Give the Content-Type header as sent."""
        return self.environ.get("CONTENT_TYPE", "")

    @cached_property
    def mimetype(self) -> str:
        """Give the lower-cased media type of the body, without parameters."""
        return parse_options_header(self.content_type)[0]

    @cached_property
    def content_length(self) -> int | None:
        """Give the declared body length, None if not declared; 400 if it is not a number."""
        raw = self.environ.get("CONTENT_LENGTH", "")
        if raw is None or raw.strip() == "":
            return None
        raw = raw.strip()
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise BadRequest("The Content-Length header is not a valid number.")
        return int(raw)

    @cached_property
    def scheme(self) -> str:
        """Give "http" or "https" as the server saw it (gunicorn applies trusted proxies)."""
        return self.environ.get("wsgi.url_scheme", "http")

    @property
    def is_secure(self) -> bool:
        return self.scheme == "https"

    @cached_property
    def remote_addr(self) -> str:
        """Give the client's address (as the WSGI server determined it)."""
        return self.environ.get("REMOTE_ADDR", "") or ""

    @cached_property
    def host(self) -> str:
        """Give the Host the client asked for, after checking it against `allowed_hosts`.

        Raises 400 for a missing, malformed or unknown host, so nothing downstream ever
        trusts a Host header the site does not own.
        """
        raw = self.environ.get("HTTP_HOST")
        if raw is None and self.environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
            raise BadRequest("An HTTP/1.1 request needs a Host header.")
        if raw is None:
            raw = self.environ.get("SERVER_NAME", "")
            port = self.environ.get("SERVER_PORT", "")
            if port and port not in ("80", "443"):
                raw = f"{raw}:{port}"
        host = raw.strip().lower()
        problem = host_problem(host, tuple(self.allowed_hosts))
        if problem:
            raise BadRequest(problem)
        return host

    @cached_property
    def wants_json(self) -> bool:
        """Give whether the client ranks JSON above HTML, or asked on the /api/ path."""
        if self.environ.get("PATH_INFO", "").startswith("/api/"):
            return True
        return prefers_json(self.environ.get("HTTP_ACCEPT"))

    # --- the body ------------------------------------------------------------------

    def _check_declared_length(self) -> None:
        length = self.content_length
        if length is not None and length > self.max_content_length:
            raise RequestEntityTooLarge(
                f"The request body is larger than the limit of {self.max_content_length} bytes."
            )

    def _iter_body(self):
        """Yield the body in chunks, never more than the limit (413 past it)."""
        self._check_declared_length()
        stream = self.environ.get("wsgi.input")
        length = self.content_length
        if stream is None:
            return
        if length is None:
            # Only a server that marks the input as terminated (gunicorn, for chunked
            # bodies) lets us read to the end; otherwise there is no body.
            if not self.environ.get("wsgi.input_terminated"):
                return
            remaining = self.max_content_length + 1
        else:
            remaining = length
        received = 0
        while remaining > 0:
            chunk = stream.read(min(_CHUNK, remaining))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
            if received > self.max_content_length:
                raise RequestEntityTooLarge(
                    f"The request body is larger than the limit of {self.max_content_length} bytes."
                )
            yield chunk

    def get_data(self) -> bytes:
        """Give the whole body as bytes (read once, within the size limit)."""
        if self._body is None:
            self._body = b"".join(self._iter_body())
        return self._body

    @cached_property
    def json(self) -> Any:
        """Give the parsed JSON body; 415 if it is not JSON, 400 if it does not parse."""
        if self.mimetype != "application/json" and not self.mimetype.endswith("+json"):
            raise UnsupportedMediaType("This address expects a JSON body.")
        try:
            return json.loads(self.get_data().decode("utf-8"))
        except (UnicodeError, ValueError, RecursionError):  # deep nesting: RecursionError
            raise BadRequest("The JSON body could not be parsed.") from None

    @cached_property
    def _form_and_files(self) -> tuple[MultiDict, MultiDict]:
        if self.method in ("GET", "HEAD", "OPTIONS", "DELETE", "TRACE"):
            return MultiDict(), MultiDict()
        mimetype, params = parse_options_header(self.content_type)
        if mimetype == "application/x-www-form-urlencoded":
            return self._parse_urlencoded(self.get_data(), "form"), MultiDict()
        if mimetype == "multipart/form-data":
            return self._parse_multipart(params.get("boundary", ""))
        return MultiDict(), MultiDict()

    @property
    def form(self) -> MultiDict:
        """Give the fields of a url-encoded or multipart form body."""
        return self._form_and_files[0]

    @property
    def files(self) -> MultiDict:
        """Give the uploaded files of a multipart body (FileStorage values)."""
        return self._form_and_files[1]

    def _parse_urlencoded(self, data: bytes, what: str) -> MultiDict:
        if not data:
            return MultiDict()
        if data.count(b"&") + data.count(b";") >= self.max_form_fields:
            raise RequestEntityTooLarge(f"The {what} has more than {self.max_form_fields} fields.")
        try:
            text = data.decode("utf-8")
            pairs = parse_qsl(
                text,
                keep_blank_values=True,
                encoding="utf-8",
                errors="strict",
                separator="&",
            )
        except UnicodeError:
            raise BadRequest(f"The {what} is not valid UTF-8.") from None
        except ValueError:
            raise BadRequest(f"The {what} could not be parsed.") from None
        for _, value in pairs:
            if len(value) > self.max_form_memory_size:
                raise RequestEntityTooLarge(
                    f"A field of the {what} is larger than {self.max_form_memory_size} bytes."
                )
        return MultiDict(pairs)

    def _parse_multipart(self, boundary: str) -> tuple[MultiDict, MultiDict]:
        if not boundary:
            raise BadRequest("The multipart body has no boundary.")
        form, files = MultiDict(), MultiDict()
        try:
            parser = multipart.PushMultipartParser(
                boundary,
                content_length=self.content_length if self.content_length is not None else -1,
                max_segment_count=self.max_form_parts,
                max_header_size=4096 + 128,
            )
        except multipart.MultipartError:
            raise BadRequest("The multipart boundary is not valid.") from None
        segment = None
        buffer: bytearray | None = None
        upload = None
        try:
            with parser:
                for chunk in self._iter_body():
                    for event in parser.parse(chunk):
                        if isinstance(event, multipart.MultipartSegment):
                            segment = event
                            if segment.filename is not None:
                                upload = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed in close()
                                    max_size=self.spool_file_size
                                )
                                buffer = None
                            else:
                                upload = None
                                buffer = bytearray()
                        elif event is not None:
                            if upload is not None:
                                upload.write(event)
                            else:
                                buffer += event
                                if len(buffer) > self.max_form_memory_size:
                                    raise RequestEntityTooLarge(
                                        f"A form field is larger than "
                                        f"{self.max_form_memory_size} bytes."
                                    )
                        else:
                            self._finish_part(segment, buffer, upload, form, files)
                            segment, buffer, upload = None, None, None
                try:
                    parser.close()  # end of input: raises if the closing boundary never came
                except multipart.MultipartError:
                    raise BadRequest("The multipart body ended too early.") from None
        except multipart.ParserLimitReached:
            if upload is not None:
                upload.close()
            self.close()
            raise RequestEntityTooLarge(
                f"The form has more than {self.max_form_parts} parts, or a part header is too long."
            ) from None
        except multipart.MultipartError:
            if upload is not None:
                upload.close()
            self.close()
            raise BadRequest("The multipart body is malformed.") from None
        except BaseException:
            if upload is not None:
                upload.close()
            self.close()
            raise
        return form, files

    def _finish_part(self, segment, buffer, upload, form: MultiDict, files: MultiDict) -> None:
        if segment is None:
            return
        name = segment.name or ""
        if upload is not None:
            size = upload.tell()
            upload.seek(0)
            storage = FileStorage(
                name=name,
                filename=segment.filename or "",
                content_type=segment.content_type or "application/octet-stream",
                stream=upload,
                size=size,
                headers=dict(segment.headerlist),
            )
            self._spooled.append(storage)
            files.add(name, storage)
            return
        charset = segment.charset or "utf-8"
        try:
            form.add(name, bytes(buffer or b"").decode(charset))
        except (UnicodeError, LookupError):
            raise BadRequest("A form field is not valid UTF-8.") from None

    def close(self) -> None:
        """Close every spooled upload (their temporary files go with them)."""
        for storage in self._spooled:
            storage.close()
        self._spooled.clear()


# (Host value, allowed hosts) -> "" when allowed, else why not.
_HOST_VERDICTS: dict[tuple[str, tuple[str, ...]], str] = {}
_HOST_NAME = re.compile(r"([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?\Z")
_HOST_IPV6 = re.compile(r"(\[[0-9a-fA-F:.]+\])(?::([0-9]{1,5}))?\Z")


def host_problem(host: str, allowed: tuple[str, ...]) -> str:
    """Give why a (stripped, lower-cased) Host value is refused, or "" when it is allowed."""
    known = _HOST_VERDICTS.get((host, allowed))
    if known is None:
        name = split_host(host)
        if name is None:
            known = "The Host header is missing or malformed."
        elif not host_allowed(name, allowed):
            known = "This site does not answer to that host name."
        else:
            known = ""
        if len(_HOST_VERDICTS) < 1024:  # a bounded memo: hostile hosts cannot grow it
            _HOST_VERDICTS[(host, allowed)] = known
    return known


def split_host(host: str) -> str | None:
    """Give the host name of a Host value (port dropped), or None if the value is malformed."""
    if not host or len(host) > 255:
        return None
    found = (_HOST_IPV6 if host.startswith("[") else _HOST_NAME).match(host)
    if found is None or (found.group(2) is not None and int(found.group(2)) > 65535):
        return None
    return found.group(1).lower()


def host_allowed(name: str, allowed: tuple[str, ...] | list[str]) -> bool:
    """Give whether a host name matches the allowed list ("*", exact, or ".example.com")."""
    name = name.rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith(".") and (name == pattern[1:] or name.endswith(pattern)):
            return True
    return False
