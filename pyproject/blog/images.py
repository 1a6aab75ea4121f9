"""Image work for uploads: check, clean and resize pictures, as pure functions of bytes.

The format is decided from the bytes by Pillow, never from a file name or a Content-Type.
Cleaning decodes the picture within the limits, turns it upright by its EXIF orientation,
converts it to sRGB (keeping transparency) and encodes it again from bare pixels, so no
metadata survives: no EXIF (GPS included), XMP, IPTC, comments or ICC profile, and no
bytes of the upload itself (a file that is also HTML comes out as only a picture).

The cleaned picture is stored in a format every browser shows: JPEG for photographs, PNG
for pictures with transparency (and PNG or still GIF uploads), GIF for animations. The
variants job then makes AVIF, WebP and that fallback format at the standard widths.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, ImageSequence, UnidentifiedImageError

# The formats an upload may be in (Pillow's names); nothing else is even tried.
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF")
ACCEPTED_NAMES = "JPEG, PNG, GIF, WebP or AVIF"
WIDTHS = (480, 960, 1600, 2400)
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
}
# Frames times pixels an animation may have, as a multiple of the still-image pixel limit.
ANIMATION_PIXEL_FACTOR = 4
MAX_FRAMES = 1000
JPEG_QUALITY = 86
WEBP_QUALITY = 80
AVIF_QUALITY = 60
# Pillow's decompression-bomb guard, as a second line behind the header check (it warns
# at this many pixels and refuses at twice as many; the warning is made an error below).
Image.MAX_IMAGE_PIXELS = 50_000_000

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class ImageRefused(ValueError):
    """An upload that is not stored: `status` 413 (too big) or 422, and why, naming the file."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Cleaned:
    """A cleaned picture: its bytes with no metadata, and what they are."""

    data: bytes
    ext: str  # jpg, png or gif: the fallback format
    width: int
    height: int
    animated: bool
    source_format: str  # what the upload was, in Pillow's name (JPEG, PNG, ...)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.ext]


@dataclass(frozen=True, slots=True)
class Variant:
    """One resized copy of a cleaned picture."""

    width: int
    height: int
    ext: str  # avif, webp, or the fallback's jpg, png or gif
    data: bytes

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.ext]


def looks_like_svg(data: bytes) -> bool:
    """Give whether the bytes start like an SVG (or any XML) document."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in head


def clean(data: bytes, label: str, *, max_bytes: int, max_pixels: int) -> Cleaned:
    """Give the upload cleaned (upright, sRGB, no metadata), or raise ImageRefused.

    `label` names the file in messages. Refused: empty, over `max_bytes` (413), SVG, any
    format but JPEG, PNG, GIF, WebP and AVIF, over `max_pixels` (from the header, before
    decoding), and truncated or corrupt pictures.
    """
    if not data:
        raise ImageRefused(422, f"{label} is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageRefused(
            413,
            f"{label} is {megabytes(len(data))}; a picture may be at most {megabytes(max_bytes)}.",
        )
    if looks_like_svg(data):
        raise ImageRefused(
            422,
            f"{label} is an SVG drawing. SVG is not accepted: it can carry script. "
            "Upload it as PNG instead.",
        )
    # Pillow's own guard at the same limit (it warns past it; the warning is made an error).
    Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except UnidentifiedImageError:
            raise ImageRefused(
                422, f"{label} is not a picture in a format we accept ({ACCEPTED_NAMES})."
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(label, max_pixels) from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise _damaged(label) from None
        with image:
            width, height = image.size
            if width < 1 or height < 1 or width * height > max_pixels:
                raise _too_many_pixels(label, max_pixels, width, height)
            try:
                return _clean_open(image, label, max_pixels)
            except ImageRefused:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise _too_many_pixels(label, max_pixels) from None
            except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError):
                raise _damaged(label) from None


def megabytes(size: int) -> str:
    """Give a byte count as megabytes for people ("20 MB")."""
    return f"{size / 1_000_000:.1f}".removesuffix(".0") + " MB"


def _too_many_pixels(label: str, max_pixels: int, width: int = 0, height: int = 0) -> ImageRefused:
    size = f" ({width:,} × {height:,} pixels)" if width and height else ""
    return ImageRefused(
        422,
        f"{label} is too large a picture{size}; a picture may have at most "
        f"{max_pixels / 1_000_000:g} megapixels.",
    )


def _damaged(label: str) -> ImageRefused:
    return ImageRefused(422, f"{label} is damaged or cut short: it could not be read whole.")


def _clean_open(image: Image.Image, label: str, max_pixels: int) -> Cleaned:
    source = image.format or ""
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        if frames > MAX_FRAMES or frames * image.width * image.height > (
            ANIMATION_PIXEL_FACTOR * max_pixels
        ):
            raise ImageRefused(422, f"{label} is too long an animation ({frames:,} frames).")
        return _clean_animation(image, source)
    image.load()
    upright = ImageOps.exif_transpose(image) or image
    pixels = to_srgb(upright)
    alpha = pixels.mode == "RGBA"
    ext = "png" if alpha or source in ("PNG", "GIF") else "jpg"
    return Cleaned(encode(pixels, ext), ext, pixels.width, pixels.height, False, source)


def to_srgb(image: Image.Image) -> Image.Image:
    """Give the picture's pixels as a new RGB or RGBA image in sRGB, with no metadata.

    An embedded ICC profile is applied (CMYK, Adobe RGB, Display P3 ... become sRGB);
    16-bit greys are scaled, not clipped; palette transparency becomes an alpha channel.
    """
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        "transparency" in image.info and image.mode in ("P", "L", "RGB")
    )
    target = "RGBA" if has_alpha else "RGB"
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    elif image.mode == "F":
        image = image.convert("L")
    profile = image.info.get("icc_profile")
    converted = None
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            work = image if image.mode in ("RGB", "RGBA", "CMYK", "L") else image.convert(target)
            mode = "RGBA" if work.mode == "RGBA" else "RGB"
            converted = ImageCms.profileToProfile(work, source, _SRGB, outputMode=mode)
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # a broken profile: the plain conversion below
    if converted is None:
        converted = image.convert(target)
    elif converted.mode != target:
        converted = converted.convert(target)
    # Fresh pixels: nothing of the upload's info (EXIF, XMP, comments, profile) comes along.
    return Image.frombytes(converted.mode, converted.size, converted.tobytes())


def encode(image: Image.Image, ext: str) -> bytes:
    """Give a still picture encoded as `ext` (jpg, png, webp, avif), with no metadata."""
    out = io.BytesIO()
    if ext == "jpg":
        image.convert("RGB").save(
            out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True
        )
    elif ext == "png":
        image.save(out, "PNG", optimize=True)
    elif ext == "webp":
        image.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    elif ext == "avif":
        image.save(out, "AVIF", quality=AVIF_QUALITY, speed=8)
    else:
        raise ValueError(f"not a still format: {ext}")
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class _Frames:
    frames: list[Image.Image]
    durations: list[int]
    loop: int


def _read_frames(image: Image.Image) -> _Frames:
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        durations.append(int(frame.info.get("duration", image.info.get("duration", 100)) or 100))
        frames.append(to_srgb(frame.convert("RGBA")))
    return _Frames(frames, durations, int(image.info.get("loop", 0) or 0))


def _clean_animation(image: Image.Image, source: str) -> Cleaned:
    animation = _read_frames(image)
    first = animation.frames[0]
    data = _encode_animation(animation, "gif")
    return Cleaned(data, "gif", first.width, first.height, True, source)


def _encode_animation(animation: _Frames, ext: str) -> bytes:
    out = io.BytesIO()
    first, rest = animation.frames[0], animation.frames[1:]
    if ext == "gif":
        first.save(
            out,
            "GIF",
            save_all=True,
            append_images=rest,
            duration=animation.durations,
            loop=animation.loop,
            disposal=2,
            optimize=False,
        )
    elif ext == "webp":
        first.save(
            out,
            "WEBP",
            save_all=True,
            append_images=rest,
            duration=animation.durations,
            loop=animation.loop,
            quality=WEBP_QUALITY,
        )
    else:
        raise ValueError(f"not an animation format: {ext}")
    return out.getvalue()


def variant_widths(width: int) -> list[int]:
    """Give the widths to make for a picture `width` wide: never wider than it is."""
    widths = [w for w in WIDTHS if w < width]
    if width <= WIDTHS[-1]:
        widths.append(width)
    return widths


def make_variants(cleaned: bytes) -> list[Variant]:
    """Give the resized copies of a cleaned picture: AVIF, WebP and its own format per width.

    An animation gets animated WebP and GIF copies (no AVIF). Nothing is ever made
    wider than the picture.
    """
    with Image.open(io.BytesIO(cleaned), formats=("JPEG", "PNG", "GIF")) as image:
        own = {"JPEG": "jpg", "PNG": "png", "GIF": "gif"}[image.format or ""]
        if getattr(image, "n_frames", 1) > 1:
            return _animation_variants(_read_frames(image))
        image.load()
        pixels = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
    variants = []
    for width in variant_widths(pixels.width):
        resized = _resize(pixels, width)
        for ext in ("avif", "webp", own):
            variants.append(Variant(width, resized.height, ext, encode(resized, ext)))
    return variants


def _resize(image: Image.Image, width: int) -> Image.Image:
    if width >= image.width:
        return image
    height = max(1, round(image.height * width / image.width))
    return image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def _animation_variants(animation: _Frames) -> list[Variant]:
    variants = []
    for width in variant_widths(animation.frames[0].width):
        frames = [_resize(frame, width) for frame in animation.frames]
        resized = _Frames(frames, animation.durations, animation.loop)
        for ext in ("webp", "gif"):
            data = _encode_animation(resized, ext)
            variants.append(Variant(width, frames[0].height, ext, data))
    return variants
