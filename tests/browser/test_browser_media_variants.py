"""A phone gets the 960 px copies of 4000 px photos, in a real Chromium (#15).

Five 4000 x 3000 photos are uploaded through the library's form to a real gunicorn; the
real job worker (`python main.py worker`, beside it) makes their variants; a post shows
them. Chromium at a 375 px wide viewport with device pixel ratio 2 must pick the 960 px
copies (the issue asks for under 1 MB of pictures for the five: the bytes it took are
printed, the choice of copy is what is asserted); a desktop of ratio 2 picks 1600 px.
"""

from __future__ import annotations

import io
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from pyproject.blog.db import make_engine
from pyproject.blog.models import Media
from tests.browser.support import (
    ROOT,
    Browsing,
    create_admin,
    fill_post,
    save,
    start_site,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.e2e.conftest import ServerHandle

pytestmark = pytest.mark.browser
PHOTOS = 5
PHOTO_SIZE = (4000, 3000)
VARIANTS_TIMEOUT = 180.0  # five 12 MP photos on a busy 2-core machine
PHONE = {"viewport": {"width": 375, "height": 812}, "device_scale_factor": 2}
DESKTOP_2X = {"viewport": {"width": 1280, "height": 900}, "device_scale_factor": 2}
WORKER_TIMEOUT = 10


def expect(target):  # imported late: collecting this file must not need playwright
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def photo(path: Path, seed: int) -> Path:
    """Write a 4000 x 3000 photo-like JPEG: colour gradients, soft shapes and grain."""
    from PIL import Image, ImageChops, ImageFilter

    width, height = PHOTO_SIZE
    across = Image.linear_gradient("L").resize(PHOTO_SIZE)
    down = Image.linear_gradient("L").rotate(90 + 17 * seed).resize(PHOTO_SIZE)
    rings = Image.radial_gradient("L").resize(PHOTO_SIZE)
    picture = Image.merge("RGB", (across, down, rings))
    blobs = Image.effect_noise((width // 40, height // 40), 90).resize(PHOTO_SIZE)
    blobs = blobs.filter(ImageFilter.GaussianBlur(8)).convert("RGB")
    grain = Image.effect_noise(PHOTO_SIZE, 24).convert("RGB")
    picture = ImageChops.blend(ImageChops.blend(picture, blobs, 0.35), grain, 0.12)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=92)
    path.write_bytes(out.getvalue())
    return path


@pytest.fixture
def site_with_worker(browser: Browser, tmp_path: Path) -> Iterator[ServerHandle]:
    """Give a new blog under gunicorn with its job worker running (both stopped after)."""
    folder = tmp_path / "site"
    # The site's own instance folder: its media and its job queue stay out of the repository.
    handle = start_site(folder, {"INSTANCE_PATH": str(folder), "JOB_WORKERS": 2})
    log = (folder / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "python"), "main.py", "worker"],
        cwd=ROOT,
        env=handle.env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    try:
        yield handle
    finally:
        worker.terminate()
        try:
            worker.wait(WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(WORKER_TIMEOUT)
        log.close()
        handle.stop()


def wait_for_variants(database_url: str, count: int, worker_log: Path) -> None:
    """Return once `count` pictures have their variants recorded; fail with the log if not."""
    engine = make_engine(database_url)
    deadline = time.monotonic() + VARIANTS_TIMEOUT
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                done = connection.execute(select(Media.variants)).scalars().all()
            if len(done) == count and all(value not in ("", "[]") for value in done):
                return
            time.sleep(0.5)
    finally:
        engine.dispose()
    pytest.fail(f"the worker made no variants in time; its log:\n{worker_log.read_text()}")


def pictures_loaded(page: Page) -> list[dict[str, Any]]:
    """Scroll every picture of the post into view; give its currentSrc and the bytes it took."""
    images = page.locator(".post-body img")
    expect(images).to_have_count(PHOTOS)
    for index in range(PHOTOS):
        images.nth(index).scroll_into_view_if_needed()
        expect(images.nth(index)).to_have_js_property("complete", True)
    return page.evaluate(
        """() => Array.from(document.querySelectorAll(".post-body img"), img => {
            const entry = performance.getEntriesByName(img.currentSrc)[0];
            return {
                src: img.currentSrc,
                bytes: entry ? entry.transferSize : -1,
                decoded: entry ? entry.decodedBodySize : -1,
            };
        })"""
    )


def test_a_phone_picks_the_960_px_copies_of_five_4000_px_photos(
    browser: Browser, site_with_worker: ServerHandle, tmp_path: Path
) -> None:
    browse = Browsing(browser, site_with_worker)
    try:
        author = browse.context("author")
        page = author.new_page()
        create_admin(page, "")
        page.goto("/media")
        files = [photo(tmp_path / f"photo-{n}.jpg", n) for n in range(PHOTOS)]
        page.get_by_label("Pictures", exact=True).set_input_files(files)
        page.locator("#media-upload [name=alt]").fill("A test card")
        page.get_by_role("button", name="Upload", exact=True).click()
        page.wait_for_url(re.compile(r"/media$"))
        expect(page.locator(".media-item")).to_have_count(PHOTOS)
        markdown = [page.locator(".media-markdown").nth(n).input_value() for n in range(PHOTOS)]
        wait_for_variants(
            site_with_worker.env["DATABASE_URL"],
            PHOTOS,
            site_with_worker.data_dir / "worker.log",
        )

        page.goto("/posts/new")
        body = "\n\n".join(f"Photo {n}, in words.\n\n{text}" for n, text in enumerate(markdown))
        fill_post(page, title="Five photos", body=body, tags="Photos", status="published")
        save(page)
        page.wait_for_url(re.compile(r"/posts/[a-z0-9-]+$"))
        post = page.url

        phone = browse.context("phone", **PHONE).new_page()
        phone.goto(post)
        loaded = pictures_loaded(phone)
        total = sum(item["bytes"] for item in loaded)
        print(
            f"\nphone 375 px x2: {total / 1024:.0f} KB of pictures for {PHOTOS} photos "
            f"(the issue's target: under 1 MB): "
            + ", ".join(
                f"{item['src'].rsplit('/', 1)[-1]} {item['bytes'] / 1024:.0f} KB" for item in loaded
            )
        )
        for item in loaded:
            assert re.search(r"/960\.(avif|webp|jpg)$", item["src"]), loaded
            assert item["bytes"] > 0, loaded  # fetched from the network, and counted

        desktop = browse.context("desktop", **DESKTOP_2X).new_page()
        desktop.goto(post)
        wide = pictures_loaded(desktop)
        print(
            f"desktop 1280 px x2: {sum(item['bytes'] for item in wide) / 1024:.0f} KB, "
            + ", ".join(item["src"].rsplit("/", 1)[-1] for item in wide)
        )
        for item in wide:
            assert re.search(r"/1600\.(avif|webp|jpg)$", item["src"]), wide
        browse.assert_clean()
    finally:
        browse.close()
