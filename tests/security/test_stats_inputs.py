"""Statistics (#22) against hostile input: what readers send (search terms, Referer,
User-Agent, Sec-GPC) is shown on /stats and in its CSV without running script, never
gives a 500, and the dashboard's query strings and table names answer 404.
"""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

import pytest
from blog.conftest import Cast, make_cast, slug_of, write_post

from pyproject.lib import App
from pyproject.lib.testing import TestResponse

from .checks import CORPUS_FILE, CORPUS_MISSING, chunked, load_corpus, script_problems

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
needs_corpus = pytest.mark.skipif(not CORPUS_FILE.is_file(), reason=CORPUS_MISSING)


@pytest.fixture
def cast(app: App) -> Cast:
    return make_cast(app)


def routable(cast: Cast):
    return lambda path: bool(cast.app.router.allowed_methods(path))


def problems_of(cast: Cast, label: str, response: TestResponse) -> list[str]:
    if response.status_code != 200:
        return [f"{label}: status {response.status_code}"]
    return [f"{label}: {p}" for p in script_problems(response.data, routable=routable(cast))]


def browser(cast: Cast, number: int, agent: str = FIREFOX):
    address = f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
    return cast.app.test_client(
        environ_overrides={"REMOTE_ADDR": address, "HTTP_USER_AGENT": agent}
    )


@needs_corpus
def test_what_readers_send_is_shown_on_stats_without_script(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Read by many"))
    payloads = load_corpus()
    for number, payload in enumerate(payloads[:400]):
        for twice in (0, 1):  # a term searched twice a day is kept
            answer = browser(cast, number * 2 + twice).get("/search?" + urlencode({"q": payload}))
            assert answer.status_code in (200, 404), answer.status_code
        answer = browser(cast, 100_000 + number, FIREFOX + " " + payload[:200]).get(
            f"/posts/{slug}", headers={"Referer": payload[:500]}
        )
        assert answer.status_code in (200, 400), answer.status_code
    for chunk in chunked(payloads[:200], 20):
        agent = f"{' '.join(chunk)[:300]} 12 subscribers"
        assert cast.app.test_client().get("/feed.atom", headers={"User-Agent": agent}).status_code
    for days in ("7", "365"):
        page = cast.admin.get(f"/stats?days={days}")
        found = problems_of(cast, f"/stats?days={days}", page)
        assert found == [], "\n".join(found[:20])
    assert len(cast.admin.get("/stats").html.select(".stats-searches tbody tr")) == 10
    post_page = cast.author.get(f"/posts/{slug}/stats")
    assert problems_of(cast, "post stats", post_page) == []
    for table in ("searches", "referrers", "subscribers", "pages"):
        answer = cast.admin.get(f"/stats/{table}.csv?days=365")
        assert answer.status_code == 200
        rows = list(csv.reader(io.StringIO(answer.text)))
        for row in rows[1:]:
            for cell in row:  # nothing a spreadsheet would run
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


@pytest.mark.parametrize(
    "headers",
    [
        {"User-Agent": "Mozilla/5.0 " + "A" * 20_000},
        {"User-Agent": "Mozilla/5.0 \udcff broken", "Referer": "https://\udcff.example/"},
        {"User-Agent": FIREFOX, "Referer": "http://[::1"},
        {"User-Agent": FIREFOX, "Referer": "https://" + "a." * 3000 + "org/"},
        {"User-Agent": FIREFOX, "Referer": "https://user:pass@evil.example:99999/"},
        {"User-Agent": FIREFOX, "Sec-GPC": "1" * 5000},
        {"User-Agent": FIREFOX, "Referer": "\x00\x01\x02"},
        {"User-Agent": "Feedly/1.0 (; 99999999999999999999 subscribers; )"},
    ],
)
def test_hostile_headers_never_break_a_page(cast: Cast, headers: dict[str, str]) -> None:
    slug = slug_of(write_post(cast.author, title="Sturdy"))
    for path in (f"/posts/{slug}", "/", "/search?q=sturdy", "/feed.atom"):
        client = cast.app.test_client()
        answer = client.get(path, headers=headers)
        assert answer.status_code < 500, (path, answer.status_code)
    assert cast.admin.get("/stats").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "days=0",
        "days=%F0%9F%92%A9",
        "days=1e3",
        "days= 7",
        "days=" + "9" * 5000,
        "days=%ZZ",
    ],
)
def test_bad_query_strings_are_4xx(cast: Cast, query: str) -> None:
    for path in ("/stats", "/stats/days.csv"):
        answer = cast.admin.get(f"{path}?{query}")
        assert 400 <= answer.status_code < 500, (path, query, answer.status_code)
