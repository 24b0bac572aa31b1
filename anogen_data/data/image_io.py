"""Image and mask IO with one convention for the whole package.

Images: numpy uint8 (H, W, 3) RGB. Grayscale files become 3 equal channels; 16-bit files are scaled
to 8 bits. Masks: numpy uint8 (H, W) with values {0, 255}, 255 = defect; anti-aliased masks are
thresholded at > 127. A mask's alpha channel is never read as defect: an RGBA (or grey + alpha) mask
uses its colour channels only, so an opaque alpha does not turn the whole image into a defect.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from anogen_data.errors import AnogenError
from anogen_data.schemas import MAX_PIXELS, MAX_SIDE

warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # header_size refuses them itself

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header only (Pillow reads no pixels), or None when Pillow cannot tell.

    Raises:
        AnogenError: the header declares more than ``MAX_SIDE`` pixels a side or ``MAX_PIXELS`` in all, so a
            40000x40000 PNG is refused before a 4.8 GB decode.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise AnogenError(f"{path} is too large to decode ({exc}); images may have at most {MAX_PIXELS} pixels") from None
    except (OSError, ValueError, SyntaxError):
        return None  # not an image Pillow knows: OpenCV decides below
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise AnogenError(f"{path} is {width}x{height} pixels (header); images may have at most {MAX_SIDE} pixels "
                          f"a side and {MAX_PIXELS} in all")
    return width, height


def _imread(path: Path, flags: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise AnogenError(f"{path} does not exist")
    header_size(path)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise AnogenError(f"{path} is not a readable image (corrupt or unsupported format)")
    return image


def read_image(path: Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3)."""
    image = _imread(path, cv2.IMREAD_UNCHANGED)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    """Read a mask file as uint8 (H, W) in {0, 255}; any colour channel > 127 counts as defect (alpha never does)."""
    mask = _imread(path, cv2.IMREAD_UNCHANGED)
    if mask.dtype == np.uint16:
        mask = (mask >> 8).astype(np.uint8)
    if mask.ndim == 3:
        colour = mask[:, :, :3] if mask.shape[2] == 4 else mask[:, :, :1] if mask.shape[2] == 2 else mask
        mask = colour.max(axis=2)
    return np.where(mask > 127, 255, 0).astype(np.uint8)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, decoding it fully so that corrupt files are caught."""
    image = _imread(path, cv2.IMREAD_UNCHANGED)
    return int(image.shape[1]), int(image.shape[0])


def encode_png(array: np.ndarray, compression: int = 3) -> bytes:
    """PNG bytes of an RGB (H, W, 3) or single-channel (H, W) uint8 array."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise AnogenError("PNG encoding failed")
    return buf.tobytes()


def write_png(path: Path, array: np.ndarray, compression: int = 3) -> None:
    """Write an RGB (H, W, 3) or single-channel (H, W) uint8 array as PNG."""
    Path(path).write_bytes(encode_png(array, compression))
