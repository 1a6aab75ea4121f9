"""The HTTP exception hierarchy: errors are objects that know their status.

Raise one anywhere in a request (or call `abort(code)`) and the app turns it into an
HTML page through templates/errors/, or JSON for clients that prefer it; see
`pyproject.lib.errorpages`.
"""

from __future__ import annotations

from typing import NoReturn

from pyproject.lib.http import STATUS_PHRASES


class HTTPException(Exception):
    """An error that ends a request with a status code and a message for the client."""

    code: int = 500
    description: str = "Something went wrong on our side."

    def __init__(
        self,
        description: str | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        if description is not None:
            self.description = description
        self.headers: list[tuple[str, str]] = list(headers or ())
        super().__init__(f"{self.code} {self.name}: {self.description}")

    @property
    def name(self) -> str:
        """Give the status phrase ("Not Found")."""
        return STATUS_PHRASES.get(self.code, "Error")


class BadRequest(HTTPException):
    code = 400
    description = "The request could not be understood."


class Unauthorized(HTTPException):
    code = 401
    description = "You need to sign in to see this."


class Forbidden(HTTPException):
    code = 403
    description = "You are not allowed to do that."


class CSRFError(Forbidden):
    description = (
        "The form you sent is missing its security token, or the token has expired. "
        "Go back, reload the page and try again."
    )


class NotFound(HTTPException):
    code = 404
    description = "There is nothing at this address."


class MethodNotAllowed(HTTPException):
    code = 405
    description = "This address does not accept that method."

    def __init__(self, allowed: list[str] | tuple[str, ...], description: str | None = None):
        self.allowed = sorted(set(allowed))
        super().__init__(description, headers=[("Allow", ", ".join(self.allowed))])


class NotAcceptable(HTTPException):
    code = 406
    description = "No representation of this resource suits the client."


class Conflict(HTTPException):
    code = 409
    description = "The request conflicts with the current state of the resource."


class Gone(HTTPException):
    code = 410
    description = "This was here once and has been removed."


class LengthRequired(HTTPException):
    code = 411
    description = "The request needs a Content-Length."


class RequestEntityTooLarge(HTTPException):
    code = 413
    description = "The request is larger than this site accepts."


class URITooLong(HTTPException):
    code = 414
    description = "The address is longer than this site accepts."


class UnsupportedMediaType(HTTPException):
    code = 415
    description = "The request's content type is not supported here."


class UnprocessableEntity(HTTPException):
    code = 422
    description = "The request was well-formed but could not be processed."


class TooManyRequests(HTTPException):
    code = 429
    description = "Too many requests. Please wait a little and try again."

    def __init__(self, description: str | None = None, *, retry_after: int | None = None):
        headers = [("Retry-After", str(int(retry_after)))] if retry_after is not None else None
        self.retry_after = retry_after
        super().__init__(description, headers=headers)


class InternalServerError(HTTPException):
    code = 500
    description = "Something went wrong on our side. The error has been logged."


class NotImplementedMethod(HTTPException):
    code = 501
    description = "The server does not support this method."


class ServiceUnavailable(HTTPException):
    code = 503
    description = "The site is unavailable for a moment. Please try again soon."


class Redirect(HTTPException):
    """A redirect raised from deep inside a request (used by routing for trailing slashes)."""

    code = 308
    description = "This address has moved."

    def __init__(self, location: str, code: int = 308) -> None:
        self.code = code
        self.location = location
        super().__init__(headers=[("Location", location)])


_BY_CODE: dict[int, type[HTTPException]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        NotAcceptable,
        Conflict,
        Gone,
        LengthRequired,
        RequestEntityTooLarge,
        URITooLong,
        UnsupportedMediaType,
        UnprocessableEntity,
        TooManyRequests,
        InternalServerError,
        NotImplementedMethod,
        ServiceUnavailable,
    )
}


def exception_for(code: int) -> type[HTTPException]:
    """Give the exception class for a status code (a generic subclass for unlisted codes)."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code not in STATUS_PHRASES or code < 400:
        raise ValueError(f"{code} is not an HTTP error status")
    return type(f"HTTP{code}", (HTTPException,), {"code": code, "description": ""})


def abort(code: int, description: str | None = None) -> NoReturn:
    """Stop the request with an HTTP error."""
    if code == 405:
        raise MethodNotAllowed([], description)
    raise exception_for(code)(description)


__all__ = [
    "BadRequest",
    "CSRFError",
    "Conflict",
    "Forbidden",
    "Gone",
    "HTTPException",
    "InternalServerError",
    "LengthRequired",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "NotImplementedMethod",
    "Redirect",
    "RequestEntityTooLarge",
    "ServiceUnavailable",
    "TooManyRequests",
    "URITooLong",
    "Unauthorized",
    "UnprocessableEntity",
    "UnsupportedMediaType",
    "abort",
    "exception_for",
]
