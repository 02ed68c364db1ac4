"""Hand-made texture, colour and quality features of a face crop for the passive attack check.

Pure NumPy/OpenCV, no learning here: `PassiveModel` (passive_model.py) applies a logistic
regression to `features(crop)`. A crop is the `watchpost.images.cut_square` of a face at camera
resolution, any size; it is resized here to SIZE x SIZE so the features do not see the camera's
resolution (several training sources differ between real and attack by crop size alone).

Groups (each a fixed-length block, in this order in `features`):

* spectrum (11): log power of the grey crop's 2-D spectrum (Hann window) in 11 radial bands,
  relative to the total: prints and screens lose high frequencies or add moire peaks.
* colour (24): mean, standard deviation, skewness and kurtosis of Y, Cr, Cb (YCrCb) and H, S, V
  (HSV; hue turned by 90 degrees so skin tones do not wrap around 0): gamut and cast of a
  reproduction.
* quality (5): blur (log variance of the Laplacian), specular highlights (bright unsaturated
  pixels), clipped whites, clipped blacks, contrast (grey standard deviation over its mean).
* lbp (60): rotation-invariant uniform LBP(8, 1) histograms (10 bins) of the 6 channels above on a
  LBP_SIZE crop: the micro-texture of paper and screen pixels.
* lbp_scales (120): the same histograms on the SIZE crop and on a 32-px copy (finer and coarser
  texture).
* context (27): on the LBP_SIZE copy, the crop's border ring (RING px wide, mostly background
  beside the face) against its centre (the middle half, the face): riu2 LBP(8, 1) histograms of
  Y and S (20), log variance of the Laplacian of Y (1), mean and standard deviation of Y, Cr,
  Cb (6), each ring minus centre. A camera's blur, noise and cast touch both alike; a screen
  or a print puts its own texture on both, where a live face stands in front of a different
  scene.
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 128
LBP_SIZE = 64
BANDS = 11
MIN_SIDE = 16  # a face crop smaller than this has no texture left to judge
GROUPS = {
    "spectrum": BANDS,
    "colour": 24,
    "quality": 5,
    "lbp": 60,
    "lbp_scales": 120,
    "context": 27,
}
RING = LBP_SIZE // 6  # width of the border ring of the context group, px of the LBP_SIZE copy


def check_crop(crop: np.ndarray) -> None:
    """Raise ValueError unless `crop` is an RGB uint8 image of at least MIN_SIDE on each side."""
    if not isinstance(crop, np.ndarray):
        raise ValueError(f"a crop must be a NumPy array, not {type(crop).__name__}")
    if crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"a crop must be RGB (height, width, 3); got shape {crop.shape}")
    if crop.dtype != np.uint8:
        raise ValueError(f"a crop must be uint8; got {crop.dtype}")
    if min(crop.shape[:2]) < MIN_SIDE:
        raise ValueError(
            f"a crop of {crop.shape[1]}x{crop.shape[0]} is too small; "
            f"at least {MIN_SIDE}x{MIN_SIDE} is needed"
        )


def grey_world(rgb: np.ndarray) -> np.ndarray:
    """`rgb` with each channel scaled so the three channel means are equal (cast removed)."""
    pixels = rgb.astype(np.float32)
    means = pixels.reshape(-1, 3).mean(axis=0) + 1e-3
    return np.clip(pixels * (means.mean() / means), 0, 255).astype(np.uint8)


def resize(crop: np.ndarray, size: int = SIZE) -> np.ndarray:
    h, w = crop.shape[:2]
    method = cv2.INTER_AREA if min(h, w) >= size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=method)


def _radial_bins(size: int, bands: int) -> np.ndarray:
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.sqrt(fx**2 + fy**2) / 0.5  # 1.0 at Nyquist
    bins = np.minimum((radius * bands).astype(int), bands)  # corners beyond Nyquist: dropped
    bins[0, 0] = bands  # and the mean
    return bins


_BINS = _radial_bins(SIZE, BANDS)
_WINDOW = np.outer(np.hanning(SIZE), np.hanning(SIZE)).astype(np.float32)


def spectrum(grey: np.ndarray) -> np.ndarray:
    g = grey.astype(np.float32)
    power = np.abs(np.fft.rfft2((g - g.mean()) * _WINDOW)) ** 2
    sums = np.bincount(_BINS.ravel(), weights=power.ravel(), minlength=BANDS + 1)[:BANDS]
    counts = np.bincount(_BINS.ravel(), minlength=BANDS + 1)[:BANDS]
    band = np.log(sums / counts + 1e-6)
    return band - np.log(sums.sum() / counts.sum() + 1e-6)


def _moments(channels: np.ndarray) -> np.ndarray:
    """(mean, std, skew, kurtosis) of each column of (n, k) values in 0..1."""
    mean = channels.mean(axis=0)
    centred = channels - mean
    square = centred * centred
    var = square.mean(axis=0) + 1e-8
    std = np.sqrt(var)
    skew = (square * centred).mean(axis=0) / std**3
    kurt = (square * square).mean(axis=0) / var**2 - 3.0
    return np.stack([mean, std, np.clip(skew, -10, 10), np.clip(kurt, -10, 50)], axis=1).ravel()


def _six_channels(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 6) uint8: Y, Cr, Cb, H (turned by 90 of 180), S, V."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.uint16) + 90) % 180
    return np.concatenate([ycrcb, hsv], axis=2)


_SCALE = 1.0 / np.array([255, 255, 255, 179, 255, 255], dtype=np.float32)


def colour(six_small: np.ndarray) -> np.ndarray:
    """Moments of the 6 channels, on the small copy (the statistics barely change, 4x faster)."""
    return _moments(six_small.reshape(-1, 6).astype(np.float32) * _SCALE)


def quality(rgb: np.ndarray, grey: np.ndarray, six: np.ndarray) -> np.ndarray:
    g = grey.astype(np.float32)
    laplacian = cv2.Laplacian(g, cv2.CV_32F)
    specular = np.mean((six[..., 5] > 240) & (six[..., 4] < 40))
    white = np.mean(rgb.max(axis=2) >= 250)
    black = np.mean(rgb.min(axis=2) <= 5)
    contrast = g.std() / (g.mean() + 1.0)
    return np.array([np.log(laplacian.var() + 1.0), specular, white, black, contrast])


# Rotation-invariant uniform codes: the number of set bits for patterns with at most two 0/1
# transitions around the circle (0..8), and 9 for every other pattern.
_RIU2 = np.array(
    [
        bin(code).count("1")
        if sum(((code >> i) & 1) != ((code >> ((i + 1) % 8)) & 1) for i in range(8)) <= 2
        else 9
        for code in range(256)
    ],
    dtype=np.uint8,
)
_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _riu2_codes(channels: np.ndarray) -> np.ndarray:
    """riu2 LBP(8, 1) labels (0..9) of every inner pixel of an (h, w, c) image: (h-2, w-2, c)."""
    h, w = channels.shape[:2]
    centre = channels[1:-1, 1:-1]
    codes = np.zeros(centre.shape, dtype=np.uint8)
    for bit, (dy, dx) in enumerate(_OFFSETS):
        neighbour = channels[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
        codes |= (neighbour >= centre).astype(np.uint8) << bit
    return _RIU2[codes]


def lbp(six_small: np.ndarray) -> np.ndarray:
    """10-bin riu2 LBP(8, 1) histograms of each of the 6 channels of a small (n, n, 6) image."""
    codes = _riu2_codes(six_small)
    labels = codes + 10 * np.arange(six_small.shape[2], dtype=np.uint8)
    hist = np.bincount(labels.ravel(), minlength=60).astype(np.float32)
    return hist / codes[..., 0].size


def _ring_and_centre(size: int) -> tuple[np.ndarray, np.ndarray]:
    inner = np.zeros((size, size), dtype=bool)
    quarter = size // 4
    inner[quarter : size - quarter, quarter : size - quarter] = True
    ring = np.ones((size, size), dtype=bool)
    ring[RING : size - RING, RING : size - RING] = False
    return ring, inner


_RING, _CENTRE = _ring_and_centre(LBP_SIZE)


def context(six_small: np.ndarray) -> np.ndarray:
    """The border ring minus the centre (see the module docstring) of the LBP_SIZE copy."""
    ring, centre = _RING[1:-1, 1:-1], _CENTRE[1:-1, 1:-1]
    codes = _riu2_codes(np.ascontiguousarray(six_small[..., [0, 4]]))
    parts = []
    for channel in range(2):
        labels = codes[..., channel]
        hist_ring = np.bincount(labels[ring], minlength=10) / ring.sum()
        hist_centre = np.bincount(labels[centre], minlength=10) / centre.sum()
        parts.append(hist_ring - hist_centre)
    laplacian = cv2.Laplacian(six_small[..., 0].astype(np.float32), cv2.CV_32F)
    parts.append([np.log(laplacian[_RING].var() + 1.0) - np.log(laplacian[_CENTRE].var() + 1.0)])
    ycc = six_small[..., :3].astype(np.float32) / 255.0
    outer, inner = ycc[_RING], ycc[_CENTRE]
    parts.append(outer.mean(axis=0) - inner.mean(axis=0))
    parts.append(outer.std(axis=0) - inner.std(axis=0))
    return np.concatenate(parts)


def features(
    crop: np.ndarray, *, normalise: bool = False, groups: tuple[str, ...] | list[str] | None = None
) -> np.ndarray:
    """The feature vector of one RGB uint8 face crop of any size: the named `groups` (all of
    GROUPS if None) in GROUPS order, so it equals `features(crop)[group_mask(groups)]`.

    `normalise` applies `grey_world` first. Raises ValueError for anything but an RGB uint8
    crop of at least MIN_SIDE pixels a side."""
    check_crop(crop)
    wanted = set(GROUPS if groups is None else groups)
    unknown = wanted - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown feature groups {sorted(unknown)}; known: {list(GROUPS)}")
    rgb = resize(crop)
    if normalise:
        rgb = grey_world(rgb)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    six = _six_channels(rgb)
    six_small = cv2.resize(six, (LBP_SIZE, LBP_SIZE), interpolation=cv2.INTER_AREA)
    parts = []
    if "spectrum" in wanted:
        parts.append(spectrum(grey))
    if "colour" in wanted:
        parts.append(colour(six_small))
    if "quality" in wanted:
        parts.append(quality(rgb, grey, six))
    if "lbp" in wanted:
        parts.append(lbp(six_small))
    if "lbp_scales" in wanted:
        six_tiny = cv2.resize(six_small, (32, 32), interpolation=cv2.INTER_AREA)
        parts += [lbp(six), lbp(six_tiny)]
    if "context" in wanted:
        parts.append(context(six_small))
    return np.concatenate(parts).astype(np.float64)


def group_mask(groups: list[str] | tuple[str, ...]) -> np.ndarray:
    """Boolean mask over `features`' output selecting the named groups."""
    mask = []
    for name, length in GROUPS.items():
        mask += [name in groups] * length
    return np.array(mask)
