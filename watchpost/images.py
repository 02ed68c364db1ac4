"""Image helpers shared by every service (Pillow and NumPy only: no OpenCV, no dlib).

Uploaded images are untrusted: `decode_upload` checks size, format and pixel count before it
decodes anything, and raises `ImageError` with a reason a user can act on.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from watchpost.geometry import CROP_CONTEXT as CROP_CONTEXT  # re-exported: callers cut with it
from watchpost.geometry import BoxTuple, grown
from watchpost.geometry import face_square as face_square  # re-exported

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
MAX_PIXELS = 40_000_000  # a 40-megapixel photo is the largest a camera or phone sends us


class ImageError(ValueError):
    """An image that cannot be used, with the reason."""


def decode_upload(data: bytes, *, max_bytes: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an uploaded JPEG/PNG/WebP into an RGB uint8 array, upright per its EXIF tag."""
    if not data:
        raise ImageError("the file is empty")
    if len(data) > max_bytes:
        raise ImageError(f"the file is {len(data)} bytes; the limit is {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ALLOWED_FORMATS:
                raise ImageError(f"{image.format} images are not accepted; send JPEG, PNG or WebP")
            if getattr(image, "n_frames", 1) > 1:
                raise ImageError("animated images are not accepted; send a single still photo")
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels"
                )
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("the image declares an absurd pixel count (decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageError("the file is not an image we can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"the image is corrupt or truncated ({exc})") from None
    upright = ImageOps.exif_transpose(image)
    return np.asarray(upright.convert("RGB"))


def decode_jpeg(data: bytes, *, grey: bool = False) -> np.ndarray:
    """Decode a JPEG produced by our own services (trusted size) into RGB, or one grey channel."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L" if grey else "RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"undecodable frame: {exc}") from None


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """A trusted image file (the data set, enrolment photos) as RGB uint8."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """Luma of an RGB image (ITU-R 601 weights), ten times faster than a float mean."""
    return np.asarray(Image.fromarray(rgb).convert("L"))


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def crop(rgb: np.ndarray, box: BoxTuple, margin: float = 0.25) -> np.ndarray:
    """The box grown by `margin` of its size on every side, clipped to the image."""
    h, w = rgb.shape[:2]
    left, top, right, bottom = grown(box, margin, w, h)
    return rgb[top:bottom, left:right]


def cut_square(
    rgb: np.ndarray,
    box: BoxTuple,
    *,
    size: int | None = None,
    context: float = CROP_CONTEXT,
) -> np.ndarray:
    """The `face_square` of `box` cut out of `rgb`, resized to `size` x `size` if given (area
    averaging when shrinking, bicubic when enlarging)."""
    h, w = rgb.shape[:2]
    left, top, right, bottom = face_square(box, w, h, context)
    region = rgb[top:bottom, left:right]
    if size is None or region.size == 0:
        return region
    shrinking = region.shape[0] >= size and region.shape[1] >= size
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(region).resize((size, size), method))


def draw_box(jpeg: bytes, box: BoxTuple, label: str, colour: str) -> bytes:
    """The JPEG with a labelled rectangle around `box` (for alert snapshots)."""
    with Image.open(io.BytesIO(jpeg)) as opened:
        image = opened.convert("RGB")
    draw = ImageDraw.Draw(image)
    width = max(2, image.width // 320)
    draw.rectangle(box, outline=colour, width=width)
    text_top = max(0, box[1] - 14)
    draw.rectangle((box[0], text_top, box[0] + 7 * len(label) + 6, text_top + 14), fill=colour)
    draw.text((box[0] + 3, text_top + 1), label, fill="white")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def sharpness(rgb: np.ndarray, box: BoxTuple) -> float:
    """Variance of the Laplacian of the face, normalised to 150 px: low means blurred.

    Measured on the enrolment photos in the shared data: sharp faces score 90-1700, the same
    faces under a Gaussian blur of 1/40 of the face width score 2-5.
    """
    left, top, right, bottom = box
    grey = Image.fromarray(rgb[top:bottom, left:right]).convert("L").resize((150, 150))
    g = np.asarray(grey, dtype=np.float32)
    laplacian = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    return float(laplacian.var())


def crop_jpeg(jpeg: bytes, box: BoxTuple, margin: float = 0.5) -> bytes:
    """A JPEG of the box (grown by `margin`) cut out of another JPEG."""
    return encode_jpeg(crop(decode_jpeg(jpeg), box, margin), quality=92)
