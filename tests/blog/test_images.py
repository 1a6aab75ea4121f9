"""Tests for pyproject/blog/images.py: checking, cleaning and resizing pictures, on bytes alone.

Every picture is made here with Pillow; the helpers are shared with test_media.py.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms

from pyproject.blog import images
from pyproject.blog.images import ImageRefused, clean, make_variants, variant_widths

LIMITS = {"max_bytes": 20_000_000, "max_pixels": 50_000_000}
SECRET = b"SECRET-PLACE-51N"
# The GPS position written into the test photo, as EXIF stores it (rationals).
LATITUDE = (51.0, 28.0, 38.5)


# --- pictures made for the tests ---------------------------------------------------------


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def gps_jpeg(width: int = 300, height: int = 200) -> bytes:
    """Give a JPEG with GPS EXIF, orientation 6 (turn right), XMP and a comment, all secret."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((20, 20, 220), (0, 0, width // 3, height))  # a blue band on the left
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010E] = SECRET.decode()  # ImageDescription
    exif[0x8825] = {1: "N", 2: LATITUDE, 3: "W", 4: (0.0, 0.0, 5.25)}
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + SECRET + b"</x:xmpmeta>"
    return encoded(image, "JPEG", exif=exif.tobytes(), comment=SECRET, xmp=xmp, quality=90)


def cmyk_jpeg() -> bytes:
    return encoded(Image.new("CMYK", (120, 80), (0, 255, 0, 0)), "JPEG")


def png16() -> bytes:
    image = Image.new("I;16", (64, 48), 0)
    image.putpixel((1, 1), 65535)
    image.putpixel((2, 2), 32768)
    return encoded(image, "PNG")


def palette_png() -> bytes:
    image = Image.new("P", (40, 30), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (20, 0, 40, 30))
    return encoded(image, "PNG", transparency=0)


def animated_gif(width: int = 600, height: int = 400, frames: int = 4) -> bytes:
    pictures = [
        Image.new("RGB", (width, height), (60 * i, 90, 200 - 40 * i)) for i in range(frames)
    ]
    return encoded(
        pictures[0],
        "GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=120,
        loop=0,
        comment=SECRET,
    )


def plain_jpeg(width: int = 1200, height: int = 800, colour=(10, 200, 30)) -> bytes:
    return encoded(Image.new("RGB", (width, height), colour), "JPEG")


def truncated_jpeg() -> bytes:
    whole = encoded(Image.effect_noise((400, 300), 80).convert("RGB"), "JPEG")
    return whole[: len(whole) // 2]


def png_declaring(width: int, height: int) -> bytes:
    """Give a small PNG whose header says it is `width` × `height` (a decompression bomb)."""
    data = bytearray(encoded(Image.new("L", (1, 1)), "PNG"))
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"


def polyglot() -> bytes:
    """Give bytes that are a valid JPEG and, read as text, an HTML page with a script."""
    return plain_jpeg(64, 48) + HTML


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- cleaning ----------------------------------------------------------------------------


def test_orientation_is_applied_and_every_kind_of_metadata_is_stripped() -> None:
    cleaned = clean(gps_jpeg(), "photo.jpg", **LIMITS)
    assert (cleaned.width, cleaned.height) == (200, 300)  # turned: width and height swap
    image = opened(cleaned.data)
    assert image.size == (200, 300)
    assert not image.getexif()
    assert SECRET not in cleaned.data
    assert b"Exif" not in cleaned.data and b"xmpmeta" not in cleaned.data
    assert "icc_profile" not in image.info and "comment" not in image.info
    # The blue band was on the left; turned right, it is on top.
    red, _green, blue = image.getpixel((100, 10))
    assert blue > 150 > red


def test_cmyk_becomes_srgb() -> None:
    cleaned = clean(cmyk_jpeg(), "cmyk.jpg", **LIMITS)
    image = opened(cleaned.data)
    assert image.mode == "RGB" and cleaned.ext == "jpg"
    red, green, blue = image.getpixel((10, 10))
    assert red > 200 and green < 60 and blue > 200  # magenta stays magenta


def test_an_icc_profile_is_converted_to_srgb_and_dropped() -> None:
    lab_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encoded(Image.new("RGB", (20, 20), (10, 20, 30)), "JPEG", icc_profile=lab_profile)
    cleaned = clean(data, "icc.jpg", **LIMITS)
    assert "icc_profile" not in opened(cleaned.data).info


def test_16_bit_greys_are_scaled_not_clipped() -> None:
    cleaned = clean(png16(), "deep.png", **LIMITS)
    image = opened(cleaned.data).convert("RGB")
    assert cleaned.ext == "png"
    assert image.getpixel((1, 1))[0] == 255
    assert 120 <= image.getpixel((2, 2))[0] <= 135
    assert image.getpixel((5, 5))[0] == 0


def test_palette_transparency_is_kept_as_alpha() -> None:
    cleaned = clean(palette_png(), "pal.png", **LIMITS)
    image = opened(cleaned.data)
    assert cleaned.ext == "png" and image.mode == "RGBA"
    assert image.getpixel((5, 5))[3] == 0
    assert image.getpixel((30, 5)) == (255, 0, 0, 255)


def test_an_animated_gif_stays_animated_without_its_comment() -> None:
    cleaned = clean(animated_gif(), "anim.gif", **LIMITS)
    image = Image.open(io.BytesIO(cleaned.data))
    assert cleaned.animated and cleaned.ext == "gif"
    assert image.n_frames == 4
    assert SECRET not in cleaned.data


def test_a_polyglot_comes_out_as_only_a_picture() -> None:
    cleaned = clean(polyglot(), "cat.jpg", **LIMITS)
    assert b"<script" not in cleaned.data and b"<html" not in cleaned.data
    assert opened(cleaned.data).format == "JPEG"


@pytest.mark.parametrize(
    ("fmt", "ext"), [("WEBP", "jpg"), ("AVIF", "jpg"), ("PNG", "png"), ("GIF", "png")]
)
def test_every_accepted_format_is_stored_in_a_format_every_browser_shows(fmt, ext) -> None:
    data = encoded(Image.new("RGB", (50, 40), (1, 2, 3)), fmt)
    cleaned = clean(data, f"x.{fmt.lower()}", **LIMITS)
    assert cleaned.ext == ext and cleaned.source_format == fmt


# --- refusing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 422, "empty"),
        (truncated_jpeg(), 422, "damaged or cut short"),
        (png_declaring(30_000, 30_000), 422, "at most 50 megapixels"),
        (SVG, 422, "can carry script"),
        (b"\xef\xbb\xbf  <svg onload=alert(1)>", 422, "can carry script"),
        (b"GIF89a-not-really", 422, "not a picture in a format we accept"),
        (b"just some text", 422, "not a picture in a format we accept"),
        (encoded(Image.new("RGB", (5, 5)), "BMP"), 422, "not a picture in a format we accept"),
        (encoded(Image.new("RGB", (5, 5)), "TIFF"), 422, "not a picture in a format we accept"),
    ],
    ids=["empty", "truncated", "bomb", "svg", "svg-bom", "broken-gif", "text", "bmp", "tiff"],
)
def test_bad_files_are_refused_naming_the_file(data: bytes, status: int, words: str) -> None:
    with pytest.raises(ImageRefused) as refused:
        clean(data, "holiday.jpg", **LIMITS)
    assert refused.value.status == status
    assert "holiday.jpg" in refused.value.message and words in refused.value.message


def test_too_many_bytes_is_413() -> None:
    with pytest.raises(ImageRefused) as refused:
        clean(plain_jpeg(), "big.jpg", max_bytes=1000, max_pixels=50_000_000)
    assert refused.value.status == 413 and "big.jpg" in refused.value.message


def test_the_pixel_limit_is_a_setting_checked_before_decoding() -> None:
    with pytest.raises(ImageRefused) as refused:
        clean(plain_jpeg(1200, 800), "wide.jpg", max_bytes=20_000_000, max_pixels=100_000)
    assert refused.value.status == 422
    assert "wide.jpg is too large a picture" in refused.value.message
    assert "0.1 megapixels" in refused.value.message


def test_pillows_own_bomb_guard_is_set_to_the_limit() -> None:
    clean(plain_jpeg(40, 30), "small.jpg", max_bytes=20_000_000, max_pixels=1_234_567)
    assert images.Image.MAX_IMAGE_PIXELS == 1_234_567
    clean(plain_jpeg(40, 30), "small.jpg", **LIMITS)
    assert images.Image.MAX_IMAGE_PIXELS == 50_000_000


# --- variants ----------------------------------------------------------------------------


def test_widths_are_never_upscaled() -> None:
    assert variant_widths(3000) == [480, 960, 1600, 2400]
    assert variant_widths(1200) == [480, 960, 1200]
    assert variant_widths(300) == [300]
    assert variant_widths(2400) == [480, 960, 1600, 2400]


def test_variants_are_avif_webp_and_the_fallback_at_each_width() -> None:
    cleaned = clean(plain_jpeg(1200, 800), "field.jpg", **LIMITS)
    made = make_variants(cleaned.data)
    assert {(v.width, v.ext) for v in made} == {
        (w, ext) for w in (480, 960, 1200) for ext in ("avif", "webp", "jpg")
    }
    for variant in made:
        image = opened(variant.data)
        assert image.size == (variant.width, variant.height)
        assert image.format == {"avif": "AVIF", "webp": "WEBP", "jpg": "JPEG"}[variant.ext]
        assert not image.getexif()


def test_variants_of_a_transparent_picture_keep_alpha() -> None:
    big = Image.new("RGBA", (1000, 500), (0, 0, 0, 0))
    cleaned = clean(encoded(big, "PNG"), "clear.png", **LIMITS)
    for variant in make_variants(cleaned.data):
        assert opened(variant.data).mode in ("RGBA", "LA", "P", "PA")


def test_an_animation_gets_animated_webp_and_gif_variants_only() -> None:
    cleaned = clean(animated_gif(), "anim.gif", **LIMITS)
    made = make_variants(cleaned.data)
    assert {(v.width, v.ext) for v in made} == {
        (480, "webp"),
        (480, "gif"),
        (600, "webp"),
        (600, "gif"),
    }
    for variant in made:
        assert Image.open(io.BytesIO(variant.data)).n_frames == 4
