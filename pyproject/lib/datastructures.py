"""Small containers the Request and Response share: MultiDict, Headers, FileStorage."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any


class cached_property:  # named like the functools one it stands in for
    """A property computed once per instance and kept in its __dict__.

    functools.cached_property on Python 3.11 takes a lock on every first access, which a
    Request (one thread, a handful of properties) pays for on every request.
    """

    def __init__(self, func: Any) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.name] = value
        return value


class MultiDict:
    """A mapping where a key may hold several values; `d[key]` and `get` give the first."""

    __slots__ = ("_data",)

    def __init__(self, pairs: Iterable[tuple[str, Any]] | dict[str, Any] | None = None) -> None:
        self._data: dict[str, list[Any]] = {}
        if pairs is None:
            return
        if isinstance(pairs, dict):
            pairs = pairs.items()
        for key, value in pairs:
            if isinstance(value, list | tuple):
                for item in value:
                    self.add(key, item)
            else:
                self.add(key, value)

    def add(self, key: str, value: Any) -> None:
        """Append a value to a key."""
        self._data.setdefault(key, []).append(value)

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:
        """Give the first value of a key (converted with `type`, default when that fails)."""
        values = self._data.get(key)
        if not values:
            return default
        if type is None:
            return values[0]
        try:
            return type(values[0])
        except (TypeError, ValueError):
            return default

    def getlist(self, key: str) -> list[Any]:
        """Give every value of a key, in the order received."""
        return list(self._data.get(key, ()))

    def __getitem__(self, key: str) -> Any:
        values = self._data.get(key)
        if not values:
            raise KeyError(key)
        return values[0]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = [value]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> Iterable[str]:
        return self._data.keys()

    def items(self, multi: bool = False) -> Iterator[tuple[str, Any]]:
        """Give (key, first value) pairs, or every pair with `multi=True`."""
        for key, values in self._data.items():
            if multi:
                for value in values:
                    yield key, value
            elif values:
                yield key, values[0]

    def to_dict(self) -> dict[str, Any]:
        """Give a plain dict of each key's first value."""
        return dict(self.items())

    def __repr__(self) -> str:
        return f"MultiDict({list(self.items(multi=True))!r})"


class Headers:
    """Case-insensitive, multi-valued HTTP headers that keep the order they were set in."""

    __slots__ = ("_list",)

    def __init__(self, items: Iterable[tuple[str, str]] | dict[str, str] | None = None) -> None:
        self._list: list[tuple[str, str]] = []
        if items is None:
            return
        if isinstance(items, dict | Headers):
            items = items.items()
        for key, value in items:
            self.add(key, value)

    def add(self, key: str, value: str) -> None:
        """Add a header line, keeping any others of the same name (like Set-Cookie)."""
        self._list.append((key, str(value)))

    # Every lookup compares lengths before case-folding: most names differ in length, so
    # a scan of a response's headers lower-cases one or two of them, not all.

    def set(self, key: str, value: str) -> None:
        """Replace every header of that name with one line (where the first one stood)."""
        lower, size = key.lower(), len(key)
        items = self._list
        for index, (name, _) in enumerate(items):
            if len(name) == size and name.lower() == lower:
                items[index] = (key, str(value))
                rest = items[index + 1 :]
                if any(len(n) == size and n.lower() == lower for n, _ in rest):
                    self._list = items[: index + 1] + [
                        (n, v) for n, v in rest if len(n) != size or n.lower() != lower
                    ]
                return
        items.append((key, str(value)))

    def setdefault(self, key: str, value: str) -> str:
        """Set a header unless it is there; give its value."""
        existing = self.get(key)
        if existing is None:
            self.add(key, value)
            return value
        return existing

    def remove(self, key: str) -> None:
        """Drop every header of that name."""
        lower, size = key.lower(), len(key)
        if any(len(k) == size and k.lower() == lower for k, _ in self._list):
            self._list = [(k, v) for k, v in self._list if len(k) != size or k.lower() != lower]

    def clear(self) -> None:
        """Drop every header."""
        self._list = []

    def get(self, key: str, default: str | None = None) -> str | None:
        """Give the first value of a header, or `default`."""
        lower, size = key.lower(), len(key)
        for k, v in self._list:
            if len(k) == size and k.lower() == lower:
                return v
        return default

    def getlist(self, key: str) -> list[str]:
        """Give every value of a header."""
        lower, size = key.lower(), len(key)
        return [v for k, v in self._list if len(k) == size and k.lower() == lower]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: str) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        self.remove(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._list)

    def __len__(self) -> int:
        return len(self._list)

    def items(self) -> list[tuple[str, str]]:
        return list(self._list)

    def to_wsgi_list(self) -> list[tuple[str, str]]:
        """Give the header list as WSGI's start_response takes it."""
        return list(self._list)

    def __repr__(self) -> str:
        return f"Headers({self._list!r})"


class EnvironHeaders:
    """A read-only, case-insensitive view of the request headers in a WSGI environ."""

    __slots__ = ("_environ",)

    def __init__(self, environ: dict[str, Any]) -> None:
        self._environ = environ

    @staticmethod
    def _key(name: str) -> str:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            return key
        return "HTTP_" + key

    def get(self, name: str, default: str | None = None) -> str | None:
        """Give a request header's value (latin-1 as WSGI hands it), or `default`."""
        return self._environ.get(self._key(name), default)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._environ

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for key, value in self._environ.items():
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").title(), value
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                yield key.replace("_", "-").title(), value


@dataclass
class FileStorage:
    """An uploaded file: its field name, file name, content type and a readable stream."""

    name: str
    filename: str
    content_type: str
    stream: IO[bytes]
    size: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def read(self) -> bytes:
        """Give the whole content (from the start)."""
        self.stream.seek(0)
        return self.stream.read()

    def save(self, destination: str) -> None:
        """Copy the content to a file path."""
        self.stream.seek(0)
        with open(destination, "wb") as out:
            shutil.copyfileobj(self.stream, out)

    def close(self) -> None:
        self.stream.close()
