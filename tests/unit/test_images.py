import io

import numpy as np
import pytest
from PIL import Image

from watchpost.images import ImageError, crop, decode_upload, draw_box, encode_jpeg

LIMIT = 5_000_000


def encoded(fmt: str, size=(64, 48), **save) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(buffer, format=fmt, **save)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_decode_to_rgb(fmt):
    rgb = decode_upload(encoded(fmt), max_bytes=LIMIT)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
        (encoded("JPEG")[:200], "corrupt or truncated"),
        (encoded("GIF"), "GIF images are not accepted"),
        (encoded("BMP"), "BMP images are not accepted"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(data, reason):
    with pytest.raises(ImageError, match=reason):
        decode_upload(data, max_bytes=LIMIT)


def test_oversize_files_are_refused_before_decoding():
    with pytest.raises(ImageError, match="limit is 100"):
        decode_upload(encoded("PNG"), max_bytes=100)


def test_pixel_bomb_is_refused():
    # 9000x9000 of one colour compresses to a few kB but would decode to 243 MB.
    buffer = io.BytesIO()
    Image.new("L", (9000, 9000)).save(buffer, format="PNG")
    with pytest.raises(ImageError, match="pixels"):
        decode_upload(buffer.getvalue(), max_bytes=LIMIT, max_pixels=40_000_000)


def test_animated_images_are_refused():
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="animated"):
        decode_upload(buffer.getvalue(), max_bytes=LIMIT)


def test_exif_rotation_is_applied():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (64, 48)).save(buffer, format="JPEG", exif=exif)
    assert decode_upload(buffer.getvalue(), max_bytes=LIMIT).shape == (64, 48, 3)


def test_crop_is_clipped_to_the_image_and_draw_box_keeps_size():
    rgb = np.zeros((100, 200, 3), np.uint8)
    assert crop(rgb, (0, 0, 40, 40)).shape == (50, 50, 3)
    jpeg = draw_box(encode_jpeg(rgb), (10, 20, 60, 80), "unknown_person", "#d97706")
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.size == (200, 100)
        pixel = image.getpixel((10, 50))
        assert isinstance(pixel, tuple) and pixel[0] > 150  # the box edge is drawn in orange


def test_face_square_is_centred_grown_and_clipped():
    from watchpost.images import cut_square, face_square

    # A 100x120 face grown by a quarter of its larger side on each side: a 180 px square.
    assert face_square((100, 100, 200, 220), 1000, 1000, 0.25) == (60, 70, 240, 250)
    # At the image's corner the square is clipped, never outside the image.
    assert face_square((0, 0, 100, 100), 120, 110, 0.25) == (0, 0, 120, 110)
    rgb = np.zeros((400, 400, 3), np.uint8)
    assert cut_square(rgb, (100, 100, 200, 220)).shape == (180, 180, 3)
    assert cut_square(rgb, (100, 100, 200, 220), size=64).shape == (64, 64, 3)
    assert cut_square(rgb, (150, 150, 160, 160), size=64).shape == (64, 64, 3)  # enlarged


def test_face_sharpness_keeps_to_the_frame():
    import numpy as np

    from services.recognition.stream import face_sharpness

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)
    inside = face_sharpness(rgb, (0, 0, 50, 50))
    assert inside > 0 and face_sharpness(rgb, (-20, -20, 50, 50)) == inside  # clipped
    assert face_sharpness(rgb, (130, 0, 160, 40)) == 0.0  # wholly outside
