"""Tests for pyproject/blog/markup.py: Markdown in, safe HTML out, for any input an author types."""

from __future__ import annotations

import dataclasses
import html
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import html5lib
import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pygments.styles import get_style_by_name
from pygments.token import STANDARD_TYPES, Error, Whitespace

from pyproject.blog import markup
from pyproject.blog.markup import (
    RENDERER_VERSION,
    Heading,
    Rendered,
    RenderLimits,
    RenderRefused,
    plain_text_summary,
    reading_minutes,
    render_markdown,
    sanitize_html,
)

CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "xss"

# Elements that can run script, load other documents or post data, whatever their attributes.
FORBIDDEN_TAGS = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "svg",
        "math", "form", "input", "button", "select", "option", "textarea", "noscript",
        "noembed", "noframes", "title", "base", "link", "meta", "template", "xmp", "plaintext",
        "video", "audio", "portal", "image",
    }
)  # fmt: skip
# <source> is allowed for <picture> (#15): with srcset, sizes, type and media only, never src.
URL_ATTRIBUTES = frozenset(
    {"href", "src", "action", "formaction", "xlink:href", "srcset", "poster", "background",
     "data", "codebase", "cite", "longdesc", "ping", "lowsrc", "dynsrc", "manifest"}
)  # fmt: skip
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")


# --- the parse-based check ---------------------------------------------------------------


def url_scheme(url: str) -> str:
    """Give the lower-case scheme of a URL as a browser could read it, or "" if relative."""
    visible = "".join(ch for ch in url if ch.isprintable() and not ch.isspace())
    visible = "".join(ch for ch in html.unescape(visible) if ch.isprintable() and not ch.isspace())
    match = _SCHEME.match(visible)
    return match.group(1).lower() if match else ""


class _ElementLister(HTMLParser):
    """Lists (tag, attributes) of every start tag, as the standard library's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def elements_by_html_parser(fragment: str) -> tuple[list[tuple[str, dict[str, str]]], int]:
    """Give the elements and the number of comments the standard library parser finds."""
    lister = _ElementLister()
    lister.feed(fragment)
    lister.close()
    return lister.elements, len(lister.comments)


def elements_by_html5lib(fragment: str) -> tuple[list[tuple[str, dict[str, str]]], int]:
    """Give the elements and the number of comments html5lib (a browser's algorithm) finds."""
    root = html5lib.parseFragment(fragment, treebuilder="etree", namespaceHTMLElements=False)
    elements, comments = [], 0
    for element in root.iter():
        if element is root:
            continue
        if not isinstance(element.tag, str):  # a comment: its tag is a function
            comments += 1
            continue
        # Foreign (SVG, MathML) elements keep their namespace: "{http://...svg}svg".
        elements.append((element.tag, dict(element.attrib)))
    return elements, comments


def script_risks(fragment: str) -> list[str]:
    """Give a description of everything in the fragment that could run script: [] if nothing."""
    risks = []
    for parser, parse in (
        ("html.parser", elements_by_html_parser),
        ("html5lib", elements_by_html5lib),
    ):
        elements, comments = parse(fragment)
        if comments:
            risks.append(f"{parser}: {comments} comment(s)")
        for tag, attributes in elements:
            if tag.startswith("{"):
                risks.append(f"{parser}: foreign element {tag}")
            name = tag.rpartition("}")[2].lower()
            if name in FORBIDDEN_TAGS:
                risks.append(f"{parser}: forbidden element <{name}>")
            if name not in markup.ALLOWED_TAGS:
                risks.append(f"{parser}: element <{name}> is off the allowlist")
            for attribute, value in attributes.items():
                local = attribute.rpartition("}")[2].lower()
                if local.startswith("on"):
                    risks.append(f"{parser}: event handler {attribute}= on <{name}>")
                if local == "style":
                    risks.append(f"{parser}: style= on <{name}>")
                allowed = markup.ALLOWED_ATTRIBUTES.get(name, frozenset())
                if local not in allowed and (name, local) != ("a", "rel"):
                    risks.append(
                        f"{parser}: attribute {attribute}= is off the allowlist on <{name}>"
                    )
                if (local in URL_ATTRIBUTES or attribute.endswith("}href")) and url_scheme(
                    value
                ) not in SAFE_SCHEMES | {""}:
                    risks.append(f"{parser}: {attribute}={value!r} on <{name}>")
    return risks


def soup(fragment: str) -> BeautifulSoup:
    """Give the fragment parsed for looking things up in it."""
    return BeautifulSoup(fragment, "html.parser")


# --- each feature renders ----------------------------------------------------------------


def test_fenced_code_is_highlighted_with_pygments_classes() -> None:
    page = soup(render_markdown("```python\ndef add(a, b):\n    return a + b\n```\n").html)
    block = page.select_one("div.codehilite > pre > code")
    assert block is not None
    assert block.select_one("span.k").get_text() == "def"
    assert block.select_one("span.nf").get_text() == "add"
    assert block.get_text() == "def add(a, b):\n    return a + b\n"


def test_code_without_a_language_is_not_guessed() -> None:
    page = soup(render_markdown("```\nSELECT * FROM posts;\n```\n").html)
    block = page.select_one("div.codehilite code")
    assert block.get_text() == "SELECT * FROM posts;\n"
    assert block.select("span[class]") == []


def test_markup_inside_code_is_shown_not_parsed() -> None:
    page = soup(render_markdown("```html\n<script>alert(1)</script>\n```\n").html)
    assert page.find("script") is None
    assert page.select_one("div.codehilite code").get_text() == "<script>alert(1)</script>\n"


def test_tables_render_without_style_attributes() -> None:
    page = soup(render_markdown("| Name | Size |\n|:-----|-----:|\n| a.txt | 12 |\n").html)
    assert [th.get_text() for th in page.select("table > thead > tr > th")] == ["Name", "Size"]
    assert [td.get_text() for td in page.select("table > tbody > tr > td")] == ["a.txt", "12"]
    assert page.select("[style]") == []


# --- scrolling regions ----------------------------------------------------------------------

REGION_ATTRIBUTES = ("tabindex", "role", "aria-label")


def regions(fragment: str) -> list[tuple[str, str]]:
    """Give (class, name) of each scrolling region, checking each is one the renderer makes."""
    found = []
    for element in soup(fragment).find_all(lambda e: any(e.has_attr(a) for a in REGION_ATTRIBUTES)):
        classes = element.get("class", [])
        assert element.name == "div" and len(classes) == 1, element
        assert element.get("tabindex") == "0" and element.get("role") == "region", element
        assert sorted(element.attrs) == ["aria-label", "class", "role", "tabindex"], element
        inside = {"table-scroll": "table", "code-scroll": "pre", "codehilite": None}
        assert classes[0] in inside, element
        if inside[classes[0]] is not None:
            assert [child.name for child in element.find_all(recursive=False)] == [
                inside[classes[0]]
            ], element
        found.append((classes[0], element["aria-label"]))
    return found


def test_a_table_is_a_region_named_by_its_header_row() -> None:
    html = render_markdown("| Setting | Default |\n|---|---|\n| WORKERS | 0 |\n").html
    assert regions(html) == [("table-scroll", "Table: Setting, Default")]
    assert soup(html).select_one("div.table-scroll > table > thead > tr > th").get_text() == (
        "Setting"
    )


def test_a_table_without_header_text_is_named_by_its_number() -> None:
    source = (
        "| a |\n|---|\n| 1 |\n\n|  |  |\n|---|---|\n| 1 | 2 |\n\n<table><tr><td>x</td></tr></table>"
    )
    assert [name for _, name in regions(render_markdown(source).html)] == [
        "Table: a",
        "Table 2",
        "Table 3",
    ]


def test_a_long_header_row_makes_a_short_name() -> None:
    columns = [f"Column number {n}" for n in range(20)]
    source = f"| {' | '.join(columns)} |\n|{'---|' * 20}\n"
    [(_, name)] = regions(render_markdown(source).html)
    assert len(name) <= markup.REGION_LABEL_LIMIT
    assert name.startswith("Table: Column number 0, Column number 1,")
    assert name.endswith("…")


def test_a_tables_name_is_plain_text_escaped_in_its_attribute() -> None:
    header = 'Say "hi" & <b>bold</b> <script>alert(1)</script> &lt;i&gt;'
    html = render_markdown(f"| {header} | b |\n|---|---|\n| 1 | 2 |\n").html
    assert regions(html) == [("table-scroll", 'Table: Say "hi" & bold alert(1) <i>, b')]
    assert 'aria-label="Table: Say &quot;hi&quot; &amp; bold alert(1) &lt;i>, b"' in html
    assert script_risks(html) == []


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("```python\nx = 1\n```", "Code: python"),
        ("```c++\nint x;\n```", "Code: c++"),
        ("```\nplain\n```", "Code"),
        ("```text\nplain\n```", "Code"),
        ("    indented code", "Code"),
        ("```nosuchlanguage\nx\n```", "Code: nosuchlanguage"),
        ('```{.python linenums="1"}\nx = 1\ny = 2\n```', "Code: python"),
    ],
)
def test_a_highlighted_code_block_is_a_region_named_by_its_language(source: str, name: str) -> None:
    html = render_markdown(source).html
    # One region however the block is laid out: the line-number table is part of it.
    assert regions(html) == [("codehilite", name)]


def test_a_plain_code_block_is_wrapped_in_a_region() -> None:
    plain = RenderLimits(highlighted_code=0)
    html = render_markdown("```python\nx = 1\n```\n\n    indented", plain).html
    assert regions(html) == [("code-scroll", "Code: python"), ("code-scroll", "Code")]
    assert soup(html).select_one("div.code-scroll > pre > code").get_text() == "x = 1\n"


def test_preformatted_text_typed_as_html_is_a_region_too() -> None:
    html = render_markdown("<pre>a very long line</pre>\n\n<pre><code>more</code></pre>").html
    assert regions(html) == [("code-scroll", "Code"), ("code-scroll", "Code")]


def test_tables_and_code_inside_a_table_are_regions_of_their_own() -> None:
    inner = "<table><tr><th>Inner</th></tr></table><pre>x</pre>"
    html = render_markdown(f"<table><tr><th>Outer</th></tr><tr><td>{inner}</td></tr></table>").html
    assert regions(html) == [
        ("table-scroll", "Table: Outer"),
        ("table-scroll", "Table: Inner"),
        ("code-scroll", "Code"),
    ]


# Raw HTML trying to make a region, or an element that takes focus, of its own.
FOCUS_GRABS = [
    ("tabindex_role_handler", '<div tabindex="5" role="button" onclick="alert(1)">x</div>'),
    ("region_div", '<div tabindex="0" role="region" aria-label="Fake">x</div>'),
    ("negative_tabindex", '<div tabindex="-1" aria-label="Fake">x</div>'),
    ("span", '<span tabindex="0" role="region" aria-label="Fake">x</span>'),
    ("paragraph", '<p tabindex="0" role="link" onfocus="alert(1)">x</p>'),
    ("link", '<a href="/x" tabindex="0" role="button" aria-label="Fake">x</a>'),
    ("image", '<img src="/i.png" alt="i" tabindex="0" role="region" aria-label="Fake">'),
    ("heading", '<h2 tabindex="0" role="region" aria-label="Fake">x</h2>'),
    ("table_cell", '<table><tr><td tabindex="0" role="region">x</td></tr></table>'),
    ("wrapper_without_table", '<div class="table-scroll" tabindex="0" role="region">x</div>'),
    ("code_wrapper_without_pre", '<div class="code-scroll" tabindex="0">x</div>'),
    ("table_in_own_wrapper", '<div class="table-scroll" aria-label="Fake"><table></table></div>'),
    ("codehilite_attributes", '<div class="codehilite" tabindex="9" role="button" '
     'aria-label="Fake" onfocus="alert(1)"><pre>x</pre></div>'),
    ("pre_attributes", '<pre tabindex="0" role="region" aria-label="Fake">x</pre>'),
    ("language_breakout",
     '<pre><code class="language-x&quot; onmouseover=&quot;alert(1)">x</code></pre>'),
    ("uppercase_attributes", '<DIV TABINDEX="0" ROLE="region" ARIA-LABEL="Fake">x</DIV>'),
    ("unquoted", "<div tabindex=0 role=region aria-label=Fake>x</div>"),
]  # fmt: skip


@pytest.mark.parametrize("source", [s for _, s in FOCUS_GRABS], ids=[i for i, _ in FOCUS_GRABS])
def test_raw_html_cannot_make_a_region_or_take_focus(source: str) -> None:
    html = render_markdown(source).html
    names = [name for _, name in regions(html)]  # also checks each is one the renderer makes
    assert "Fake" not in names and "Fake" not in html
    assert all(name in ("Code", "Table 1") for name in names), names
    assert script_risks(html) == []
    assert sanitize_html(html) == html


def test_raw_html_keeps_the_text_of_a_wrapper_it_typed() -> None:
    html = render_markdown('<div class="table-scroll"><p>Kept.</p></div>').html
    assert html == "<p>Kept.</p>"


def test_footnotes_link_both_ways() -> None:
    page = soup(render_markdown("A claim.[^source]\n\n[^source]: The source.\n").html)
    reference = page.select_one("sup#fnref\\:source > a.footnote-ref")
    assert (reference["href"], reference.get_text()) == ("#fn:source", "1")
    note = page.select_one("div.footnote li#fn\\:source")
    assert "The source." in note.get_text()
    assert note.select_one("a.footnote-backref")["href"] == "#fnref:source"


def test_headings_get_ids_and_permalinks() -> None:
    page = soup(render_markdown("## Getting started\n\nText.\n").html)
    heading = page.select_one("h2#getting-started")
    permalink = heading.select_one("a.headerlink")
    assert permalink["href"] == "#getting-started"
    assert permalink["title"] == "Link to this section"


@pytest.mark.parametrize(
    ("title", "expected_id"),
    [
        ("Café ünïcode", "café-ünïcode"),
        ("日本語の見出し", "日本語の見出し"),
        ("Ünïcode & <b>bold</b>", "ünïcode-bold"),
    ],
)
def test_heading_ids_keep_unicode_letters(title: str, expected_id: str) -> None:
    rendered = render_markdown(f"# {title}\n")
    assert soup(rendered.html).h1["id"] == expected_id
    assert rendered.headings[0].id == expected_id


def test_repeated_headings_get_distinct_ids() -> None:
    ids = [heading.id for heading in render_markdown("## Notes\n\n## Notes\n").headings]
    assert len(set(ids)) == 2


def test_headings_are_listed_in_order_as_plain_text() -> None:
    rendered = render_markdown("# One\n\n## Two `code` & *more*\n\n### Three\n\n## Four\n")
    assert rendered.headings == (
        Heading(1, "one", "One"),
        Heading(2, "two-code-more", "Two code & more"),
        Heading(3, "three", "Three"),
        Heading(2, "four", "Four"),
    )


def test_toc_links_every_heading_from_three_headings_on() -> None:
    rendered = render_markdown("# One\n\n## Two\n\n### Three\n")
    # A bare nested list: the page wraps it in its own <nav>.
    assert rendered.toc_html.startswith("<ul>")
    assert rendered.toc_html.endswith("</ul>")
    toc = soup(rendered.toc_html)
    assert [a["href"] for a in toc.select("a")] == ["#one", "#two", "#three"]
    # Nested by level: Three sits in a list inside Two's item.
    assert toc.select_one("ul > li > ul > li > ul > li > a")["href"] == "#three"


def test_toc_is_empty_with_fewer_than_three_headings() -> None:
    assert render_markdown("# One\n\n## Two\n\nText.\n").toc_html == ""
    assert render_markdown("No headings at all.\n").toc_html == ""


def test_toc_marker_places_the_toc_in_the_body() -> None:
    html_out = render_markdown("[TOC]\n\n# One\n\n## Two\n").html
    assert soup(html_out).select_one("div.toc a")["href"] == "#one"


def test_definition_lists() -> None:
    page = soup(render_markdown("Markdown\n:   A way to write HTML.\n:   A file format.\n").html)
    assert page.select_one("dl > dt").get_text() == "Markdown"
    assert [dd.get_text() for dd in page.select("dl > dd")] == [
        "A way to write HTML.",
        "A file format.",
    ]


def test_abbreviations() -> None:
    source = "The HTML spec.\n\n*[HTML]: Hyper Text Markup Language\n"
    abbr = soup(render_markdown(source).html).select_one("abbr")
    assert abbr.get_text() == "HTML"
    assert abbr["title"] == "Hyper Text Markup Language"


def test_sane_lists_do_not_merge_list_types() -> None:
    page = soup(render_markdown("- a\n- b\n\n1. one\n").html)
    assert [li.get_text() for li in page.select("ul > li")] == ["a", "b"]
    assert [li.get_text() for li in page.select("ol > li")] == ["one"]


def test_ordered_lists_keep_their_start_number() -> None:
    assert soup(render_markdown("3. three\n4. four\n").html).ol["start"] == "3"


def test_external_links_get_nofollow_noopener() -> None:
    page = soup(render_markdown("[out](https://example.org/) [in](/posts/x) [top](#top)").html)
    out, inside, top = page.select("a")
    assert out["rel"] == ["nofollow", "noopener"]
    assert not inside.has_attr("rel")
    assert not top.has_attr("rel")


def test_rel_typed_by_the_author_is_replaced() -> None:
    page = soup(
        render_markdown('<a href="/x" rel="opener">a</a> <a href="//h.org/" rel="me">b</a>').html
    )
    local, other = page.select("a")
    assert not local.has_attr("rel")
    assert other["rel"] == ["nofollow", "noopener"]


def test_mailto_links_and_images_survive() -> None:
    source = (
        '[mail](mailto:me@example.org) ![cat](/media/cat.png "A cat") ![dog](https://e.org/d.png)'
    )
    page = soup(render_markdown(source).html)
    assert html.unescape(page.select_one("a")["href"]) == "mailto:me@example.org"
    cat, dog = page.select("img")
    assert (cat["src"], cat["alt"], cat["title"]) == ("/media/cat.png", "cat", "A cat")
    assert dog["src"] == "https://e.org/d.png"


def test_allowed_raw_html_survives() -> None:
    source = "Press <kbd>Ctrl</kbd>, H<sub>2</sub>O, <del>old</del> <ins>new</ins>, <mark>hi</mark>"
    page = soup(render_markdown(source).html)
    for tag in ("kbd", "sub", "del", "ins", "mark"):
        assert page.find(tag) is not None, tag


def test_raw_html_cannot_borrow_site_classes() -> None:
    source = '<div class="toc admin-banner">x</div> <span class="k btn">y</span> <p class="x">z</p>'
    page = soup(render_markdown(source).html)
    assert page.select("[class]") == []


def test_markdown_nested_past_the_depth_budget_is_refused() -> None:
    source = "\n".join("    " * depth + f"- item{depth}" for depth in range(400))
    with pytest.raises(RenderRefused) as refused:
        render_markdown(source)
    assert refused.value.what == "depth"
    assert "at most 32" in refused.value.message


def test_markdown_nested_too_deeply_to_parse_comes_out_as_preformatted_text() -> None:
    # With the budgets lifted, Python-Markdown's own recursion limit is the last guard.
    source = "\n".join("    " * depth + f"- item{depth}" for depth in range(400))
    lifted = RenderLimits(depth=100_000, inline_marks=100_000, html_elements=100_000)
    rendered = render_markdown(source, lifted)
    page = soup(rendered.html)
    assert page.select_one("pre > code").get_text() == source
    assert rendered.word_count == 400
    assert rendered.headings == ()


def test_rendered_is_frozen_and_versioned() -> None:
    rendered = render_markdown("Hello.")
    assert rendered.version == RENDERER_VERSION
    assert isinstance(RENDERER_VERSION, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rendered.html = "<script></script>"  # type: ignore[misc]


def test_empty_input_renders_empty() -> None:
    assert render_markdown("") == Rendered(
        html="",
        toc_html="",
        headings=(),
        word_count=0,
        reading_minutes=1,
        summary="",
        version=RENDERER_VERSION,
    )


# --- the allowlist -----------------------------------------------------------------------


def test_allowlist_is_exactly_what_markdown_produces() -> None:
    # Changing this set changes stored HTML: bump RENDERER_VERSION with it.
    assert {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol",
        "p", "picture", "pre", "s", "source", "span", "strong", "sub", "sup", "table", "tbody",
        "td", "th", "thead", "tr", "ul",
    } == markup.ALLOWED_TAGS  # fmt: skip
    assert not markup.ALLOWED_TAGS & FORBIDDEN_TAGS
    every_attribute = set().union(*markup.ALLOWED_ATTRIBUTES.values())
    assert not {name for name in every_attribute if name.startswith("on")}
    assert "style" not in every_attribute
    assert {"http", "https", "mailto"} == markup.LINK_SCHEMES
    assert {"http", "https"} == markup.IMAGE_SCHEMES


HOSTILE_INPUTS = [
    ("script", "<script>alert(1)</script>"),
    ("script_in_paragraph", "Hello <script>alert(1)</script> world"),
    ("script_split", "<scr<script>ipt>alert(1)</scr</script>ipt>"),
    ("style", "<style>body { display: none }</style>"),
    ("iframe", '<iframe src="https://evil.example/"></iframe>'),
    ("iframe_srcdoc", '<iframe srcdoc="<script>alert(1)</script>"></iframe>'),
    ("svg_onload", "<svg onload=alert(1)>"),
    ("svg_script", "<svg><script>alert(1)</script></svg>"),
    ("svg_animate_href", '<svg><a><animate attributeName="href" values="javascript:alert(1)"/>'),
    ("img_onerror", "<img src=x onerror=alert(1)>"),
    ("img_onerror_quoted", '<img src="x" onerror="alert(1)" alt="a">'),
    ("a_javascript", '<a href="javascript:alert(1)">x</a>'),
    ("a_javascript_mixed_case", '<a href="JaVaScRiPt:alert(1)">x</a>'),
    ("a_javascript_whitespace", '<a href=" \tjava\nscript:alert(1)">x</a>'),
    ("a_javascript_control_chars", '<a href="\x01java\x00script:alert(1)">x</a>'),
    ("a_javascript_entities", '<a href="&#106;&#97;&#118;&#97;script&#58;alert(1)">x</a>'),
    ("a_javascript_hex_entities", '<a href="&#x6A;avascript&#x3A;alert(1)">x</a>'),
    ("a_javascript_colon_entity", '<a href="javascript&colon;alert(1)">x</a>'),
    ("a_javascript_no_semicolons", '<a href="&#106&#97&#118&#97script:alert(1)">x</a>'),
    ("a_data", '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>'),
    ("a_vbscript", '<a href="vbscript:msgbox(1)">x</a>'),
    ("a_onclick", '<a href="/x" onclick="alert(1)" onmouseover="alert(2)">x</a>'),
    ("a_style", '<a href="/x" style="position:fixed;top:0">x</a>'),
    ("img_data", '<img src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=">'),
    ("img_javascript", '<img src="javascript:alert(1)">'),
    ("img_srcset", '<img src="/a.png" srcset="javascript:alert(1) 1x">'),
    ("math", '<math><mtext><a href="javascript:alert(1)">x</a></mtext></math>'),
    ("math_mglyph", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>"),
    ("form", '<form action="javascript:alert(1)"><button>go</button></form>'),
    ("formaction", '<button formaction="javascript:alert(1)">x</button>'),
    ("input", "<input autofocus onfocus=alert(1)>"),
    ("textarea", "<textarea><script>alert(1)</script></textarea>"),
    ("noscript", '<noscript><p title="</noscript><img src=x onerror=alert(1)>">'),
    ("title", "<title><script>alert(1)</script></title>"),
    ("base", '<base href="javascript:alert(1)//">'),
    ("object", '<object data="javascript:alert(1)"></object>'),
    ("embed", '<embed src="javascript:alert(1)">'),
    ("meta_refresh", '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'),
    ("link", '<link rel="stylesheet" href="https://evil.example/x.css">'),
    ("comment", "<!-- <script>alert(1)</script> -->"),
    ("conditional_comment", "<!--[if IE]><script>alert(1)</script><![endif]-->"),
    ("cdata", "<![CDATA[<script>alert(1)</script>]]>"),
    ("template", "<template><img src=x onerror=alert(1)></template>"),
    ("details_ontoggle", "<details open ontoggle=alert(1)>"),
    ("markdown_link_javascript", "[x](javascript:alert(1))"),
    ("markdown_link_javascript_case", "[x](JAVASCRIPT:alert(1))"),
    ("markdown_link_javascript_entity", "[x](javascript&#58;alert(1))"),
    ("markdown_link_javascript_angle", "[x](<javascript:alert(1)>)"),
    ("markdown_link_data", "[x](data:text/html,<script>alert(1)</script>)"),
    ("markdown_link_vbscript", "[x](vbscript:msgbox(1))"),
    ("markdown_reference_link", "[x][1]\n\n[1]: javascript:alert(1)"),
    ("markdown_autolink_javascript", "<javascript:alert(1)>"),
    ("markdown_image_javascript", "![x](javascript:alert(1))"),
    ("markdown_image_data", "![x](data:image/png;base64,AAAA)"),
    ("markdown_image_mailto", "![x](mailto:me@example.org)"),
    ("markdown_link_title_breakout", '[x](/a "t\\" onmouseover=\\"alert(1))'),
    ("heading_with_script", "## <script>alert(1)</script> Title"),
    ("footnote_with_script", "x[^1]\n\n[^1]: <img src=x onerror=alert(1)>"),
    ("abbr_title_breakout", 'HTML\n\n*[HTML]: "><img src=x onerror=alert(1)>'),
    ("table_cell_script", "| a |\n|---|\n| <script>alert(1)</script> |"),
    ("code_fence_language_breakout", '```"><script>alert(1)</script>\nx\n```'),
    ("stash_placeholder", "\x02wzxhzdk:0\x03 <script>alert(1)</script>"),
]


@pytest.mark.parametrize(
    "source", [s for _, s in HOSTILE_INPUTS], ids=[i for i, _ in HOSTILE_INPUTS]
)
def test_hostile_input_renders_nothing_that_can_run_script(source: str) -> None:
    rendered = render_markdown(source)
    assert script_risks(rendered.html) == []
    assert script_risks(rendered.toc_html) == []
    assert sanitize_html(rendered.html) == rendered.html


@pytest.mark.parametrize(
    "source",
    ["[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x](vbscript:x)", "[x](data:,x)"],
)
def test_links_with_unsafe_urls_keep_their_text_but_lose_the_url(source: str) -> None:
    link = soup(render_markdown(source).html).a
    assert link.get_text() == "x"
    assert not link.has_attr("href")


@pytest.mark.parametrize(
    "fragment",
    [
        # bleach quotes a value holding '"' with "'" and then escapes its "&" once more
        # on every pass, unless told to always quote with '"'.
        '<img src=0"<p>',
        "<abbr title='a \"b\" &amp; c <d>'>x</abbr>",
        # html5lib puts a list item met inside a table before the table, inside the
        # outer item: serialised, that nesting parses differently.
        "<ul><li><table><li>x",
        # Stripping <section> leaves one list item directly inside another.
        "<ul><li><section><li>x</li></section></li></ul>",
        "<<!-->\x0c0",
    ],
)
def test_sanitising_awkward_html_reaches_a_fixed_point_at_once(fragment: str) -> None:
    once = sanitize_html(fragment)
    assert sanitize_html(once) == once


def test_scripts_typed_as_raw_html_become_inert_text() -> None:
    # bleach strips the tags but keeps what was between them, as text.
    assert render_markdown("<script>alert(1)</script>").html == "alert(1)"


def test_comments_are_stripped() -> None:
    assert "secret" not in render_markdown("before <!-- secret --> after").html


# --- the XSS corpus ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_payloads() -> list[tuple[str, str]]:
    """Give every payload of the shared XSS corpus with its file and line number."""
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"XSS corpus not found at {CORPUS_DIR} (it lives in shared/ beside the repo)")
    payloads = [
        (f"{path.name}:{number}", line)
        for path in sorted(CORPUS_DIR.glob("*.txt"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if line.strip()
    ]
    if not payloads:
        pytest.skip(f"XSS corpus at {CORPUS_DIR} holds no payloads")
    return payloads


@pytest.mark.slow
@pytest.mark.parametrize(
    "wrap",
    [lambda payload: payload, lambda payload: f"Some text before {payload} and after.\n\nMore."],
    ids=["as_body", "in_paragraph"],
)
def test_corpus_payloads_render_nothing_that_can_run_script(
    corpus_payloads: list[tuple[str, str]], wrap: Callable[[str], str]
) -> None:
    failures = []
    for where, payload in corpus_payloads:
        source = wrap(payload)
        typed = source.encode("utf-8")
        rendered = render_markdown(source)
        # What is stored is exactly what was typed.
        assert source.encode("utf-8") == typed, where
        risks = script_risks(rendered.html) + script_risks(rendered.toc_html)
        if risks:
            failures.append(f"{where}: {payload!r}: {risks}")
    assert not failures, f"{len(failures)} payload(s) got through:\n" + "\n".join(failures[:20])


@pytest.mark.slow
def test_rendering_the_corpus_is_pure_across_threads(
    corpus_payloads: list[tuple[str, str]],
) -> None:
    sample = [payload for _, payload in corpus_payloads[::20]]
    serial = [render_markdown(payload) for payload in sample]
    # The same payloads again, backwards and on four threads at once, give the same results.
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(render_markdown, reversed(sample)))
    assert concurrent[::-1] == serial


def test_concurrent_renders_do_not_share_state() -> None:
    sources = [
        f"# Post {n}\n\nText[^a] about ABC{n}.\n\n*[ABC{n}]: Thing {n}\n\n[^a]: Note {n}\n\n"
        f"## Part {n}\n\n### Detail {n}\n\n```python\nx = {n}\n```\n"
        for n in range(16)
    ]
    expected = [render_markdown(source) for source in sources]
    barrier = threading.Barrier(8)

    def render_all(offset: int) -> list[Rendered]:
        barrier.wait()
        return [render_markdown(sources[(offset + i) % 16]) for i in range(16)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(render_all, range(8)))
    for offset, rendered in enumerate(results):
        assert rendered == [expected[(offset + i) % 16] for i in range(16)]


# --- properties --------------------------------------------------------------------------

# Pieces of Markdown and HTML that hypothesis strings together into hostile-looking documents.
MARKUP_PIECES = st.sampled_from(
    [
        "<", ">", "&", "\"", "'", "=", "/", "\n", "\n\n", "    ", "`", "```", "```python\n",
        "*", "_", "#", "## ", "- ", "1. ", "> ", "|", "|---|", "[", "]", "(", ")", "](", "[^1]",
        "[^1]: ", "*[", "]: ", ":   ", "[TOC]", "<p>", "</p>", "<a href=\"", "</a>", "<b>",
        "</b>", "<table>", "<tr>", "<td>", "</td>", "<li>", "<ul>", "<pre>", "<code>",
        "<script>", "</script>", "<style>", "<svg>", "<math>", "<textarea>", "<noscript>",
        "<title>", "<template>", "<select>", "<option>", "<img src=", " onerror=", " onload=",
        "<!--", "-->", "<![CDATA[", "]]>", "<?", "javascript:", "java&#x09;script:", "&amp;",
        "&#", "&lt;", "&#58;", "mailto:", "http://", "data:", "\x00", "\x0b", "\u2028",
        "<span class=\"k\">", "</span>", "<div class=\"toc\">", "</div>", "<abbr title=\"",
        "<sup id=\"fn:1\">", "&para;", "<section>", "</section>", "<li>", "</li>", "<dt>",
        "<dd>", "<h2>", "<a>", "<tbody>", "<th>", "<caption>", "<ol>", "<form>", "<button>",
        "\x0c", "\r", "\x7f", "\x85", "\ufffe", "<div class=\"table-scroll\">",
        "<div class=\"code-scroll\">", "<div class=\"codehilite\">", " tabindex=\"0\"",
        " role=\"region\"", " aria-label=\"", "<code class=\"language-", "<thead>", "</table>",
    ]
)  # fmt: skip
markupish_text = st.lists(MARKUP_PIECES | st.text(max_size=4), max_size=40).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300) | markupish_text)
def test_rendered_html_is_a_fixed_point_of_sanitising(source: str) -> None:
    rendered = render_markdown(source)
    assert sanitize_html(rendered.html) == rendered.html
    assert sanitize_html(rendered.toc_html) == rendered.toc_html


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markupish_text)
def test_rendering_arbitrary_markup_never_raises_or_lets_script_through(source: str) -> None:
    rendered = render_markdown(source)
    assert script_risks(rendered.html) == []
    assert len(rendered.summary) <= markup.SUMMARY_LIMIT
    assert rendered.reading_minutes >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markupish_text)
def test_sanitising_any_html_twice_changes_nothing_more(fragment: str) -> None:
    once = sanitize_html(fragment)
    assert sanitize_html(once) == once
    assert script_risks(once) == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.integers(min_value=1, max_value=60))
def test_summaries_never_exceed_their_limit(text: str, limit: int) -> None:
    summary = plain_text_summary(f"<p>{html.escape(text)}</p>", limit)
    assert len(summary) <= limit
    collapsed = " ".join(text.split())
    assert summary == collapsed or summary.endswith("…")


# --- summary, word count, reading time ---------------------------------------------------


def test_summary_is_the_first_paragraph_as_plain_text() -> None:
    fragment = "<h1>Title</h1><p>Hello <em>big</em>\n   world &amp; more</p><p>Second.</p>"
    assert plain_text_summary(fragment) == "Hello big world & more"


def test_summary_skips_footnote_numbers_and_permalinks() -> None:
    rendered = render_markdown("# Title\n\nA claim[^1] made *here*.\n\n[^1]: The source.\n")
    assert rendered.summary == "A claim made here."


def test_summary_skips_paragraphs_without_text() -> None:
    assert render_markdown("![cover](/media/cover.png)\n\nThe real intro.\n").summary == (
        "The real intro."
    )


def test_summary_without_paragraphs_uses_the_prose() -> None:
    assert render_markdown("# Only a title\n\n```\ncode here\n```\n").summary == "Only a title"


def test_summary_is_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    text = " ".join(f"word{n}" for n in range(100))
    summary = plain_text_summary(f"<p>{text}</p>")
    assert len(summary) <= 300
    assert summary.endswith("…")
    kept = summary[:-1]
    assert text.startswith(kept)
    assert text[len(kept)] == " "


def test_summary_that_fits_is_not_cut() -> None:
    text = "x" * 299 + "."
    assert plain_text_summary(f"<p>{text}</p>") == text


def test_summary_drops_trailing_punctuation_before_the_ellipsis() -> None:
    assert plain_text_summary("<p>One, two, three, four</p>", limit=12) == "One, two…"


def test_summary_of_one_long_word_is_cut_inside_it() -> None:
    assert plain_text_summary("<p>" + "a" * 400 + "</p>") == "a" * 299 + "…"


def test_summary_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        plain_text_summary("<p>x</p>", limit=0)


def test_rendered_summary_matches_plain_text_summary_of_the_html() -> None:
    rendered = render_markdown("Some *rich* text with `code` and a [link](/x).\n\nMore.")
    assert rendered.summary == plain_text_summary(rendered.html)
    assert rendered.summary == "Some rich text with code and a link."


def test_word_count_skips_permalinks_and_footnote_numbers() -> None:
    rendered = render_markdown("# Title here\n\nOne two three.[^1]\n\n[^1]: Four.\n")
    assert rendered.word_count == 6


def test_word_count_includes_code_and_skips_the_toc() -> None:
    source = "[TOC]\n\n# A\n\n## B\n\n### C\n\nSome prose.\n\n```python\nx = y\n```\n"
    assert render_markdown(source).word_count == 3 + 2 + 2


def test_word_count_keeps_contractions_and_hyphenated_words_whole() -> None:
    assert render_markdown("Don't over-think it, it\u2019s fine.").word_count == 5


@pytest.mark.parametrize(
    ("prose", "code", "minutes"),
    [(0, 0, 1), (100, 0, 1), (230, 0, 1), (460, 0, 2), (1150, 0, 5), (0, 100, 1), (0, 300, 3),
     (230, 100, 2)],
)  # fmt: skip
def test_reading_minutes(prose: int, code: int, minutes: int) -> None:
    assert reading_minutes(prose, code) == minutes


def test_code_is_read_more_slowly_than_prose() -> None:
    words = " ".join(["word"] * 690)
    prose = render_markdown(words)
    code = render_markdown(f"```\n{words}\n```\n")
    assert prose.word_count == code.word_count == 690
    assert prose.reading_minutes == 3
    assert code.reading_minutes == 7


# --- stylesheet --------------------------------------------------------------------------


def _relative_luminance(colour: str) -> float:
    digits = colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(first: str, second: str) -> float:
    lighter, darker = sorted(
        (_relative_luminance(first), _relative_luminance(second)), reverse=True
    )
    return (lighter + 0.05) / (darker + 0.05)


@pytest.mark.parametrize("style_name", [markup.LIGHT_STYLE, markup.DARK_STYLE])
def test_code_styles_meet_wcag_aa_contrast(style_name: str) -> None:
    style = get_style_by_name(style_name)
    too_faint = []
    for token_type, short in STANDARD_TYPES.items():
        colour = style.style_for_token(token_type)["color"]
        if colour and token_type not in Whitespace and token_type not in Error:
            background = style.style_for_token(token_type)["bgcolor"] or style.background_color
            if _contrast(f"#{colour}", background) < 4.5:
                too_faint.append(short)
    assert too_faint == []


def _css_rules(css: str) -> dict[str, set[str]]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    return {
        selector.strip(): {d.split(":")[0].strip() for d in body.split(";") if d.strip()}
        for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css)
    }


def test_css_has_light_rules_and_dark_rules_that_override_them() -> None:
    css = markup.pygments_css()
    light_css, _, dark_css = css.partition("@media (prefers-color-scheme: dark) {")
    light, dark = _css_rules(light_css), _css_rules(dark_css)
    assert ".codehilite .k" in light
    assert all(selector.startswith(".codehilite") for selector in light | dark)
    for selector, properties in light.items():
        assert properties <= dark.get(selector, set()), selector


def test_static_css_file_is_up_to_date() -> None:
    assert markup.CSS_PATH.read_text(encoding="utf-8") == markup.pygments_css(), (
        "static/css/pygments.css is stale: run `python -m pyproject.blog.markup --css`"
    )


def test_css_command_writes_the_stylesheet(tmp_path: Path) -> None:
    target = tmp_path / "css" / "pygments.css"
    assert markup.main(["--css", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == markup.pygments_css()


def test_unmatched_brackets_render_as_text_and_links_beside_them_still_work() -> None:
    # Python-Markdown looks for the "]" of every "[" to the end of its block: quadratic.
    text = "[" * 5_000 + " [a link](https://example.com)\n\nA normal [link](https://example.org)."
    rendered = render_markdown(text)
    first, second = rendered.html.split("</p>", 1)
    assert first.count("[") == 5_000
    assert "\\[" not in first
    assert 'href="https://example.com"' in first
    assert 'href="https://example.org"' in second


def test_a_few_unmatched_brackets_and_code_spans_are_left_as_typed() -> None:
    text = "Index `a[i]` and `[[[[[[[[[[[[` then [[[[[[[[[[[[[[ done and [x](https://example.org)"
    html = render_markdown(text).html
    assert "<code>[[[[[[[[[[[[</code>" in html
    assert "[[[[[[[[[[[[[[ done" in html
    assert "\\[" not in html


def test_brackets_inside_fenced_code_are_left_alone_when_defused() -> None:
    text = "```\n" + "[" * 1000 + "\n```\n\n" + "[" * 500
    rendered = render_markdown(text)
    assert "\\[" not in rendered.html


@pytest.mark.parametrize(
    "reference",
    [
        "&#" + "1" * 5000 + ";",
        "&#x" + "f" * 6000 + ";",
        "&#" + "9" * 8 + ";",
        "&#" + "0" * 4999 + "1;",
    ],
)
def test_a_numeric_reference_too_long_for_any_code_point_shows_as_typed(reference: str) -> None:
    # Past 4,300 digits int() refuses the number, in html.unescape and in html5lib.
    for text in (reference, f"[link]({reference})", f"Before {reference} after"):
        rendered = render_markdown(text)
        assert reference[2:20] in rendered.html
    assert render_markdown("&#65; &#x41; &#0000065;").html == "<p>&#65; &#x41; &#0000065;</p>"


# --- pictures (#15) ------------------------------------------------------------------------

OURS = "/media/files/" + "ab" * 32 + "/original.jpg"
PICTURES = {
    OURS: {
        "width": 2000,
        "height": 1000,
        "srcset": {
            "avif": "/m/480.avif 480w, /m/960.avif 960w",
            "webp": "/m/480.webp 480w, /m/960.webp 960w",
            "fallback": "/m/480.jpg 480w, /m/960.jpg 960w",
        },
    }
}


def test_a_picture_of_ours_becomes_picture_with_sized_sources() -> None:
    html_out = render_markdown(f"![A field]({OURS})", images=PICTURES).html
    picture = soup(html_out).select_one("picture")
    sources = picture.select("source")
    assert [s["type"] for s in sources] == ["image/avif", "image/webp"]
    assert sources[0]["srcset"] == "/m/480.avif 480w, /m/960.avif 960w"
    assert all(s["sizes"] == markup.PICTURE_SIZES for s in sources)
    img = picture.select_one("img")
    assert (img["src"], img["width"], img["height"], img["alt"]) == (
        OURS,
        "2000",
        "1000",
        "A field",
    )
    assert img["srcset"] == "/m/480.jpg 480w, /m/960.jpg 960w" and img["decoding"] == "async"
    assert "loading" not in img.attrs  # the first image of the post
    assert sanitize_html(html_out) == html_out
    assert script_risks(html_out) == []


def test_before_variants_a_picture_of_ours_is_a_sized_img() -> None:
    pending = {OURS: {"width": 300, "height": 200, "srcset": {}}}
    page = soup(render_markdown(f"![x]({OURS})", images=pending).html)
    assert not page.select("picture")
    img = page.select_one("img")
    assert (img["width"], img["height"]) == ("300", "200") and "srcset" not in img.attrs


def test_every_image_but_the_first_is_lazy_and_external_ones_stay_plain() -> None:
    text = f"![a](https://example.org/a.png)\n\n![b]({OURS})\n\n![c](https://example.org/c.png)"
    images = soup(render_markdown(text, images=PICTURES).html).select("img")
    assert [img.get("loading") for img in images] == [None, "lazy", "lazy"]
    assert images[0].parent.name == "p" and "width" not in images[0].attrs
    assert images[1].parent.name == "picture"


@pytest.mark.parametrize(
    ("raw", "gone"),
    [
        ('<img src="x.png" srcset="javascript:alert(1) 1x">', "srcset"),
        ('<img src="x.png" srcset="x.png 1x, data:text/html,1 2x">', "srcset"),
        ('<img src="x.png" srcset="x.png huge">', "srcset"),
        ('<img src="x.png" sizes="url(javascript:alert(1))">', "sizes"),
        ('<img src="x.png" width="100%">', "width"),
        ('<img src="x.png" loading="soon">', "loading"),
        ('<img src="x.png" decoding="now">', "decoding"),
        ('<picture><source src="javascript:alert(1)"><img src="x.png"></picture>', "src="),
        ('<picture><source srcset="x.webp" type="text/html"><img src="x.png"></picture>', "type"),
        (
            '<picture><source srcset="x.webp" onerror="alert(1)"><img src="x.png"></picture>',
            "onerror",
        ),
    ],
)
def test_raw_picture_markup_keeps_only_checked_values(raw: str, gone: str) -> None:
    cleaned = render_markdown(raw).html
    assert gone not in cleaned.replace('src="x.png"', "") and script_risks(cleaned) == []
