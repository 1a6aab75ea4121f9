"""The Markdown pipeline: the one pure function that turns a post's Markdown into safe HTML.

Create, edit and preview all call :func:`render_markdown`, and a post is rendered once, when it
is saved; the HTML is stored beside :data:`RENDERER_VERSION` so that posts rendered by an older
pipeline can be found and rendered again.

Python-Markdown does the conversion (with Pygments for code), then bleach keeps only the
elements, attributes, classes and URLs that this Markdown produces. Whatever the author typed
as raw HTML survives only where it is on that allowlist. Last, every table and code block is
made a scrolling region that a keyboard can reach (see :class:`_ScrollRegions`).

``python -m pyproject.blog.markup --css`` writes the code-highlighting stylesheet.
"""

from __future__ import annotations

import argparse
import collections
import html
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple
from xml.etree import ElementTree as etree

import markdown
from bleach.html5lib_shim import Filter
from bleach.sanitizer import Cleaner
from markdown.extensions import Extension
from markdown.extensions.toc import slugify_unicode
from markdown.treeprocessors import Treeprocessor
from pygments.formatters.html import HtmlFormatter
from pygments.styles import get_style_by_name
from pygments.token import STANDARD_TYPES, Token

# Bump whenever the same Markdown would come out as different HTML (a new extension, a changed
# allowlist, another Pygments style class...): posts stored with an older number are re-rendered.
# v4: pictures of ours become <picture> with sized sources (#15).
# v5: table columns keep their alignment (align on th/td); a [TOC] in the text is the only
# table of contents (#23).
RENDERER_VERSION = 5

PROSE_WORDS_PER_MINUTE = 230
CODE_WORDS_PER_MINUTE = 100
SUMMARY_LIMIT = 300
TOC_MIN_HEADINGS = 3
# Below this many words, an automatic table of contents never comes before the first
# paragraph: a short essay opens with its first sentence, not with a list (#23).
TOC_LONG_POST_WORDS = 1_200

LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"
CSS_PATH = Path(__file__).resolve().parents[2] / "static" / "css" / "pygments.css"


class _LanguageFormatter(HtmlFormatter):
    """Pygments' HTML formatter, writing a block's language on its <code> as plain code has it.

    Python-Markdown hands it ``lang_str`` ("language-python"); that class is what names the
    block's scrolling region ("Code: python") once the HTML is sanitised.
    """

    def __init__(self, lang_str: str = "", **options: Any) -> None:
        super().__init__(**options)
        # A block without a language is given the text lexer, whose name says nothing.
        self.code_tag = (
            f'<code class="{html.escape(lang_str)}">'
            if lang_str and lang_str != "language-text"
            else "<code>"
        )

    def _wrap_code(self, inner: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        yield 0, self.code_tag
        yield from inner
        yield 0, "</code>"


_EXTENSIONS = [
    "fenced_code",
    "codehilite",
    "tables",
    "footnotes",
    "toc",
    "def_list",
    "abbr",
    "sane_lists",
]
_EXTENSION_CONFIGS = {
    # Column alignment (---:) as the align attribute, which the sanitiser allows with its
    # three values; inline style is never allowed.
    "tables": {"use_align_attribute": True},
    "codehilite": {
        "css_class": "codehilite",
        "pygments_formatter": _LanguageFormatter,
        # Guessing makes prose-like snippets flip between lexers from one edit to the next.
        "guess_lang": False,
        # Line-number tables only when a fence asks for them, never because of a shebang line.
        "linenums": False,
    },
    "toc": {
        "permalink": True,
        "permalink_title": "Link to this section",
        # The ASCII-only default turns a heading written in Greek or Japanese into an empty id.
        "slugify": slugify_unicode,
    },
}

_PLAIN_CODE_CONFIGS = {
    **_EXTENSION_CONFIGS,
    "codehilite": {**_EXTENSION_CONFIGS["codehilite"], "use_pygments": False},
}

# What this Markdown writes, plus a few inline elements authors type by hand. Changing the
# allowlist changes stored HTML: bump RENDERER_VERSION with it.
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol",
        "p", "picture", "pre", "s", "source", "span", "strong", "sub", "sup", "table", "tbody",
        "td", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title", "id", "class"}),
    "abbr": frozenset({"title"}),
    **{f"h{level}": frozenset({"id"}) for level in range(1, 7)},
    "li": frozenset({"id"}),
    "sup": frozenset({"id"}),
    "ol": frozenset({"start"}),
    # Beyond src, alt and title: what a picture of ours is given (see _Pictures), each
    # value checked in _allow_attribute.
    "img": frozenset(
        {"src", "alt", "title", "width", "height", "srcset", "sizes", "loading", "decoding"}
    ),
    "source": frozenset({"srcset", "sizes", "type", "media"}),
    # tabindex, role and aria-label are _ScrollRegions' own: it removes them from every
    # element that is not one of its regions, and sets them on those.
    "div": frozenset({"class", "tabindex", "role", "aria-label"}),
    "code": frozenset({"class"}),
    "span": frozenset({"class"}),
    "table": frozenset({"class"}),
    "td": frozenset({"class", "align"}),
    "th": frozenset({"align"}),
}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
IMAGE_SCHEMES = frozenset({"http", "https"})

# Classes are limited to the ones Markdown and Pygments write, so that raw HTML in a post
# cannot borrow the site's own classes to dress itself up as part of the page.
_ALLOWED_CLASSES: dict[str, frozenset[str]] = {
    "a": frozenset({"headerlink", "footnote-ref", "footnote-backref"}),
    "div": frozenset({"codehilite", "toc", "footnote", "linenodiv", "table-scroll", "code-scroll"}),
    # Besides "language-<name>" (see _LANGUAGE_CLASS), which names a code block's language.
    "code": frozenset({"linenums"}),
    "table": frozenset({"codehilitetable"}),
    "td": frozenset({"linenos", "code"}),
    "span": frozenset(name for name in STANDARD_TYPES.values() if name)
    | {"hll", "normal", "special"},
}
# Pygments names a token type it has no short name for after its nearest known ancestor:
# Token.Name.Custom becomes "n-Custom".
_PYGMENTS_SUBTYPE = re.compile(r"([a-z0-9]+)(?:-[A-Z][A-Za-z0-9]*)+")
# The language of a code block, as Python-Markdown names it (and _LanguageFormatter for
# highlighted code): the characters a fence's language may have, and not too many of them.
_LANGUAGE_CLASS = re.compile(r"language-([A-Za-z0-9_#.+\-]{1,32})")

_EXTERNAL_REL = "nofollow noopener"
# Everything a browser ignores or a parser may drop inside a URL scheme: whitespace, control
# characters, and anything outside printable ASCII (as bleach does, err on the side of no).
_URL_NOISE = re.compile(r"[^\x21-\x7e]+")
_URL_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
# A start tag as the HTML tokenizer sees one: "<", an ASCII letter, a name up to a space, "/"
# or ">". It also matches inside comments and scripts, which only costs a needless extra pass.
_START_TAG = re.compile(r"<([a-zA-Z][^\t\n\f\r />]*)")
# Enough for every repair html5lib makes to settle: hypothesis has never needed more than 3.
_MAX_EXTRA_PASSES = 6
# A word: letters and digits, held together by apostrophes (' and \u2019), dots and hyphens.
_WORD = re.compile(r"\w+(?:['\u2019.\-]\w+)*")

# Elements that do not break a word in two; every other tag is a boundary between words.
_INLINE_TAGS = frozenset(
    {"a", "abbr", "b", "code", "del", "em", "i", "ins", "kbd", "mark", "s", "small", "span",
     "strong", "sub", "sup", "u", "var"}
)  # fmt: skip
_VOID_TAGS = frozenset({"area", "br", "col", "embed", "hr", "img", "input", "source", "wbr"})
_HIDDEN_LINK_CLASSES = frozenset({"headerlink", "footnote-ref", "footnote-backref"})


class Heading(NamedTuple):
    """One heading of a post, as the table of contents lists it."""

    level: int
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """How much one post may ask of the renderer; past any of these the save is refused.

    Each guards a shape that costs far more time or output than its size suggests (see
    tests/adversarial_markdown.py): duplicate headings make the toc extension's id search
    quadratic, deep or unclosed nesting makes html5lib's tree building quadratic, every
    table cell and footnote becomes several elements, and sanitising time follows the
    size of the HTML, not of the Markdown.
    """

    headings: int = 300
    depth: int = 32
    # Fenced code blocks: each costs a lexer and formatter lookup, some milliseconds.
    code_blocks: int = 200
    # Thematic breaks (---): each puts the rest of its block back to be parsed again.
    rules: int = 200
    # Attributes of one raw HTML tag: html5lib checks each against all before it.
    attributes: int = 64
    # Abbreviation definitions: each use of one becomes an <abbr> carrying its title.
    abbreviations: int = 100
    table_cells: int = 4_000
    footnotes: int = 500
    # Characters that may start inline markup ([ * _ ` < &), outside fenced code: each one
    # Python-Markdown turns into markup costs tens of microseconds however small it is.
    inline_marks: int = 12_000
    # Elements (tags) in the converted HTML: sanitising costs most per element.
    html_elements: int = 10_000
    # Fenced code is highlighted while there is at most this much of it in the post; past
    # that it is shown plain, since highlighting makes an element of nearly every token.
    highlighted_code: int = 8_000
    # The rendered HTML may be this many times the Markdown, or html_floor bytes if that is
    # more, and never more than html_max bytes.
    html_ratio: int = 25
    html_floor: int = 64 * 1024
    html_max: int = 2 * 1024 * 1024
    # Not a budget, but travels with them to the render helper: curly quotes, dashes and
    # ellipses (Python-Markdown's smarty), the site's "smart punctuation" setting (#23).
    smart_punctuation: bool = False


DEFAULT_LIMITS = RenderLimits()


class RenderRefused(ValueError):
    """The Markdown asks for more than a budget allows; the message says what and how much."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what
        self.message = message


@dataclass(frozen=True, slots=True)
class Rendered:
    """What rendering a post's Markdown gives: everything the posts table stores beside it."""

    html: str
    toc_html: str
    headings: tuple[Heading, ...]
    word_count: int
    reading_minutes: int
    summary: str
    version: int = RENDERER_VERSION


def render_markdown(
    text: str, limits: RenderLimits = DEFAULT_LIMITS, images: Mapping[str, Any] | None = None
) -> Rendered:
    """Give the sanitised HTML of a post's Markdown, with its table of contents and statistics.

    `images` describes the pictures of ours the text may show, by URL (see
    :class:`_Pictures`): each becomes a <picture> with its sizes, or a sized <img> until
    its variants exist. Other images stay plain <img>; every image but the first is lazy.

    Pure: the same text always gives the same result, and the text itself is left alone.
    Raises RenderRefused, naming what was too much, when the text goes past a budget of
    `limits`. Only the first [TOC] marker becomes a table of contents; later ones are
    dropped. Markdown nested too deeply for Python-Markdown comes out as preformatted text
    rather than an error.
    """
    source = check_source(text, limits)
    # A fresh Markdown per call: extensions such as footnotes keep per-document state on the
    # instance, and building one costs about a tenth of a millisecond.
    highlight = fenced_code_length(source) <= limits.highlighted_code
    smarty = ["smarty"] if limits.smart_punctuation else []
    md = markdown.Markdown(
        extensions=[*_EXTENSIONS, *smarty, _PicturesExtension(images or {})],
        extension_configs=_EXTENSION_CONFIGS if highlight else _PLAIN_CODE_CONFIGS,
        output_format="html",
    )
    try:
        converted = md.convert(_defuse_brackets(source))
    except RecursionError:
        # Python-Markdown parses nested blocks recursively; the author still sees every word.
        converted = f"<pre><code>{html.escape(text, quote=False)}</code></pre>"
        md.toc, md.toc_tokens = "", []
    check_html(converted, len(text), limits)
    body = sanitize_html(converted)
    headings = tuple(_flatten_headings(md.toc_tokens))
    # A [TOC] the author placed is the table of contents: no automatic one beside it.
    automatic = len(headings) >= TOC_MIN_HEADINGS and not has_placed_toc(body)
    toc_html = sanitize_html(_toc_list(md.toc)) if automatic else ""
    scan = _scan_text(body)
    return Rendered(
        html=body,
        toc_html=toc_html,
        headings=headings,
        word_count=scan.prose_words + scan.code_words,
        reading_minutes=reading_minutes(scan.prose_words, scan.code_words),
        summary=_truncate(scan.summary_text(), SUMMARY_LIMIT),
        version=RENDERER_VERSION,
    )


# --- pictures ------------------------------------------------------------------------------

# How wide a post's pictures are shown: the width of the text column (--measure in
# site.css), less the page's side padding on narrow screens.
PICTURE_SIZES = "(max-width: 42rem) calc(100vw - 2.5rem), 42rem"
# The <source> types a picture lists, best first, with the key of its srcset in `images`.
PICTURE_SOURCES = (("image/avif", "avif"), ("image/webp", "webp"))


class _Pictures(Treeprocessor):
    """Gives images their loading hints, and pictures of ours their sizes and sources.

    `images` maps the URL of each picture of ours to {"width", "height", "srcset": {key:
    "url 480w, url 960w ..."}} with keys avif, webp and fallback (all empty until the
    variants exist). Every image but the first is loading="lazy" and all decode async;
    width and height are always set on ours, so nothing moves as they load.
    """

    def __init__(self, md: markdown.Markdown, images: Mapping[str, Any]) -> None:
        super().__init__(md)
        self.images = images

    def run(self, root: etree.Element) -> None:
        parents = {child: parent for parent in root.iter() for child in parent}
        for number, img in enumerate(list(root.iter("img"))):
            if number:
                img.set("loading", "lazy")
            img.set("decoding", "async")
            info = self.images.get(img.get("src", ""))
            if not info:
                continue
            img.set("width", str(int(info["width"])))
            img.set("height", str(int(info["height"])))
            srcset = info.get("srcset") or {}
            if not srcset.get("fallback"):
                continue  # no variants yet: the cleaned original, sized
            img.set("srcset", srcset["fallback"])
            img.set("sizes", PICTURE_SIZES)
            picture = etree.Element("picture")
            for kind, key in PICTURE_SOURCES:
                if srcset.get(key):
                    etree.SubElement(
                        picture,
                        "source",
                        {"type": kind, "srcset": srcset[key], "sizes": PICTURE_SIZES},
                    )
            parent = parents[img]
            index = list(parent).index(img)
            parent.remove(img)
            picture.tail, img.tail = img.tail, None
            picture.append(img)
            parent.insert(index, picture)


class _PicturesExtension(Extension):
    def __init__(self, images: Mapping[str, Any]) -> None:
        super().__init__()
        self.images = images

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        md.treeprocessors.register(_Pictures(md, self.images), "pictures", 5)


# --- budgets -------------------------------------------------------------------------------

_ATX_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")
_SETEXT_RULE = re.compile(r" {0,3}(?:=+|-+)[ \t]*$")
_TOC_MARKER = re.compile(r"[ \t]*\[TOC\][ \t]*$")
# Quote markers and list markers at the start of a line, in any mix ("> - > 1. text").
_NESTING_PREFIX = re.compile(r"(?:[ \t]*(?:>|(?:[-*+]|\d{1,9}[.)])(?=[ \t]|$)))+")
_LIST_MARKER = re.compile(r"(?:^|(?<=[ \t>]))(?:[-*+]|\d{1,9}[.)])(?=[ \t]|$)")
_INDENT = re.compile(r"[ \t]*")


def check_source(text: str, limits: RenderLimits = DEFAULT_LIMITS) -> str:
    """Give the Markdown to convert: later [TOC] markers dropped, every budget checked.

    Raises RenderRefused for too many headings, table cells, blocks or footnote
    references, or for nesting deeper than the limit, before Python-Markdown spends any
    time on the text. Fenced code is not Markdown and counts for nothing.
    """
    headings = cells = depth = elements = rules = 0
    seen_toc = False
    previous_blank = True
    out: list[str] = []
    blocks = 0
    for line, in_code in _lines_outside_code(text):
        if in_code:
            if in_code == OPENING_FENCE:  # a block: div, pre, code and a span at least
                blocks += 1
                elements += 8
            out.append(line)
            previous_blank = None
            continue
        bare = line.rstrip("\r\n")
        if _TOC_MARKER.match(bare):
            if seen_toc:
                out.append("\n")  # one table of contents per post: later markers say nothing
                previous_blank = True
                continue
            seen_toc = True
        elif "[TOC]" in line:
            # Any element whose only text is [TOC] would get a copy (a quote, an item).
            if seen_toc:
                line = bare = line.replace("[TOC]", "")
            seen_toc = True
        if _ATX_HEADING.match(bare) or (not previous_blank and _SETEXT_RULE.match(bare)):
            headings += 1
        if "&#" in line:
            line = _NUMERIC_REFERENCE.sub(_defuse_reference, line)
        if "|" in bare:
            cells += bare.count("|") + 1
        rules += 1 if _RULE.match(bare) else 0
        level, content, items = _line_nesting(bare)
        depth = max(depth, level)
        elements += _tags_at_least(bare, content, items, previous_blank)
        previous_blank = not content
        out.append(line)
    _over("headings", headings, limits.headings, "headings")
    _over("table_cells", cells, limits.table_cells, "table cells")
    _over("depth", depth, limits.depth, "levels of nesting (quotes and lists)")
    _over("code_blocks", blocks, limits.code_blocks, "fenced code blocks")
    _over("rules", rules, limits.rules, "horizontal rules")
    _over("html_elements", elements, limits.html_elements, "HTML tags once rendered")
    _over("footnotes", text.count("[^"), limits.footnotes, "footnote references")
    prose = "".join(line for line, in_code in _lines_outside_code(text) if not in_code)
    marks = sum(prose.count(mark) for mark in "[*_`<&")
    _over("inline_marks", marks, limits.inline_marks, "characters that start inline markup")
    # Raw HTML nests as typed: refuse deep nesting before Python-Markdown spends time on it.
    raw_depth = _element_depth(_CODE_SPAN.sub("", prose), 2 * limits.depth)
    _over("depth", raw_depth, 2 * limits.depth, "levels of nested HTML elements")
    attributes = max((len(_ATTRIBUTE.findall(tag)) for tag in _RAW_TAG.findall(prose)), default=0)
    _over("attributes", attributes, limits.attributes, "attributes in one HTML tag")
    _check_abbreviations(prose, len(text), limits)
    return "".join(out)


def _tags_at_least(bare: str, content: str, items: int, previous_blank: bool | None) -> int:
    """Give the fewest tags a line of Markdown will make, from what starts and ends it."""
    if _RULE.match(bare):
        return 2  # and Python-Markdown looks through the rest of the block for each
    tags = 0
    if content and (previous_blank is not False or items):
        tags += 2 * max(1, items)  # a paragraph or list items: an element each
    if content.startswith(":"):
        tags += 4  # a definition
    if bare.endswith(("  ", "\\")):
        tags += 1  # a hard line break
    return tags


_RULE = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_RAW_TAG = re.compile(r"<[a-zA-Z][^<>]*")
_ATTRIBUTE = re.compile(r"\s+[^\s=/>]")
_ABBREVIATION = re.compile(r"^[ ]{0,3}\*\[([^\]]+)\][ ]?:[ \t]*(.*)$", re.MULTILINE)


def _check_abbreviations(prose: str, source_length: int, limits: RenderLimits) -> None:
    """Refuse abbreviations whose uses would make too many elements or too large a page."""
    lines = _ABBREVIATION.findall(prose)
    if not lines:
        return
    # Each definition line is taken off its block and the rest put back: count them all.
    _over("abbreviations", len(lines), limits.abbreviations, "abbreviation definitions")
    definitions = dict(lines)
    words = re.compile("|".join(rf"\b{re.escape(word)}\b" for word in definitions))
    uses = collections.Counter(words.findall(prose))
    extra_tags = 2 * sum(uses.values())
    _over("html_elements", extra_tags, limits.html_elements, "HTML tags once rendered")
    extra_bytes = sum(count * (len(definitions[word]) + 24) for word, count in uses.items())
    allowed = min(limits.html_max, max(limits.html_floor, source_length * limits.html_ratio))
    if extra_bytes > allowed:
        raise RenderRefused(
            "html_size",
            f"Abbreviations would make this page over {extra_bytes / 1024:,.0f} KB; a post's"
            f" page may be at most {allowed / 1024:,.0f} KB.",
        )


def _line_nesting(bare: str) -> tuple[int, str, int]:
    """Give a line's nesting level, its text after quote and list markers, and its items.

    Each quote level is one element, each list level two (the list and its item), and an
    indented list item sits one list level deeper per four columns; indented code keeps
    its own indentation and counts for nothing.
    """
    markers = _NESTING_PREFIX.match(bare)
    prefix = markers.group() if markers else ""
    quotes = prefix.count(">")
    items = len(_LIST_MARKER.findall(prefix))
    indent = len(_INDENT.match(bare).group().expandtabs(4)) if items else 0
    return quotes + 2 * (items + indent // 4) + 1, bare[len(prefix) :].strip(), items


def fenced_code_length(text: str) -> int:
    """Give how many characters of the text are fenced code (fences included)."""
    return sum(len(line) for line, in_code in _lines_outside_code(text) if in_code)


# A numeric character reference names a code point: at most 7 digits (10FFFF in hex).
# Longer ones name nothing, and past 4,300 digits int() refuses them (in html.unescape
# and html5lib alike): the "&" of such a reference is escaped, so it shows as typed.
_NUMERIC_REFERENCE = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+))")
_REFERENCE_DIGITS = 32  # leading zeros included: int() counts them too


def unescape(value: str) -> str:
    """Give html.unescape of the value, a reference to no code point read as U+FFFD."""
    if "&#" in value:
        value = _NUMERIC_REFERENCE.sub(
            lambda m: "\ufffd" if _names_no_code_point(m) else m.group(), value
        )
    return html.unescape(value)


def _names_no_code_point(match: re.Match[str]) -> bool:
    digits = match.group(1) or match.group(2)
    return len(digits) > _REFERENCE_DIGITS or len(digits.lstrip("0")) > 7


def _defuse_reference(match: re.Match[str]) -> str:
    return "&amp;" + match.group()[1:] if _names_no_code_point(match) else match.group()


OPENING_FENCE = 2  # what _lines_outside_code gives for the line that opens fenced code


def _lines_outside_code(text: str) -> Iterator[tuple[str, int]]:
    """Give each line of the text with whether it is inside fenced code (fences included).

    The second value is 0 outside code, OPENING_FENCE on a fence that opens a block and 1
    on the other lines of fenced code.
    """
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)[0] * 3
            yield line, OPENING_FENCE
        elif fence is not None:
            yield line, 1
            if line.lstrip().startswith(fence):
                fence = None
        else:
            yield line, 0


def _over(what: str, count: int, limit: int, noun: str) -> None:
    if count > limit:
        raise RenderRefused(
            what, f"This text has {count:,} {noun}; a post may have at most {limit:,}."
        )


# A start or end tag as Python-Markdown writes them (and as raw HTML passes through).
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\b[^<>]*?(/?)>")


def check_html(converted: str, source_length: int, limits: RenderLimits = DEFAULT_LIMITS) -> None:
    """Refuse converted HTML that is too large, or nested too deeply, to sanitise and serve."""
    allowed = min(limits.html_max, max(limits.html_floor, source_length * limits.html_ratio))
    if len(converted) > allowed:
        raise RenderRefused(
            "html_size",
            f"This text would make a page of {len(converted) / 1024:,.0f} KB; a post's page "
            f"may be at most {allowed / 1024:,.0f} KB. Shorten it or split it into several"
            " posts.",
        )
    _over("html_elements", converted.count("<"), limits.html_elements, "HTML tags once rendered")
    # Each level of Markdown nesting writes up to two elements (a list and its item, a
    # quote and its paragraph), so elements may nest twice as deep as blocks.
    depth = _element_depth(converted, 2 * limits.depth)
    _over("depth", depth, 2 * limits.depth, "levels of nested elements")


def _element_depth(fragment: str, stop_at: int) -> int:
    """Give how deeply the fragment's elements nest (unclosed ones stay open), or stop_at + 1.

    The scan ends as soon as the depth passes `stop_at`: that is all a budget needs to know.
    """
    open_tags: list[str] = []
    counts: dict[str, int] = {}
    deepest = 0
    for match in _TAG.finditer(fragment):
        closing, name, self_closing = match.group(1), match.group(2).lower(), match.group(3)
        if name in _VOID_TAGS or self_closing:
            continue
        if not closing:
            open_tags.append(name)
            counts[name] = counts.get(name, 0) + 1
            deepest = max(deepest, len(open_tags))
            if deepest > stop_at:
                break
        elif counts.get(name):
            # Close the nearest open element of this name and whatever is still open inside it.
            while open_tags:
                top = open_tags.pop()
                counts[top] -= 1
                if top == name:
                    break
    return deepest


# Python-Markdown looks for the "]" of every "[" to the end of its block, so unmatched
# brackets make a block quadratic (bench/render.py). An unmatched "[" can never
# start a link, so escaping it changes nothing a reader sees; blocks with only a few are
# left alone, which keeps escapes out of inline code in ordinary posts.
UNMATCHED_BRACKETS_PER_BLOCK = 8
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)


def _defuse_brackets(text: str) -> str:
    if text.count("[") <= UNMATCHED_BRACKETS_PER_BLOCK:
        return text
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        out.append(_escape_unmatched("".join(block)))
        block.clear()

    for line, in_code in _lines_outside_code(text):
        if in_code:
            flush()
            out.append(line)
        elif not line.strip():
            block.append(line)
            flush()
        else:
            block.append(line)
    flush()
    return "".join(out)


def _escape_unmatched(block: str) -> str:
    """Give the block with its unmatched "[" escaped, if it has more than a few of them."""
    if block.count("[") <= UNMATCHED_BRACKETS_PER_BLOCK:
        return block
    # Brackets inside code spans are text, and an escape there would show: mask them.
    masked = _CODE_SPAN.sub(lambda m: " " * len(m.group()), block)
    open_at: list[int] = []
    for index, char in enumerate(masked):
        if char == "[" and (index == 0 or masked[index - 1] != "\\"):
            open_at.append(index)
        elif char == "]" and open_at and (index == 0 or masked[index - 1] != "\\"):
            open_at.pop()
    if len(open_at) <= UNMATCHED_BRACKETS_PER_BLOCK:
        return block
    pieces, start = [], 0
    for index in open_at:
        pieces.append(block[start:index])
        pieces.append("\\[")
        start = index + 1
    pieces.append(block[start:])
    return "".join(pieces)


def sanitize_html(fragment: str) -> str:
    """Give the HTML fragment with everything off the allowlist removed.

    Sanitising its own output again changes nothing.
    """
    cleaner = _cleaner()
    cleaned = cleaner.clean(fragment)
    # HTML that parses without errors and loses no element serialises back to the same tree,
    # so one pass is final; Markdown's own output is like that. Otherwise the parser repaired
    # something (a list item inside a table, say) or stripping a tag left a nesting that it
    # would repair differently next time, and only cleaning again shows the final form.
    if cleaner.parser.errors or _has_disallowed_tag(fragment):
        for _ in range(_MAX_EXTRA_PASSES):
            again = cleaner.clean(cleaned)
            if again == cleaned:
                break
            cleaned = again
    return cleaned


def has_placed_toc(body_html: str) -> bool:
    """Give whether rendered HTML holds a table of contents placed by a [TOC] marker."""
    return '<div class="toc">' in body_html


_FIRST_PARAGRAPH_END = "</p>"
_HEADING_START = re.compile(r"<h[2-6][\s>]")


def toc_position(body_html: str, word_count: int) -> int:
    """Give where in a post's HTML its automatic table of contents goes (an offset).

    A long post (TOC_LONG_POST_WORDS and more) shows it first. A shorter one never above
    its first paragraph: before the first heading after that paragraph, else right after
    it. Text with no paragraph at all gets it at the top.
    """
    if word_count >= TOC_LONG_POST_WORDS:
        return 0
    end = body_html.find(_FIRST_PARAGRAPH_END)
    if end < 0:
        return 0
    end += len(_FIRST_PARAGRAPH_END)
    heading = _HEADING_START.search(body_html, end)
    return heading.start() if heading else end


# Link destinations that an author meant to fill in: the editor's own "https://", a
# scheme with nothing after it, and words standing for a URL.
PLACEHOLDER_URLS = frozenset(
    {"https://", "http://", "url", "link", "http", "https", "...", "…", "todo", "tbd", "#"}
)
_LINK_DESTINATION = re.compile(r"\]\(\s*<?([^\s()<>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S*?)>?\s*$")


def placeholder_links(text: str) -> list[str]:
    """Give the placeholder link destinations a post's Markdown still holds, in order.

    A link such as ``[text](https://)`` or ``[text](url)`` would publish as a live link to
    nowhere. Code (fenced blocks and inline spans) is not looked at.
    """
    found: list[str] = []
    for line, in_code in _lines_outside_code(text):
        if in_code:
            continue
        line = _CODE_SPAN.sub("", line)
        destinations = [m.group(1) for m in _LINK_DESTINATION.finditer(line)]
        definition = _REFERENCE_DEFINITION.match(line.rstrip("\r\n"))
        if definition:
            destinations.append(definition.group(1))
        for destination in destinations:
            if destination.lower() in PLACEHOLDER_URLS and destination not in found:
                found.append(destination)
    return found


def plain_text_summary(fragment: str, limit: int = SUMMARY_LIMIT) -> str:
    """Give the first paragraph of an HTML fragment as plain text of at most ``limit`` characters.

    Markup is dropped and whitespace collapsed; text that is cut ends at a word boundary with
    "…". Without any paragraph, the fragment's text stands in for it.
    """
    return _truncate(_scan_text(fragment).summary_text(), limit)


def reading_minutes(prose_words: int, code_words: int = 0) -> int:
    """Give the whole minutes it takes to read so many words of prose and of code, at least 1."""
    minutes = prose_words / PROSE_WORDS_PER_MINUTE + code_words / CODE_WORDS_PER_MINUTE
    return max(1, int(minutes + 0.5))


def pygments_css() -> str:
    """Give the code-highlighting stylesheet: a light style, and a dark one for dark mode."""
    light = _style_declarations(LIGHT_STYLE)
    dark = _style_declarations(DARK_STYLE)
    # The dark rules override the light ones in the cascade, so every property the light style
    # sets must be set again in dark mode, if only back to its plain value.
    for selector, declarations in light.items():
        reset = dark.setdefault(selector, {})
        for name in declarations:
            reset.setdefault(name, _PLAIN_VALUES[name])
    dark_rules = "\n".join(f"  {rule}" for rule in _css_rules(dark))
    return (
        f"/* Generated by `python -m pyproject.blog.markup --css` from the Pygments styles"
        f" {LIGHT_STYLE!r} and {DARK_STYLE!r}: do not edit by hand. */\n"
        + "\n".join(_css_rules(light))
        + "\n\n@media (prefers-color-scheme: dark) {\n"
        + dark_rules
        + "\n}\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Give the exit status of the command line: ``--css`` rewrites the stylesheet."""
    parser = argparse.ArgumentParser(prog="python -m pyproject.blog.markup", description=__doc__)
    parser.add_argument(
        "--css",
        nargs="?",
        const=CSS_PATH,
        type=Path,
        metavar="PATH",
        help=f"write the code-highlighting stylesheet (default {CSS_PATH})",
    )
    args = parser.parse_args(argv)
    if args.css is None:
        parser.print_help()
        return 2
    args.css.parent.mkdir(parents=True, exist_ok=True)
    args.css.write_text(pygments_css(), encoding="utf-8")
    print(f"wrote {args.css}")
    return 0


# --- sanitising ---------------------------------------------------------------------------


def _has_disallowed_tag(fragment: str) -> bool:
    """Give whether the fragment may hold an element that sanitising strips."""
    return any(
        match.group(1).lower() not in ALLOWED_TAGS for match in _START_TAG.finditer(fragment)
    )


def _allow_attribute(tag: str, name: str, value: str) -> bool:
    """Give whether bleach may keep this attribute on this element."""
    if name not in ALLOWED_ATTRIBUTES.get(tag, ()):
        return False
    if name == "class":
        return _classes_allowed(tag, value)
    if name == "href":
        return _url_allowed(value, LINK_SCHEMES)
    if name == "src":
        return _url_allowed(value, IMAGE_SCHEMES)
    if name == "srcset":
        return _srcset_allowed(value)
    if name in ("width", "height"):
        return value.isascii() and value.isdigit() and len(value) <= 5
    if name == "sizes" or name == "media":
        return (
            len(value) <= 200
            and _MEDIA_QUERY.fullmatch(value) is not None
            and set(_WORDS.findall(value)) <= _MEDIA_WORDS
        )
    if name == "loading":
        return value in ("lazy", "eager")
    if name == "decoding":
        return value in ("async", "sync", "auto")
    if name == "type":
        return value in _SOURCE_TYPES
    if name == "start":
        return value.isascii() and value.isdigit()
    if name == "tabindex":
        return value == "0"
    if name == "role":
        return value == "region"
    if name == "align":
        return value in ("left", "right", "center")
    return True


_SOURCE_TYPES = frozenset(kind for kind, _ in PICTURE_SOURCES)
# Media queries and sizes as we write them: lengths, calc() and comparisons, no url().
_MEDIA_QUERY = re.compile(r"[a-z0-9 ().,:%+*/-]+")
_WORDS = re.compile(r"[a-z]+")
_MEDIA_WORDS = frozenset(
    {"max", "min", "width", "height", "calc", "vw", "vh", "px", "rem", "em", "and", "or", "not",
     "screen", "print", "all", "orientation", "landscape", "portrait", "resolution", "dppx"}
)  # fmt: skip
_SRCSET_CANDIDATE = re.compile(r"(\S+)(?:\s+(\d{1,5}w|\d{1,2}(?:\.\d{1,2})?x))?")


def _srcset_allowed(value: str) -> bool:
    """Give whether every candidate of a srcset is an allowed image URL with a plain size."""
    candidates = value.split(",")
    if not value.strip() or len(candidates) > 16:
        return False
    for candidate in candidates:
        match = _SRCSET_CANDIDATE.fullmatch(candidate.strip())
        if match is None or not _url_allowed(match.group(1), IMAGE_SCHEMES):
            return False
    return True


def _classes_allowed(tag: str, value: str) -> bool:
    """Give whether every class in the attribute is one Markdown or Pygments writes there."""
    allowed = _ALLOWED_CLASSES.get(tag, frozenset())
    for name in value.split():
        if name in allowed:
            continue
        if tag == "code" and _LANGUAGE_CLASS.fullmatch(name):
            continue
        subtype = _PYGMENTS_SUBTYPE.fullmatch(name) if tag == "span" else None
        if subtype is None or subtype.group(1) not in allowed:
            return False
    return True


def _url_scheme(value: str) -> str:
    """Give the lower-case scheme a browser could see in an attribute's URL, or "" if none."""
    # Undo entity encoding a few levels deep: browsers decode once, but a link that only
    # becomes harmless because it is double-encoded is no link anyone meant to write.
    for _ in range(3):
        decoded = unescape(value)
        if decoded == value:
            break
        value = decoded
    value = _URL_NOISE.sub("", value).lower()
    match = _URL_SCHEME.match(value)
    return match.group(1) if match else ""


def _url_allowed(value: str, schemes: frozenset[str]) -> bool:
    """Give whether a URL is relative or uses one of the schemes."""
    scheme = _url_scheme(value)
    return not scheme or scheme in schemes


def _is_external(href: str) -> bool:
    """Give whether a link leads to another site (absolute http(s) or scheme-relative)."""
    if _url_scheme(href) in ("http", "https"):
        return True
    # Browsers read backslashes as slashes in http(s) URLs, so "\\host" is "//host".
    start = _URL_NOISE.sub("", unescape(href)).replace("\\", "/")
    return start.startswith("//")


class _ExternalLinkRel(Filter):
    """Sets rel="nofollow noopener" on links to other sites and removes rel everywhere else.

    It sets rather than adds, so that sanitising its own output again changes nothing.
    """

    def __iter__(self) -> Iterator[dict]:
        for token in super().__iter__():
            if token["type"] == "StartTag" and token["name"] == "a":
                attributes = token.get("data") or {}
                attributes.pop((None, "rel"), None)
                href = attributes.get((None, "href"))
                if href is not None and _is_external(href):
                    attributes[(None, "rel")] = _EXTERNAL_REL
                token["data"] = attributes
            yield token


# A region's name is at most this long; a table's is its header row, which may be long.
REGION_LABEL_LIMIT = 60
_REGION_KEYS = ((None, "tabindex"), (None, "role"), (None, "aria-label"))
_CLASS = (None, "class")
_TABLE_WRAPPER = "table-scroll"
_CODE_WRAPPER = "code-scroll"


@dataclass(slots=True)
class _Region:
    """A scrolling region whose name is not known when its start tag is."""

    start: dict  # the start tag token that is given the region's attributes
    number: int = 0  # of a table: the how-manieth table of the fragment it is
    cells: list[list[str]] | None = None  # the text of a table's first row, cell by cell
    header: bool = False  # whether that row has header cells
    named: bool = False

    def name(self, label: str) -> None:
        classes = self.start["data"].get(_CLASS)
        self.start["data"] = {
            **({_CLASS: classes} if classes else {}),
            (None, "tabindex"): "0",
            (None, "role"): "region",
            (None, "aria-label"): label,
        }
        self.named = True

    def table_label(self) -> str:
        """Give a table's name: its header row's text, short, or else its number."""
        if self.header and self.cells:
            text = ", ".join(filter(None, (" ".join("".join(cell).split()) for cell in self.cells)))
            if text:
                return _truncate(f"Table: {text}", REGION_LABEL_LIMIT)
        return f"Table {self.number}"


@dataclass(slots=True)
class _Open:
    """An element that _ScrollRegions has seen start and not yet end."""

    name: str
    drop: bool = False  # a wrapper found in the input: dropped, its content kept
    wrapped: bool = False  # given a wrapper that ends after it
    region: _Region | None = None  # the region this element starts
    first_row_of: _Region | None = None  # the table whose first row this is


class _ScrollRegions(Filter):
    """Makes every table and code block a scrolling region that a keyboard can reach.

    A wide table or code block scrolls inside itself, and a keyboard can only scroll what
    can take focus (WCAG 2.1.1; axe-core's scrollable-region-focusable). Each is given
    tabindex="0", role="region" and a name: a table inside <div class="table-scroll">
    ("Table: " and its header row, or "Table 2"), a Pygments block on its own
    <div class="codehilite"> and a plain <pre> inside <div class="code-scroll"> ("Code", or
    "Code: python"). Tables and pre inside a code block are part of it.

    No other element keeps tabindex, role or aria-label, and wrappers found in the input are
    dropped and made again, so raw HTML cannot make a region of its own, and cleaning the
    output again changes nothing. A region is named only once the elements after its start
    are seen, so tokens are held back until then: up to a table's first row or a code
    block's <code>.
    """

    def __iter__(self) -> Iterator[dict]:
        held: list[dict] = []
        unnamed = 0  # regions in `held` still without a name
        stack: list[_Open] = []
        tables: list[_Region] = []  # tables open, innermost last
        code: _Region | None = None  # the code block open, if any
        count = 0
        for token in super().__iter__():
            kind = token["type"]
            out = [token]
            if kind == "StartTag":
                attributes = token.get("data") or {}
                for key in _REGION_KEYS:
                    attributes.pop(key, None)
                token["data"] = attributes
                name = token["name"]
                classes = attributes.get(_CLASS, "").split()
                entry = _Open(name)
                if name == "div" and (_TABLE_WRAPPER in classes or _CODE_WRAPPER in classes):
                    entry.drop = True
                    out = []
                elif code is None and (
                    name in ("table", "pre") or (name == "div" and "codehilite" in classes)
                ):
                    start = token
                    if name != "div":
                        start = _wrapper_start(token, name)
                        out.insert(0, start)
                        entry.wrapped = True
                    entry.region = _Region(start)
                    unnamed += 1
                    if name == "table":
                        count += 1
                        entry.region.number = count
                        tables.append(entry.region)
                    else:
                        code = entry.region
                elif code is not None:
                    if name == "code" and not code.named:
                        language = _language(classes)
                        code.name(f"Code: {language}" if language else "Code")
                        unnamed -= 1
                elif tables and not tables[-1].named:
                    table = tables[-1]
                    if name == "tr" and table.cells is None:
                        table.cells = []
                        entry.first_row_of = table
                    elif name in ("th", "td") and stack and stack[-1].first_row_of is table:
                        table.cells.append([])
                        table.header = table.header or name == "th"
                stack.append(entry)
            elif kind == "EndTag":
                entry = _close(stack, token["name"])
                if entry is not None:
                    if entry.drop:
                        out = []
                    region = entry.first_row_of or entry.region
                    if region is not None and not region.named:
                        region.name("Code" if region is code else region.table_label())
                        unnamed -= 1
                    if entry.wrapped:
                        out.append(
                            {"type": "EndTag", "name": "div", "namespace": token.get("namespace")}
                        )
                    if entry.region is code:
                        code = None
                    elif entry.region is not None:
                        tables.pop()
            elif tables and kind in ("Characters", "SpaceCharacters", "Entity"):
                text = token["data"] if kind != "Entity" else unescape(f"&{token['name']};")
                for table in tables:
                    if table.cells and not table.named:
                        table.cells[-1].append(text[: 2 * REGION_LABEL_LIMIT])
            if unnamed:
                held.extend(out)
                continue
            if held:
                yield from held
                held.clear()
            yield from out
        yield from held


def _wrapper_start(token: dict, name: str) -> dict:
    """Give the start tag of the <div> that wraps a table or a plain <pre>."""
    wrapper = _TABLE_WRAPPER if name == "table" else _CODE_WRAPPER
    return {
        "type": "StartTag",
        "name": "div",
        "namespace": token.get("namespace"),
        "data": {_CLASS: wrapper},
    }


def _close(stack: list[_Open], name: str) -> _Open | None:
    """Give the nearest open element of this name, closing it and everything inside it."""
    for index in range(len(stack) - 1, -1, -1):
        if stack[index].name == name:
            entry = stack[index]
            del stack[index:]
            return entry
    return None


def _language(classes: list[str]) -> str:
    """Give the language a code element's classes name, or "" if none."""
    for name in classes:
        match = _LANGUAGE_CLASS.fullmatch(name)
        if match:
            return match.group(1)
    return ""


# bleach's Cleaner keeps parser state between calls, so each thread (gunicorn gthread) needs
# its own; building one per call would cost more than the small fragments it cleans.
_local = threading.local()


def _cleaner() -> Cleaner:
    """Give this thread's bleach Cleaner, built on first use."""
    cleaner = getattr(_local, "cleaner", None)
    if cleaner is None:
        cleaner = _local.cleaner = Cleaner(
            tags=ALLOWED_TAGS,
            attributes=_allow_attribute,
            protocols=LINK_SCHEMES,
            strip=True,
            strip_comments=True,
            filters=[_ExternalLinkRel, _ScrollRegions],
        )
        # bleach undoes html5lib's escaping of "&" only in values between double quotes, and
        # html5lib picks single quotes for a value holding a double quote: such a value would
        # gain one more "&amp;" on every pass. Always double quotes write it as "&quot;".
        cleaner.serializer.quote_char = '"'
        cleaner.serializer.use_best_quote_char = False
    return cleaner


# --- text, headings, summary ---------------------------------------------------------------


def _flatten_headings(tokens: list[dict]) -> list[Heading]:
    """Give the toc extension's nested heading tokens as a flat list, in document order."""
    headings = []
    for token in tokens:
        # The toc extension keeps names HTML-escaped; a Heading holds plain text.
        headings.append(Heading(token["level"], token["id"], unescape(token["name"])))
        headings.extend(_flatten_headings(token["children"]))
    return headings


def _toc_list(toc: str) -> str:
    """Give the toc extension's table of contents as its bare nested list.

    Pages wrap it in their own ``<nav>``; the ``<div class="toc">`` around it is only wanted
    where an author writes [TOC] in the body.
    """
    toc = toc.strip()
    start, end = '<div class="toc">', "</div>"
    if toc.startswith(start) and toc.endswith(end):
        toc = toc[len(start) : -len(end)].strip()
    return toc


class _TextScan(HTMLParser):
    """Reads an HTML fragment once for its words of prose, words of code and first paragraph.

    Permalink pilcrows, footnote numbers and tables of contents are not words of the post;
    footnotes are counted but never chosen as the summary.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.prose: list[str] = []
        self.code: list[str] = []
        self.paragraph: list[str] | None = None
        self._open: list[tuple[str, str]] = []  # (tag, role) of each element still open
        self._depth = {"hidden": 0, "code": 0, "aside": 0, "paragraph": 0}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _INLINE_TAGS:
            self._boundary()
        if tag in _VOID_TAGS:
            return
        classes = set((dict(attrs).get("class") or "").split())
        role = ""
        if (
            (tag == "a" and classes & _HIDDEN_LINK_CLASSES)
            or (tag == "div" and "toc" in classes)
            or tag in ("script", "style", "template", "title")
        ):
            role = "hidden"
        elif tag == "pre":
            role = "code"
        elif tag == "div" and "footnote" in classes:
            role = "aside"
        elif (
            tag == "p"
            and self.paragraph is None
            and not self._depth["hidden"]
            and not self._depth["aside"]
        ):
            role = "paragraph"
            self.paragraph = []
        if role:
            self._depth[role] += 1
        self._open.append((tag, role))

    def handle_endtag(self, tag: str) -> None:
        if tag not in _INLINE_TAGS:
            self._boundary()
        # Close the nearest open element of this name and whatever was left open inside it;
        # an end tag with nothing to close is ignored, as a browser would.
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                for _, role in self._open[index:]:
                    if role:
                        self._depth[role] -= 1
                    if role == "paragraph" and not "".join(self.paragraph).strip():
                        # A paragraph holding only an image is no summary: try the next one.
                        self.paragraph = None
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        if self._depth["hidden"]:
            return
        (self.code if self._depth["code"] else self.prose).append(data)
        if self._depth["paragraph"]:
            self.paragraph.append(data)

    def _boundary(self) -> None:
        self.handle_data(" ")

    @property
    def prose_words(self) -> int:
        """Give the number of words outside code blocks."""
        return len(_WORD.findall("".join(self.prose)))

    @property
    def code_words(self) -> int:
        """Give the number of words inside code blocks."""
        return len(_WORD.findall("".join(self.code)))

    def summary_text(self) -> str:
        """Give the first paragraph (or, lacking one, all the prose) with whitespace collapsed."""
        parts = self.paragraph if self.paragraph is not None else self.prose
        return " ".join("".join(parts).split())


def _scan_text(fragment: str) -> _TextScan:
    """Give the text scan of an HTML fragment."""
    scan = _TextScan()
    scan.feed(fragment)
    scan.close()
    return scan


def _truncate(text: str, limit: int) -> str:
    """Give the text cut at a word boundary to at most ``limit`` characters, "…" included."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if not text[limit - 1].isspace():
        # The cut fell inside a word: drop that word, unless it is the only one.
        space = cut.rfind(" ")
        if space > 0:
            cut = cut[:space]
    return (cut.rstrip(" ,;:.\u2014\u2013-") or cut) + "…"


# --- stylesheet ---------------------------------------------------------------------------

# What each property is when a style says nothing about it.
_PLAIN_VALUES = {
    "background-color": "transparent",
    "color": "inherit",
    "font-weight": "normal",
    "font-style": "normal",
    "text-decoration": "none",
    "border": "none",
}


def _style_declarations(name: str) -> dict[str, dict[str, str]]:
    """Give a Pygments style as CSS declarations by selector, scoped to ``.codehilite``."""
    style = get_style_by_name(name)
    text = style.style_for_token(Token)["color"]
    rules: dict[str, dict[str, str]] = {
        ".codehilite": {
            "background-color": style.background_color,
            # A style without a text colour was drawn for black or white text on its background.
            "color": f"#{text}" if text else _readable_on(style.background_color),
        },
        ".codehilite .hll": {"background-color": style.highlight_color},
        ".codehilite .linenos, .codehilite .linenodiv": {
            "color": style.line_number_color,
            "background-color": style.line_number_background_color,
        },
    }
    for token_type, short in sorted(STANDARD_TYPES.items(), key=lambda item: item[1]):
        if not short:
            continue
        token = style.style_for_token(token_type)
        declarations = {}
        if token["color"]:
            declarations["color"] = f"#{token['color']}"
        if token["bgcolor"]:
            declarations["background-color"] = f"#{token['bgcolor']}"
        if token["bold"]:
            declarations["font-weight"] = "bold"
        if token["italic"]:
            declarations["font-style"] = "italic"
        if token["underline"]:
            declarations["text-decoration"] = "underline"
        if token["border"]:
            declarations["border"] = f"1px solid #{token['border']}"
        if declarations:
            rules[f".codehilite .{short}"] = declarations
    return rules


def _css_rules(rules: dict[str, dict[str, str]]) -> list[str]:
    """Give one line of CSS per selector."""
    return [
        f"{selector} {{ {' '.join(f'{name}: {value};' for name, value in declarations.items())} }}"
        for selector, declarations in rules.items()
    ]


def _readable_on(background: str) -> str:
    """Give black or white, whichever reads better on the background colour."""
    hex_digits = background.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(digit * 2 for digit in hex_digits)
    red, green, blue = (int(hex_digits[i : i + 2], 16) for i in (0, 2, 4))
    # Perceived brightness (ITU-R BT.601 weights) is plenty to choose between two colours.
    return "#000000" if red * 299 + green * 587 + blue * 114 >= 128_000 else "#ffffff"


if __name__ == "__main__":
    raise SystemExit(main())
