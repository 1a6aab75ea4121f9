"""Tests for pyproject/lib/exceptions.py: errors are objects that know their status."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyproject.lib import exceptions
from pyproject.lib.exceptions import (
    BadRequest,
    Conflict,
    CSRFError,
    Forbidden,
    Gone,
    HTTPException,
    InternalServerError,
    LengthRequired,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    NotImplementedMethod,
    Redirect,
    RequestEntityTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnprocessableEntity,
    UnsupportedMediaType,
    URITooLong,
    abort,
    exception_for,
)

ROOT = Path(__file__).resolve().parents[2]

ERRORS = [
    (BadRequest, 400, "Bad Request"),
    (Unauthorized, 401, "Unauthorized"),
    (Forbidden, 403, "Forbidden"),
    (CSRFError, 403, "Forbidden"),
    (NotFound, 404, "Not Found"),
    (NotAcceptable, 406, "Not Acceptable"),
    (Conflict, 409, "Conflict"),
    (Gone, 410, "Gone"),
    (LengthRequired, 411, "Length Required"),
    (RequestEntityTooLarge, 413, "Request Entity Too Large"),
    (URITooLong, 414, "Request-URI Too Long"),
    (UnsupportedMediaType, 415, "Unsupported Media Type"),
    (UnprocessableEntity, 422, "Unprocessable Entity"),
    (TooManyRequests, 429, "Too Many Requests"),
    (InternalServerError, 500, "Internal Server Error"),
    (NotImplementedMethod, 501, "Not Implemented"),
    (ServiceUnavailable, 503, "Service Unavailable"),
]


# --- codes, names, descriptions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "code", "name"), ERRORS, ids=[cls.__name__ for cls, _, _ in ERRORS]
)
def test_each_error_knows_its_code_name_and_a_description(cls, code, name):
    error = cls()

    assert isinstance(error, HTTPException)
    assert isinstance(error, Exception)
    assert error.code == code
    assert error.name == name
    assert error.description == cls.description
    assert error.description.strip().endswith(".")
    assert error.headers == []
    assert str(error) == f"{code} {name}: {cls.description}"


def test_the_base_class_is_a_500_with_a_generic_description():
    error = HTTPException()

    assert (error.code, error.name) == (500, "Internal Server Error")
    assert error.description == "Something went wrong on our side."


def test_a_description_given_replaces_the_default_for_that_error_only():
    error = NotFound("No post has that slug.")

    assert error.description == "No post has that slug."
    assert str(error) == "404 Not Found: No post has that slug."
    assert NotFound().description == "There is nothing at this address."


def test_headers_given_are_copied_not_shared():
    given = [("X-Reason", "testing")]

    error = Conflict(headers=given)
    given.append(("X-Later", "no"))

    assert error.headers == [("X-Reason", "testing")]
    assert Conflict().headers == []


def test_an_unknown_code_on_a_subclass_is_named_error():
    odd = type("Odd", (HTTPException,), {"code": 599})

    assert odd().name == "Error"


# --- the hierarchy -------------------------------------------------------------------------


def test_a_csrf_error_is_a_forbidden():
    error = CSRFError()

    assert isinstance(error, Forbidden)
    assert error.code == 403
    assert "security token" in error.description
    assert error.description != Forbidden.description


def test_every_error_class_of_the_module_is_exported_and_derives_from_httpexception():
    classes = {
        name
        for name, value in vars(exceptions).items()
        if inspect.isclass(value) and issubclass(value, Exception) and not name.startswith("_")
    }

    assert classes <= set(exceptions.__all__)
    for name in classes:
        assert issubclass(getattr(exceptions, name), HTTPException), name


def test_catching_httpexception_catches_every_error():
    for cls, _, _ in ERRORS:
        with pytest.raises(HTTPException):
            raise cls()


# --- headers the errors carry --------------------------------------------------------------


def test_method_not_allowed_carries_allow_sorted_without_duplicates():
    error = MethodNotAllowed(["POST", "GET", "HEAD", "GET"])

    assert error.code == 405
    assert error.name == "Method Not Allowed"
    assert error.allowed == ["GET", "HEAD", "POST"]
    assert error.headers == [("Allow", "GET, HEAD, POST")]


def test_method_not_allowed_takes_a_description_too():
    error = MethodNotAllowed(("GET",), "Only reading here.")

    assert error.description == "Only reading here."
    assert error.headers == [("Allow", "GET")]


@pytest.mark.parametrize(("retry_after", "header"), [(120, "120"), (0, "0"), (2.9, "2")])
def test_too_many_requests_carries_retry_after_in_whole_seconds(retry_after, header):
    error = TooManyRequests(retry_after=retry_after)

    assert error.headers == [("Retry-After", header)]
    assert error.retry_after == retry_after


def test_too_many_requests_without_retry_after_sends_no_header():
    error = TooManyRequests("Slow down.")

    assert error.headers == []
    assert error.retry_after is None
    assert error.description == "Slow down."


def test_service_unavailable_carries_a_retry_after_given_as_a_header():
    error = ServiceUnavailable(headers=[("Retry-After", "30")])

    assert error.code == 503
    assert error.headers == [("Retry-After", "30")]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_carries_its_location(code):
    error = Redirect("/posts/new-place?page=2", code)

    assert error.code == code
    assert error.location == "/posts/new-place?page=2"
    assert error.headers == [("Location", "/posts/new-place?page=2")]


def test_a_redirect_is_permanent_and_keeps_the_method_by_default():
    assert Redirect("/elsewhere/").code == 308


# --- exception_for and abort ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "code"),
    [(cls, code) for cls, code, _ in ERRORS if cls is not CSRFError],
    ids=[cls.__name__ for cls, _, _ in ERRORS if cls is not CSRFError],
)
def test_exception_for_gives_the_named_class(cls, code):
    assert exception_for(code) is cls


def test_exception_for_an_unlisted_error_code_makes_a_subclass_with_that_code():
    teapot = exception_for(418)

    assert issubclass(teapot, HTTPException)
    error = teapot("Short and stout.")
    assert (error.code, error.name, error.description) == (418, "I'm a Teapot", "Short and stout.")


@pytest.mark.parametrize("code", [200, 204, 302, 399, 599, 999, -1])
def test_exception_for_refuses_codes_that_are_not_errors(code):
    with pytest.raises(ValueError, match="not an HTTP error status"):
        exception_for(code)


@pytest.mark.parametrize(("cls", "code"), [(NotFound, 404), (Gone, 410), (BadRequest, 400)])
def test_abort_raises_the_error_for_the_code_with_its_description(cls, code):
    with pytest.raises(cls) as raised:
        abort(code, "Told you.")

    assert raised.value.code == code
    assert raised.value.description == "Told you."


def test_abort_without_a_description_keeps_the_default():
    with pytest.raises(Forbidden) as raised:
        abort(403)

    assert raised.value.description == Forbidden.description


def test_abort_405_raises_method_not_allowed():
    with pytest.raises(MethodNotAllowed) as raised:
        abort(405, "Not this way.")

    assert raised.value.code == 405
    assert raised.value.description == "Not this way."


def test_abort_with_a_success_code_is_a_programming_error():
    with pytest.raises(ValueError):
        abort(200)


# --- arrows point one way ------------------------------------------------------------------

# Loads pyproject/lib/exceptions.py with the package's __init__ (which imports the whole
# framework) left out, and prints every pyproject module that loading pulled in.
ISOLATED_IMPORT = """
import json, sys, types
package = types.ModuleType("pyproject.lib")
package.__path__ = ["pyproject/lib"]
sys.modules["pyproject.lib"] = package
import pyproject.lib.exceptions
print(json.dumps(sorted(m for m in sys.modules if m.startswith("pyproject"))))
"""


def test_the_exceptions_load_nothing_of_the_framework_but_http():
    result = subprocess.run(
        [sys.executable, "-c", ISOLATED_IMPORT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    loaded = set(json.loads(result.stdout))
    assert loaded == {
        "pyproject",
        "pyproject.lib",
        "pyproject.lib.exceptions",
        "pyproject.lib.http",
    }
