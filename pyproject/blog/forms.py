"""Small helpers for reading and checking form fields; errors go beside their fields."""

from __future__ import annotations

import re

from pyproject.lib.datastructures import MultiDict


class Form:
    """The values a visitor typed (kept as typed) and the errors found in them, by field."""

    def __init__(
        self, data: MultiDict | dict[str, str] | None = None, fields: tuple[str, ...] = ()
    ):
        self.values: dict[str, str] = {}
        source = data if data is not None else {}
        for name in fields:
            value = source.get(name, "")
            self.values[name] = value if isinstance(value, str) else ""
        self.errors: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        return self.values.get(name, "")

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def error(self, name: str, message: str) -> None:
        """Record an error for a field (the first one found stays)."""
        self.errors.setdefault(name, message)

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(
        self,
        name: str,
        *,
        label: str,
        required: bool = False,
        max_length: int | None = None,
        strip: bool = True,
    ) -> str:
        """Give a field's cleaned text, recording an error if it is missing or too long."""
        value = self.values.get(name, "")
        if strip:
            value = value.strip()
        if has_control_characters(value):
            self.error(name, f"{label} contains characters that are not allowed.")
        elif required and not value:
            self.error(name, f"{label} is required.")
        elif max_length is not None and len(value) > max_length:
            self.error(
                name, f"{label} is too long: {len(value):,} characters, at most {max_length:,}."
            )
        return value


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def without_control_characters(value: str) -> str:
    """Give text with control characters (other than tab, CR and LF) taken out."""
    return _CONTROL.sub("", value)


def has_control_characters(value: str) -> bool:
    """Give whether text holds control characters other than tab, CR and LF (NUL, etc.)."""
    return _CONTROL.search(value) is not None
