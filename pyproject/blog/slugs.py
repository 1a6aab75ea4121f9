"""Slugs: readable, ASCII, URL-safe names made from titles and tag names."""

from __future__ import annotations

import re
import unicodedata

SLUG_RE = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_SPECIAL = str.maketrans(
    {
        "ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE",
        "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D",
        "&": " and ", "@": " at ",
    }
)  # fmt: skip


def slugify(text: str, max_length: int = 80) -> str:
    """Give an ASCII slug for `text` ("Café Déjà-vu!" -> "cafe-deja-vu"), maybe empty."""
    text = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rsplit("-", 1)[0] or slug[:max_length]
    return slug.strip("-")


def is_valid_slug(value: str) -> bool:
    return bool(SLUG_RE.match(value)) and len(value) <= 200
