"""Markdown that costs far more to render than its length suggests: a corpus, not a test.

SHAPES maps a name to a builder: ``SHAPES[name](size)`` gives that shape as Markdown of at
most ``size`` characters, as close to it as the shape allows (the fenced-code shapes are
small on purpose: one block under 8,000 characters is enough). Each builder's docstring says
in one line what makes it slow or large, and where: Python-Markdown, Pygments, html5lib
(inside bleach) or our own code. Each one, at BODY_MAX (200,000 characters) or smaller,
took over 0.3 s to render, rendered to over 10 times its size or raised, with the pipeline
before any budget (commit 20617fb), with the first budgets (a43b001), or with both.

Two costs run through many of them. Python-Markdown rebuilds a paragraph's whole string for
every inline match (InlineProcessor.__applyPattern), and html5lib's etree tree walker, which
bleach serialises with, finds an element's place among its siblings with list.count and
list.index (getParentNode): a parent with thousands of children that have children of their
own (rows, list items holding paragraphs, headings with permalinks) is quadratic. And
Python-Markdown runs every block processor's test() over the whole rest of a block each time
a processor takes one line of it and puts the rest back (rules, definitions of abbreviations
or of terms): a block of thousands of such lines is quadratic.

``bench/render.py`` renders every shape at BODY_MAX and prints the table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

Shape = Callable[[int], str]
SHAPES: dict[str, Shape] = {}


def shape(builder: Shape) -> Shape:
    """Register a builder under its own name, cut so that it never gives more than size."""

    @functools.wraps(builder)
    def at_most(size: int) -> str:
        return builder(size)[: max(0, size)]

    SHAPES[builder.__name__] = at_most
    return at_most


def repeat(unit: str, size: int, head: str = "", tail: str = "") -> str:
    """Give head, then unit as many times as fits, then tail: at most size characters."""
    room = size - len(head) - len(tail)
    if room < 0:
        return (head + tail)[:size]
    return head + unit * (room // len(unit)) + tail


def fenced(language: str, body: str, size: int) -> str:
    """Give one fenced code block in the language, its body cut to fit in size."""
    head, tail = f"```{language}\n", "\n```\n"
    return head + body[: max(0, size - len(head) - len(tail))] + tail


HEADINGS = "# a\n" * 150
PROSE = "Plain words with nothing in them for any parser to do. "


def padded(text: str, size: int) -> str:
    """Give the text, then a paragraph of plain prose that fills it out to size."""
    room = size - len(text) - 2
    if room <= 0:
        return text
    return text + "\n\n" + (PROSE * (room // len(PROSE) + 1))[:room]


# --- tables of contents and headings ---------------------------------------------------------


@shape
def toc_copies(size: int) -> str:
    """toc's replace_marker puts the whole table of contents at every [TOC]: headings x markers."""
    return repeat("[TOC]\n\n", size, HEADINGS)


@shape
def toc_in_quotes(size: int) -> str:
    """replace_marker takes any element whose only text is [TOC]: here each quoted paragraph."""
    return repeat("> [TOC]\n\n", size, HEADINGS)


@shape
def toc_in_list(size: int) -> str:
    """The [TOC] marker as tight list items: every <li> becomes a table of contents."""
    return repeat("- [TOC]\n", size, HEADINGS)


@shape
def toc_in_emphasis(size: int) -> str:
    """The [TOC] marker as the only text of an <em>, replaced in place inside its <p>."""
    return repeat("*[TOC]*\n\n", size, HEADINGS)


@shape
def duplicate_headings(size: int) -> str:
    """toc's unique(), a toc entry and a permalink each (x26 output); h1 > a walks quadratically."""
    return repeat("# a\n\n", size)


# --- nesting of blocks -----------------------------------------------------------------------


@shape
def quote_one_line_deep(size: int) -> str:
    """BlockQuoteProcessor recurses per ">" (to near the recursion limit), rewriting the rest."""
    return repeat("> ", size, "", "a")


@shape
def quote_lines_deep(size: int) -> str:
    """Every line 100 quotes deep: each level of BlockQuoteProcessor re-splits every line."""
    return repeat("> " * 100 + "a\n", size)


@shape
def list_one_line_deep(size: int) -> str:
    """UListProcessor recurses per "- ", HRProcessor searching the rest, until RecursionError."""
    return repeat("- ", size, "", "a")


@shape
def ordered_list_one_line_deep(size: int) -> str:
    """The same with "1. ": OListProcessor recursion over the rest of the line, per level."""
    return repeat("1. ", size, "", "a")


@shape
def quote_list_one_line_deep(size: int) -> str:
    """Quotes and list items alternating on one line: both recurse, an element per level."""
    return repeat("> - ", size, "", "a")


# --- inline markup in one long paragraph -----------------------------------------------------


@shape
def emphasis_after_punctuation(size: int) -> str:
    """Quote-star pairs: AsteriskProcessor.handleMatch makes an <em> every 4 characters."""
    return repeat('"*', size)


@shape
def underscore_after_punctuation(size: int) -> str:
    """Bang-underscore pairs: UnderscoreProcessor makes an <em> every 4 characters."""
    return repeat("!_", size)


@shape
def emphasis_pairs(size: int) -> str:
    """An <em> per 4 characters; each match rebuilds the paragraph string (__applyPattern)."""
    return repeat("*a* ", size)


@shape
def emphasis_open_runs(size: int) -> str:
    """Openers that never close: AsteriskProcessor pairs and searches ahead from each."""
    return repeat("**_* ", size)


@shape
def emphasis_and_code(size: int) -> str:
    """Star-backtick pairs: <em> holding <code>, siblings with children for the walker."""
    return repeat("*`", size)


@shape
def code_spans(size: int) -> str:
    """A <code> per 4 characters: BacktickInlineProcessor, then an element each in bleach."""
    return repeat("`a` ", size)


@shape
def ampersands(size: int) -> str:
    """Every & becomes &amp; (x5 output); bleach's match_entity and html5lib's trie per one."""
    return repeat("&", size)


@shape
def numeric_entities(size: int) -> str:
    """ENTITY_RE stashes every entity as raw HTML: a placeholder and a string rebuild each."""
    return repeat("&#1;", size)


@shape
def entity_with_huge_number(size: int) -> str:
    """A 5,000-digit &#...; reaches _TextScan's html.unescape: int() raises ValueError."""
    digits = max(1, min(5_000, size - 3))
    return "&#" + "0" * (digits - 1) + "1;"


@shape
def less_than_runs(size: int) -> str:
    """Every < is tried as raw HTML by HTML_RE, then escaped (x4 output)."""
    return repeat("<", size)


@shape
def unfinished_tags(size: int) -> str:
    """Runs of <a: HTML_RE tries each as a tag; html5lib reads a tag name per pair."""
    return repeat("<a", size)


@shape
def unfinished_end_tags(size: int) -> str:
    """Runs of </: each a bogus comment or text, for HTMLExtractor and for html5lib."""
    return repeat("</", size, "a ")


@shape
def unfinished_declarations(size: int) -> str:
    """Runs of <!: markup declarations that never end, for html.parser and html5lib."""
    return repeat("<!", size, "a ")


@shape
def unfinished_processing_instructions(size: int) -> str:
    """Runs of <?: processing instructions that never end."""
    return repeat("<?", size, "a ")


@shape
def unclosed_comments(size: int) -> str:
    """Runs of <!-- never closed: each a comment start for HTML_RE and the HTML parsers."""
    return repeat("<!--", size, "a ")


@shape
def hard_line_breaks(size: int) -> str:
    """One paragraph, a <br> per 4 characters, each match rebuilding the paragraph string."""
    return repeat("a  \n", size)


@shape
def automatic_links(size: int) -> str:
    """Each <http://...> becomes an <a>, with a URL check and rel from our filter."""
    return repeat("<http://a.b> ", size)


@shape
def automatic_mail_links(size: int) -> str:
    """AutomailInlineProcessor writes every character as an entity, twice (x10 output)."""
    return repeat("<" + "a" * 30 + "@b.c> ", size)


@shape
def inline_links(size: int) -> str:
    """Eight links a paragraph (no bracket limit applies): an <a> each, with a URL check."""
    return repeat("[a](/b) " * 8 + "\n\n", size)


@shape
def images(size: int) -> str:
    """Eight images a paragraph: an <img> each, with a URL check."""
    return repeat("![a](/b) " * 8 + "\n\n", size)


@shape
def bracket_blocks(size: int) -> str:
    """LinkInlineProcessor seeks each [ its ] to the end of the block: quadratic per block."""
    return repeat("[" * 400 + "\n\n", size)


# --- raw HTML --------------------------------------------------------------------------------


@shape
def nested_formatting_tags(size: int) -> str:
    """html5lib's reconstructActiveFormattingElements walks every open formatting element."""
    return repeat("<b><i><u>", size)


@shape
def formatting_misnested(size: int) -> str:
    """<b><i><div></b>: the adoption agency keeps every <div> open; elementInScope walks all."""
    return repeat("<b><i><div></b>", size, "a ")


@shape
def formatting_then_close(size: int) -> str:
    """n <b>, n <i>, then x</b> n times: each run of text reconstructs the open <i>s."""
    count = size // 20
    while count > 0:
        text = (
            "a "
            + "".join(f"<b {i}>" for i in range(count))
            + "".join(f"<i {i}>" for i in range(count))
            + "x</b>" * count
        )
        if len(text) <= size:
            return text
        count = count * 9 // 10
    return "a"


@shape
def nested_divs(size: int) -> str:
    """Unclosed <div>s: each start tag runs elementInScope("p") down the whole open stack."""
    return repeat("<div>", size)


@shape
def nested_lists_html(size: int) -> str:
    """Unclosed <ul><li>: each <li> walks the stack of open elements."""
    return repeat("<ul><li>", size, "a ")


@shape
def nested_tables_html(size: int) -> str:
    """Unclosed <table><tr><td>: table scope checks over a stack that only grows."""
    return repeat("<table><tr><td>", size, "a ")


@shape
def nested_links_html(size: int) -> str:
    """<a>x repeated: each <a> runs the adoption agency against the one still open."""
    return repeat("<a>x", size, "a ")


@shape
def paragraphs_in_bold(size: int) -> str:
    """<b><p>: every <p> closes the last and reopens every <b> in it (x6 output)."""
    return repeat("<b><p>", size, "a ")


@shape
def spans_then_div_ends(size: int) -> str:
    """Half open <span>s, half stray </div>: each end tag searches the stack of spans."""
    half = repeat("<span>", size // 2, "a ")
    return half + repeat("</div>", size - len(half))


@shape
def many_attributes(size: int) -> str:
    """One tag, thousands of attributes: html5lib's attributeNameState checks all before each."""
    return repeat(" a", size, "<span", ">x</span>")


@shape
def many_duplicate_attributes(size: int) -> str:
    """The same with a value each: still attributes squared in attributeNameState."""
    return repeat(" a=1", size, "<span", ">x</span>")


@shape
def open_block_tags(size: int) -> str:
    """A <div> on every line: one raw HTML block for HTMLExtractor, nested as deep as lines."""
    return repeat("<div>\n", size)


# --- references, abbreviations, footnotes ----------------------------------------------------


def _abbreviations(count: int) -> str:
    return "".join(f"*[AB{i}]: t\n" for i in range(count)) + "\n"


@shape
def abbreviation_definitions(size: int) -> str:
    """One definition a line: AbbrBlockprocessor takes one and re-queues the rest (quadratic)."""
    return repeat("*[A]: t\n", size)


@shape
def many_abbreviations(size: int) -> str:
    """AbbrTreeprocessor runs one alternation of every abbreviation over every text node."""
    definitions, total, count = [], 0, 0
    while total < size // 2:
        line = f"*[AB{count}]: t\n"
        definitions.append(line)
        total += len(line)
        count += 1
    return repeat("word ", size, "".join(definitions) + "\n")


@shape
def abbreviations_used(size: int) -> str:
    """2,000 abbreviations, then text using them: that alternation plus an <abbr> per use."""
    count = min(2_000, max(1, size // 40))
    words = " ".join(f"AB{i}" for i in range(0, count, 7)) + "\n\n"
    return repeat(words, size, _abbreviations(count))


@shape
def long_abbreviation_title(size: int) -> str:
    """Each use copies the abbreviation's 1,000-character title into <abbr title> (x490)."""
    return repeat("A ", size, f"*[A]: {'x' * 1_000}\n\n")


@shape
def long_reference_url(size: int) -> str:
    """Each use copies the reference's 1,000-character URL into an href (x115 output)."""
    return repeat("[a] " * 8 + "\n\n", size, f"[a]: /{'x' * 1_000}\n\n")


@shape
def footnote_many_definitions(size: int) -> str:
    """A footnote per paragraph: reference, item and backref each (x11); <li><p> walks."""
    parts, total, number = [], 0, 0
    while True:
        part = f"a[^{number}]\n\n[^{number}]: b\n\n"
        if total + len(part) > size:
            return "".join(parts)
        parts.append(part)
        total += len(part)
        number += 1


@shape
def footnote_many_references(size: int) -> str:
    """Thousands of references to one footnote: a <sup><a> each, and a backref each."""
    return repeat("a[^1] ", size, "", "\n\n[^1]: note\n")


# --- many ordinary blocks --------------------------------------------------------------------


@shape
def big_table(size: int) -> str:
    """Thousands of <tr> holding <td>s: the tree walker's getParentNode is quadratic in rows."""
    return repeat("| a | b |\n", size, "| h | h |\n| - | - |\n")


@shape
def wide_table(size: int) -> str:
    """One row of thousands of cells, and its delimiter row."""
    count = max(1, (size - 4) // 4)
    return "|a" * count + "|\n" + "|-" * count + "|\n"


@shape
def paragraphs(size: int) -> str:
    """A <p> per 3 characters: the plainest way to many elements, each sanitised."""
    return repeat("a\n\n", size)


@shape
def tight_list(size: int) -> str:
    """An <li> per 4 characters in one list."""
    return repeat("- a\n", size)


@shape
def ordered_list(size: int) -> str:
    """An <li> per 5 characters in one ordered list."""
    return repeat("1. a\n", size)


@shape
def loose_list(size: int) -> str:
    """A loose list: thousands of <li><p>, quadratic in the tree walker's getParentNode."""
    return repeat("- a\n\n", size)


@shape
def definition_lists(size: int) -> str:
    """Terms and definitions in one block: DefListProcessor re-queues the rest after each."""
    return repeat("a\n:   b\n", size)


@shape
def quoted_paragraphs(size: int) -> str:
    """One blockquote of thousands of paragraphs."""
    return repeat("> a\n>\n", size)


@shape
def horizontal_rules(size: int) -> str:
    """Rules on consecutive lines: each one re-queues the rest of the block (quadratic)."""
    return repeat("- - -\n", size)


@shape
def indented_code_blocks(size: int) -> str:
    """CodeBlockProcessor appends each block to the last one's text, rebuilding the string."""
    return repeat("    a\n\n", size)


# --- fenced code and Pygments ----------------------------------------------------------------
# The author names the lexer, and many of Pygments' 600 lexers have regexes that backtrack.
# These blocks fit in 8,000 characters: a cap on how much code is highlighted does not help.


@shape
def highlighted_lines(size: int) -> str:
    """Pygments writes a <span> per token, 3 a line here (x13 output), each through bleach."""
    return fenced("python", "a = 1\n" * (size // 6), size)


@shape
def highlighted_tokens(size: int) -> str:
    """One <span> per character (x24 output), each class checked against the allowlist."""
    return fenced("python", "a+" * (size // 2), size)


@shape
def many_fenced_blocks(size: int) -> str:
    """A fenced block per 16 characters: a lexer, a highlight and a <div><pre><code> each."""
    return repeat("```python\na\n```\n", size)


@shape
def scala_backslashes(size: int) -> str:
    """ScalaLexer's string rule is exponential in an unclosed run of backslashes."""
    return '```scala\n"' + "\\" * max(0, min(34, size - 14)) + "\n```\n"


@shape
def c_whitespace(size: int) -> str:
    """CFamilyLexer's function rule is between n^2 and n^3 in the spaces after a name."""
    return "```c\na" + " " * max(0, min(7_900, size - 13)) + "$\n```\n"


@shape
def javascript_escaped_quotes(size: int) -> str:
    """An unclosed string of escaped quotes: JavascriptLexer is quadratic in it."""
    return fenced("javascript", '"' + '\\"' * 3_950, min(size, 7_950))


@shape
def typescript_dots(size: int) -> str:
    """Dotted a.a.a: TypeScriptLexer is quadratic in it, and makes a <span> per token."""
    return fenced("typescript", "a." * 3_950, min(size, 7_950))


@shape
def terraform_long_word(size: int) -> str:
    """One 7,900-letter word and a hyphen: TerraformLexer is quadratic in the word."""
    return fenced("terraform", "A" * 7_900 + "-", min(size, 7_950))


@shape
def console_colons(size: int) -> str:
    """Colon-joined a:a:a in a shell session block: BashSessionLexer is quadratic in it."""
    return fenced("console", "a:" * 3_950, min(size, 7_950))


# --- sized to pass the first budgets (a43b001), then filled out with prose ---------------------
# Each stays under 12,000 characters that start inline markup and 15,000 estimated tags.


@shape
def toc_in_quotes_in_prose(size: int) -> str:
    """11,000 quoted [TOC] markers, each a full table of contents: seconds before any refusal."""
    return padded(HEADINGS + "> [TOC]\n\n" * 11_000, size)


@shape
def formatting_misnested_in_prose(size: int) -> str:
    """2,900 of <b><i><div></b> (11,600 marks): every <div> stays open, as formatting_misnested."""
    return padded("a " + "<b><i><div></b>" * 2_900, size)


@shape
def abbreviation_definitions_in_prose(size: int) -> str:
    """5,900 definitions of one abbreviation: one name, so a count of distinct names misses it."""
    return padded("*[A]: t\n" * 5_900, size)


@shape
def rules_in_prose(size: int) -> str:
    """7,400 spaced rules in one block: no marks, no setext headings, quadratic in HRProcessor."""
    return padded("a\n" + "- - -\n" * 7_400, size)


@shape
def unfinished_tags_in_prose(size: int) -> str:
    """5,900 unclosed <a then prose: _element_depth's _TAG ([^>]*?) scans to the end from each."""
    return padded("a " + "<a" * 5_900, size)


@shape
def loose_list_in_prose(size: int) -> str:
    """3,600 items of <li><p> in one list: the tree walker's getParentNode is quadratic in them."""
    return padded("- a\n\n" * 3_600, size)
