"""What the security tests share: the XSS corpus, what "can run script" means, DB snapshots.

`script_problems(html)` parses a page as a browser would (html5lib implements the HTML5
parsing algorithm) and lists everything in it that could run script: a script element
that is not ours or not JSON-LD, an `on*` attribute, a javascript:/vbscript:/data:text/html
URL, an element that embeds another document, a form that is not one of the site's own,
and, inside post bodies (`user_roots`), any element or attribute the sanitiser's
allowlist does not name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import html5lib
import pytest
from sqlalchemy import Engine, inspect, text

from pyproject.blog.markup import ALLOWED_ATTRIBUTES, ALLOWED_TAGS

CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "xss"
CORPUS_FILE = CORPUS_DIR / "payloadbox-xss-payload-list.txt"
CORPUS_MISSING = f"the XSS corpus is not at {CORPUS_DIR} (see its README: tests skip without it)"

# Attributes whose value a browser may load or navigate to.
URL_ATTRIBUTES = frozenset(
    {
        "href", "src", "action", "formaction", "srcdoc", "data", "poster", "background",
        "lowsrc", "dynsrc", "codebase", "cite", "longdesc", "usemap", "manifest", "ping",
        "xlink:href", "to", "from", "values",
    }
)  # fmt: skip
SCRIPT_SCHEMES = (
    "javascript:",
    "vbscript:",
    "livescript:",
    "data:text/html",
    "data:application/xhtml",
    "data:image/svg",
)
# Elements that load or are another document, or restyle the page: never from users.
FORBIDDEN_ELEMENTS = frozenset(
    {"iframe", "frame", "frameset", "object", "embed", "applet", "base", "portal", "style"}
)
# What browsers drop from a URL before reading its scheme (and a little more, to be safe).
_URL_NOISE = re.compile(r"[\x00-\x20\x7f-\x9f\u00ad\u200b-\u200f\u2028\u2029\ufeff]+")
# Our own script: the one file base.html loads.
OWN_SCRIPT_PREFIX = "/static/js/"
XLINK = "{http://www.w3.org/1999/xlink}"
# Containers of post HTML the sanitiser produced: everything inside is on its allowlist.
USER_CONTENT_CLASSES = frozenset({"post-body", "toc"})
# Our own wrappers placed inside post HTML (the automatic table of contents,
# reading.body_with_toc): checked as ours, their contents as the sanitiser's.
OWN_WRAPPERS = frozenset({("nav", "toc")})
# The `rel` the sanitiser itself adds to external links.
SANITISER_ADDED = {"a": frozenset({"rel"})}


# --- the corpus ------------------------------------------------------------------------------


def load_corpus() -> list[str]:
    """Give the corpus payloads, one per non-empty line; skip the test if it is missing."""
    if not CORPUS_FILE.is_file():
        pytest.skip(CORPUS_MISSING)
    return [line for line in CORPUS_FILE.read_text(encoding="utf-8").split("\n") if line.strip()]


def chunked(items: list[str], size: int) -> list[list[str]]:
    """Give `items` in consecutive chunks of `size` (the last may be shorter)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def packed(payloads: Iterable[str], limit: int, sep: str = " ") -> Iterator[str]:
    """Yield the payloads joined into texts of at most `limit` characters, each used once."""
    text = ""
    for payload in payloads:
        payload = payload[:limit]
        if text and len(text) + len(sep) + len(payload) > limit:
            yield text
            text = payload
        else:
            text = f"{text}{sep}{payload}" if text else payload
    if text:
        yield text


def pack(payloads: Iterable[str], limit: int, sep: str = " ") -> str:
    """Give as many whole payloads as fit in `limit` characters (the first one cut if needed)."""
    out = ""
    for payload in payloads:
        candidate = payload if not out else out + sep + payload
        if len(candidate) > limit:
            break
        out = candidate
    if not out:
        out = next(iter(payloads), "x")[:limit]
    return out


# --- what can run script ---------------------------------------------------------------------


def local_name(name: Any) -> str:
    """Give an element or attribute name without its namespace, lower-cased."""
    if not isinstance(name, str):
        return ""
    if name.startswith(XLINK):
        return "xlink:" + name[len(XLINK) :].lower()
    return name.rsplit("}", 1)[-1].lower()


def runs_script(url: str) -> bool:
    """Give whether a URL attribute's value names a scheme that runs script."""
    cleaned = _URL_NOISE.sub("", url).lower()
    return cleaned.startswith(SCRIPT_SCHEMES)


def parse_html(data: str | bytes) -> ElementTree.Element:
    """Give a whole page parsed by the HTML5 algorithm (html5lib), without namespaces on HTML."""
    return html5lib.parse(data, treebuilder="etree", namespaceHTMLElements=False)


def parse_fragment(data: str) -> ElementTree.Element:
    """Give an HTML fragment (post HTML in a feed or the API) parsed as inside a <div>."""
    return html5lib.parseFragment(
        data, container="div", treebuilder="etree", namespaceHTMLElements=False
    )


def _walk(
    element: ElementTree.Element, inside_user: bool = False
) -> Iterator[tuple[ElementTree.Element, bool, list[str]]]:
    """Yield each element, whether it sits in user content, and its ancestors' names."""
    stack: list[tuple[ElementTree.Element, bool, list[str]]] = [(element, inside_user, [])]
    while stack:
        node, inside, path = stack.pop()
        name = local_name(node.tag)
        yield node, inside, path
        classes = set((node.get("class") or "").split())
        child_inside = inside or bool(classes & USER_CONTENT_CLASSES)
        for child in reversed(list(node)):
            stack.append((child, child_inside, [*path, name]))


def script_problems(
    data: str | bytes | ElementTree.Element,
    *,
    fragment_is_user_content: bool = False,
    routable: Callable[[str], bool] | None = None,
) -> list[str]:
    """Give everything in a page (or post-HTML fragment) that could run script.

    `routable(path)` says whether a form's action is one of the site's own addresses;
    without it, any form is a problem.
    """
    if isinstance(data, ElementTree.Element):
        root = data
    elif fragment_is_user_content:
        root = parse_fragment(data if isinstance(data, str) else data.decode("utf-8"))
    else:
        root = parse_html(data)
    problems: list[str] = []
    for node, inside_user, path in _walk(root, fragment_is_user_content):
        name = local_name(node.tag)
        if not name or name == "document_fragment":
            continue
        where = "/".join([*path[-3:], name])
        attributes = {local_name(k): v or "" for k, v in node.attrib.items()}
        if name == "script":
            problem = _script_problem(node, attributes)
            if problem:
                problems.append(f"{where}: {problem}")
        if name in FORBIDDEN_ELEMENTS:
            problems.append(f"{where}: a <{name}> element")
        if name == "meta" and attributes.get("http-equiv", "").strip().lower() == "refresh":
            problems.append(f"{where}: a refresh <meta>: {attributes.get('content', '')[:80]!r}")
        if name == "form" and (inside_user or not _own_address(attributes.get("action"), routable)):
            problems.append(f"{where}: a form that is not the site's: {attributes!r:.120}")
        for attribute, value in attributes.items():
            if attribute.startswith("on"):
                problems.append(f"{where}: event handler {attribute}={value[:80]!r}")
            elif attribute == "srcdoc":
                problems.append(f"{where}: srcdoc={value[:80]!r}")
            elif attribute in URL_ATTRIBUTES and runs_script(value):
                problems.append(f"{where}: {attribute}={value[:80]!r} runs script")
            elif attribute == "formaction" and not _own_address(value, routable):
                problems.append(f"{where}: formaction={value[:80]!r} is not the site's")
        classes = set(attributes.get("class", "").split())
        own_wrapper = any(name == tag and cls in classes for tag, cls in OWN_WRAPPERS)
        if inside_user and not own_wrapper:
            problems.extend(f"{where}: {p}" for p in _user_content_problems(name, attributes))
    return problems


def _script_problem(node: ElementTree.Element, attributes: dict[str, str]) -> str | None:
    kind = attributes.get("type", "").strip().lower()
    body = "".join(node.itertext())
    if kind == "application/ld+json":
        if "src" in attributes:
            return "JSON-LD with a src"
        try:
            json.loads(body)
        except ValueError as error:
            return f"JSON-LD that is not JSON ({error}): {body[:120]!r}"
        return None
    src = attributes.get("src", "")
    if src.startswith(OWN_SCRIPT_PREFIX) and not body.strip() and not kind:
        return None
    return f"a script element: {attributes!r:.80} {body[:80]!r}"


def _own_address(action: str | None, routable: Callable[[str], bool] | None) -> bool:
    if action is None or routable is None:
        return False
    action = action.strip()
    if not action.startswith("/") or action.startswith(("//", "/\\")):
        return False
    return routable(action.split("?", 1)[0].split("#", 1)[0])


def _user_content_problems(name: str, attributes: dict[str, str]) -> list[str]:
    problems = []
    if name not in ALLOWED_TAGS:
        problems.append(f"<{name}> is not on the sanitiser's allowlist")
    allowed = ALLOWED_ATTRIBUTES.get(name, frozenset()) | SANITISER_ADDED.get(name, frozenset())
    for attribute in attributes:
        if attribute == "style":
            problems.append("a style attribute in post content")
        elif attribute not in allowed:
            problems.append(f"attribute {attribute!r} is not allowed on <{name}>")
    return problems


# --- feeds -----------------------------------------------------------------------------------

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"


def feed_problems(xml: bytes, *, rss_description_is_html: bool = True) -> list[str]:
    """Give what could run script in a feed: its URLs, then the HTML each entry carries.

    Atom's `content type="html"` and RSS's `content:encoded` and `description` are HTML
    (RSS 2.0: "entity-encoded HTML"): a feed reader decodes the XML and renders them.
    """
    root = ElementTree.fromstring(xml)
    problems = []
    for node in root.iter():
        for attribute, value in node.attrib.items():
            if local_name(attribute) in URL_ATTRIBUTES | {"base"} and runs_script(value):
                problems.append(f"{node.tag} {attribute}={value[:80]!r} runs script")
        carries_html = (
            (node.tag == f"{ATOM}content" and node.get("type") in ("html", "xhtml"))
            or node.tag == CONTENT_ENCODED
            or (node.tag == "description" and rss_description_is_html)
        )
        html = (node.text or "") if carries_html else ""
        if html:
            problems.extend(
                f"{node.tag}: {p}" for p in script_problems(html, fragment_is_user_content=True)
            )
    return problems


# --- the database ----------------------------------------------------------------------------


def snapshot(engine: Engine, tables: Iterable[str] | None = None) -> dict[str, list[tuple]]:
    """Give every row of every table (or of `tables`), sorted, to compare before and after."""
    with engine.connect() as connection:
        names = sorted(tables) if tables is not None else inspect(connection).get_table_names()
        return {
            name: sorted(
                (tuple(row) for row in connection.execute(text(f'SELECT * FROM "{name}"'))),
                key=repr,
            )
            for name in names
        }


def changed_tables(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> list[str]:
    """Give the names of the tables whose rows differ between two snapshots."""
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )
