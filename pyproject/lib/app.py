"""The App: routes, hooks, error handlers, templates and the life of one request."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from pyproject.lib.errorpages import error_response, plain_500, unexpected_error_response
from pyproject.lib.exceptions import BadRequest, HTTPException
from pyproject.lib.http import check_header, is_token
from pyproject.lib.pagecache import PageCache
from pyproject.lib.request import Request
from pyproject.lib.response import Response, json_response, wsgi_parts
from pyproject.lib.routing import Router, RoutingError, Rule
from pyproject.lib.security import DEFAULT_CSP, check_csrf, csrf_token, security_headers
from pyproject.lib.sessions import MemoryStore, SessionInterface
from pyproject.lib.templating import make_environment

log = logging.getLogger("pyproject.request")

_current_request: contextvars.ContextVar[Request] = contextvars.ContextVar("request")
_current_app: contextvars.ContextVar[App] = contextvars.ContextVar("app")

View = Callable[..., Any]
# What start_response and the server need: status line, header list, body iterable.
WSGIParts = tuple[str, list[tuple[str, str]], Iterable[bytes]]


class Observed(NamedTuple):
    """One request, as `App.observer` hears of it once its status is sent."""

    endpoint: str  # the view's name ("" when no route matched)
    status: str  # "200", "404"...
    seconds: float  # from the start of the request until its headers were handed over
    cache: str | None  # "hit" or "miss" for a request the page cache could answer, else None


class App:
    """A WSGI application: call it with (environ, start_response)."""

    request_class = Request

    def __init__(self, config: dict[str, Any], *, template_folder: str) -> None:
        self.config = config
        self.router = Router()
        self.before_request_funcs: list[Callable[[Request], Any]] = []
        self.after_request_funcs: list[Callable[[Request, Response], Response]] = []
        self.teardown_funcs: list[Callable[[Request, BaseException | None], None]] = []
        self.context_processors: list[Callable[[Request | None], dict[str, Any]]] = []
        self.handlers_by_code: dict[int, Callable[[Request, Exception], Any]] = {}
        self.handlers_by_class: dict[type[BaseException], Callable[..., Any]] = {}
        self.session_interface = SessionInterface(MemoryStore())
        self.static_files: Any = None
        # Set by a site that keeps shared anonymous pages (see pyproject.lib.pagecache).
        self.page_cache: PageCache | None = None
        # Told of every request once its status is sent (metrics); never may it raise.
        self.observer: Callable[[Observed], None] | None = None
        self.trusted_origins: list[str] = []
        self.extensions: dict[str, Any] = {}
        self._got_first_request = False
        self.security_headers = security_headers(
            config.get("CONTENT_SECURITY_POLICY") or DEFAULT_CSP,
            hsts=str(config.get("BASE_URL", "")).startswith("https://"),
        )
        for name, value in self.security_headers:
            check_header(name, value)
        self.jinja_env = make_environment(
            template_folder,
            debug=bool(config.get("DEBUG")),
            globals_={
                "url_for": url_for,
                "static_url": static_url,
                "csrf_token": _template_csrf_token,
                "get_flashed_messages": get_flashed_messages,
            },
        )
        self.wsgi_app: Callable[..., Iterable[bytes]] = self._wsgi_app

    # --- registration ------------------------------------------------------------------

    def _check_setup(self) -> None:
        if self._got_first_request:
            raise RoutingError("the app has already handled a request; register routes at start-up")

    def add_route(
        self,
        rule: str,
        view: View,
        *,
        methods: Iterable[str] = ("GET",),
        endpoint: str | None = None,
        csrf: bool = True,
    ) -> None:
        """Register a view for a rule (GET also answers HEAD)."""
        self._check_setup()
        wanted = {m.upper() for m in methods}
        if "GET" in wanted:
            wanted.add("HEAD")
        self.router.add(
            Rule(rule, endpoint or view.__name__, frozenset(wanted), view, {"csrf": csrf})
        )

    def route(self, rule: str, **options: Any) -> Callable[[View], View]:
        """Register the decorated view for a rule: `@app.route("/posts/<slug:slug>")`."""

        def decorator(view: View) -> View:
            self.add_route(rule, view, **options)
            return view

        return decorator

    def before_request(self, func: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """Run `func(request)` before each view; a non-None return value is the response."""
        self.before_request_funcs.append(func)
        return func

    def after_request(self, func: Callable[[Request, Response], Response]):
        """Run `func(request, response)` on every response (error pages too); it gives the
        response to send. They run before the session is saved and before teardown."""
        self.after_request_funcs.append(func)
        return func

    def teardown_request(self, func: Callable[[Request, BaseException | None], None]):
        """Run `func(request, error)` at the end of every request, whatever happened."""
        self.teardown_funcs.append(func)
        return func

    def context_processor(self, func: Callable[[Request | None], dict[str, Any]]):
        """Add the dict `func(request)` gives to every template's context."""
        self.context_processors.append(func)
        return func

    def errorhandler(self, key: int | type[BaseException]):
        """Register `func(request, error)` for a status code or an exception class."""

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            if isinstance(key, int):
                self.handlers_by_code[key] = func
            else:
                self.handlers_by_class[key] = func
            return func

        return decorator

    # --- the life of a request -------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        return self.wsgi_app(environ, start_response)

    def _wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        """The life of a request: the page cache's kept answer, else the app's own."""
        started = time.perf_counter()
        pages = self.page_cache
        shareable = pages is not None and self.is_anonymous(environ)
        kept = pages.answer(environ) if shareable else None
        if kept is not None:
            status, headers, body, length = kept.status, kept.headers, kept.body, kept.length
            endpoint = kept.endpoint
        else:
            request = self.request_class(environ)
            response, (status, headers, body) = self.respond(request)
            if response.shared is not None and shareable:
                body = pages.keep(request, response.shared, status, headers, body)
            length = response.headers.get("Content-Length", "-")
            endpoint = request.endpoint or ""
        start_response(status, headers)
        if self.observer is not None:
            cache = None if not shareable else ("hit" if kept is not None else "miss")
            self.observer(Observed(endpoint, status[:3], time.perf_counter() - started, cache))
        if log.isEnabledFor(logging.DEBUG):
            log_request(environ, status, length, started)
        return body

    def respond(self, request: Request) -> tuple[Response, WSGIParts]:
        """Give a request's response and its WSGI parts, whatever fails on the way.

        Dispatch (hooks, routing, CSRF, the view), the after-request hooks, then sealing
        (the session saved, security headers added); teardown always runs after.
        """
        self._got_first_request = True
        tokens = (_current_app.set(self), _current_request.set(request))
        error: BaseException | None = None
        try:
            try:
                response = self.full_dispatch(request)
            except Exception as exc:  # every error becomes a response; never a bare 500
                error = exc
                response = self.handle_exception(request, exc)
            try:
                response = self.process_response(request, response)
            except Exception as exc:  # an after-request hook failed: our bug, a 500
                error = exc
                response = unexpected_error_response(self, request, exc)
            try:
                parts = self.seal(request, response)
            except Exception as exc:  # a header with CR/LF, a broken body: our bug, a 500
                error = exc
                response = unexpected_error_response(self, request, exc)
                parts = self.seal(request, response, save_session=False)
        finally:
            self.teardown(request, error)
            request.close()
            _current_request.reset(tokens[1])
            _current_app.reset(tokens[0])
        return response, parts

    def is_anonymous(self, environ: dict[str, Any]) -> bool:
        """Give whether a request comes without a session: the pages it gets are everyone's.

        The one place that decides it, for the page cache and for views alike.
        """
        return not self.session_interface.carries_session(environ)

    def full_dispatch(self, request: Request) -> Response:
        """Give the response for a request: before-hooks, routing, CSRF, the view."""
        if not is_token(request.method):
            raise BadRequest("The request method is malformed.")
        request.host  # noqa: B018 - validates Host against ALLOWED_HOSTS (400 otherwise)
        request.session = self.session_interface.open(request.environ, request.cookies)
        response = None
        for func in self.before_request_funcs:
            value = func(request)
            if value is not None:
                response = self.make_response(value)
                break
        if response is None:
            response = self.dispatch(request)
        return response

    def process_response(self, request: Request, response: Response) -> Response:
        """Run the after-request hooks, for error pages too, before the session is saved."""
        for func in reversed(self.after_request_funcs):
            response = func(request, response)
        return response

    def dispatch(self, request: Request) -> Response:
        """Match the route, check CSRF and call the view."""
        if request.method == "OPTIONS":
            allowed = self.router.allowed_methods(request.path)
            if allowed:
                return Response(b"", 204, {"Allow": ", ".join(sorted(allowed))})
        rule, args = self.router.match(request.path, request.method, request.query_string)
        request.endpoint, request.view_args = rule.endpoint, args
        if rule.options["csrf"]:
            check_csrf(request, request.session, self.trusted_origins)
        return self.make_response(rule.view(request, **args))

    def make_response(self, value: Any) -> Response:
        """Turn what a view gave back into a Response."""
        if isinstance(value, Response):
            return value
        status, headers = 200, None
        if isinstance(value, tuple):
            if len(value) == 2:
                value, status = value
            elif len(value) == 3:
                value, status, headers = value
            else:
                raise TypeError("a view's tuple is (body, status) or (body, status, headers)")
        if isinstance(value, Response):
            value.status_code = status
            if headers:
                for name, header in dict(headers).items():
                    value.headers.set(name, header)
            return value
        if isinstance(value, dict | list):
            return json_response(value, status, headers)
        if isinstance(value, str | bytes):
            return Response(value, status, headers)
        raise TypeError(f"a view returned {type(value).__name__}, not a response")

    def handler_for_class(self, cls: type[BaseException]) -> Callable[..., Any] | None:
        """Give the handler registered for the nearest class in `cls`'s MRO, if any.

        The most specific registration wins, whatever order they were made in.
        """
        for klass in cls.__mro__:
            handler = self.handlers_by_class.get(klass)
            if handler is not None:
                return handler
        return None

    def handle_exception(self, request: Request, exc: Exception) -> Response:
        """Give the response for an exception: a registered handler, else the error page."""
        try:
            handler = None
            if isinstance(exc, HTTPException):
                handler = self.handlers_by_code.get(exc.code)
            if handler is None:
                handler = self.handler_for_class(type(exc))
            if handler is None and not isinstance(exc, HTTPException):
                handler = self.handlers_by_code.get(500)
                if handler is not None:
                    log.error("unhandled exception", exc_info=exc)
            if handler is not None:
                return self.make_response(handler(request, exc))
            if isinstance(exc, HTTPException):
                return error_response(self, request, exc)
            return unexpected_error_response(self, request, exc)
        except Exception as second:  # the error handler itself failed
            log.error("error handler failed", exc_info=second)
            return plain_500()

    def seal(self, request: Request, response: Response, *, save_session: bool = True) -> WSGIParts:
        """Close a response for sending: save the session, then give its WSGI parts
        (`wsgi_parts`) with the app's security headers added."""
        session = getattr(request, "session", None)
        if save_session and session is not None:
            self.session_interface.save(request.environ, session, response)
        status, headers, body = wsgi_parts(response, request.environ)
        # Added after the check in wsgi_parts(): constants, checked once at start-up.
        present = {name.lower() for name, _ in headers}
        headers.extend(h for h in self.security_headers if h[0].lower() not in present)
        return status, headers, body

    def teardown(self, request: Request, error: BaseException | None) -> None:
        for func in reversed(self.teardown_funcs):
            try:
                func(request, error)
            except Exception:
                log.exception("teardown function failed")

    # --- helpers ---------------------------------------------------------------------

    def url_for(self, endpoint: str, *, _external: bool = False, **values: Any) -> str:
        """Give the URL of an endpoint; extra values become the query string."""
        return self._url_root(_external) + self.router.build(endpoint, values)

    def url_builder(self, endpoint: str, name: str, *, _external: bool = False):
        """Give a function of one value that gives url_for(endpoint, name=value) (fast)."""
        build, root = self.router.builder(endpoint, name), self._url_root(_external)
        return lambda value: root + build(value)

    def _url_root(self, external: bool) -> str:
        """Give what goes before a path: the site's base URL, or the app's mount point."""
        if external:
            return str(self.config["BASE_URL"]).rstrip("/")
        request = _current_request.get(None)
        return request.script_root if request is not None else ""

    def render_template(self, name: str | list[str], **context: Any) -> str:
        """Give a template rendered with the context processors' values and `context`."""
        request = _current_request.get(None)
        values: dict[str, Any] = {"request": request, "config": self.config}
        for func in self.context_processors:
            values.update(func(request))
        values.update(context)
        template = self.jinja_env.get_or_select_template(name)
        return template.render(values)

    def test_client(self, **kwargs: Any):
        """Give an in-process client for this app (see pyproject.lib.testing)."""
        from pyproject.lib.testing import TestClient

        return TestClient(self, **kwargs)


# --- module-level helpers that use the current request ------------------------------------


def current_app() -> App:
    """Give the app handling the current request."""
    return _current_app.get()


def current_request() -> Request | None:
    """Give the request being handled, or None outside a request."""
    return _current_request.get(None)


def url_for(endpoint: str, **values: Any) -> str:
    """Give the URL of an endpoint in the current app (see App.url_for)."""
    return _current_app.get().url_for(endpoint, **values)


def static_url(filename: str) -> str:
    """Give the fingerprinted URL of a file in static/."""
    return _current_app.get().static_files.url_for(filename)


def render_template(name: str | list[str], **context: Any) -> str:
    """Give a template of the current app rendered with `context`."""
    return _current_app.get().render_template(name, **context)


def log_request(environ: dict[str, Any], status: str, length: str, started: float) -> None:
    """Log one request's line at DEBUG: method, path, status, body length and time taken.

    Only where an operator asked for it (LOG_LEVEL=DEBUG): under gunicorn its access
    log is the usual place for request lines.
    """
    log.debug(
        "%s %s %s %s %.1fms",
        _printable(environ.get("REQUEST_METHOD", "GET")),
        _printable(environ.get("PATH_INFO", "")),
        status[:3],
        length,
        (time.perf_counter() - started) * 1000,
    )


def _printable(text: str) -> str:
    """Give text with control characters escaped, so a client cannot forge log lines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _template_csrf_token() -> str:
    request = _current_request.get()
    return csrf_token(request.session)


def flash(message: str, category: str = "info") -> None:
    """Keep a message for the next page the visitor sees."""
    session = _current_request.get().session
    session["_flashes"] = [*session.get("_flashes", []), [category, message]]


def get_flashed_messages(with_categories: bool = False) -> list[Any]:
    """Give and forget the messages kept by `flash`."""
    request = _current_request.get(None)
    session = getattr(request, "session", None)
    if session is None or session.get("_flashes") is None:
        return []
    messages = session.pop("_flashes")
    return [tuple(m) for m in messages] if with_categories else [m[1] for m in messages]
