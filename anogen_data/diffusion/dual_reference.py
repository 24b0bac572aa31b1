"""BCM reference images of DualAnoDiff: what the background compensation module may look at.

Paper: Jin et al., "DualAnoDiff: Dual-Interrelated Diffusion Model for Few-Shot Anomaly Image
Generation", CVPR 2025 (arXiv:2408.13509); released training code: zhiqing0205/DualAnoDiff,
``bcm-dual-interrelated_diff``.

- **Training** (:func:`defect_free_background`): the release pairs each anomalous learn image with the
  SAME image, its foreground removed (a U-2-Net saliency mask, pixels pasted on black), augmented with
  the same flip/crop. We remove the foreground (our own estimate, no saliency model) AND the dilated
  defect mask, and fill both by OpenCV inpainting. The defect removal matters on texture categories,
  where the foreground is the whole image: the release's reference then still shows the defect, so the
  module can learn to copy it from the reference, while at generation the reference is a clean good
  image. Ours holds no defect pixel in either case.
- **Generation** (:func:`background_only`): a good image with its foreground inpainted away (textures:
  the image itself).
- **Unconditional rows** (:func:`zero_image`): the release encodes an all-zero tensor in the VAE's
  [-1, 1] input space (mid-grey) as the reference of the classifier-free-guidance rows, so guidance
  pushes away from "no background" and amplifies BCM.

All images uint8 RGB (H, W, 3); masks uint8 (H, W) {0, 255}, 255 = defect / object.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

TEXTURE_FRACTION = 0.9  # a foreground covering more than this share of the image means "texture category"


def to_tensor(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """uint8 (H, W, C) images of any sizes -> float (N, C, size, size) in [-1, 1] (area-resized each)."""
    out = []
    for image in images:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        out.append(F.interpolate(x, size=(size, size), mode="area") if x.shape[-2:] != (size, size) else x)
    return torch.cat(out) / 127.5 - 1.0


def _inpaint(image: np.ndarray, remove: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.inpaint(image, remove.astype(np.uint8), 5, cv2.INPAINT_TELEA)


def background_only(image: np.ndarray, foreground: np.ndarray, max_fraction: float = TEXTURE_FRACTION) -> np.ndarray:
    """The good image with its foreground removed (OpenCV Telea inpainting): uint8 (H, W, 3).

    Args:
        image: uint8 RGB (H, W, 3); foreground: uint8 (H, W), 255 = object.
        max_fraction: when the foreground covers more than this (textures), the image IS the
            background and is returned unchanged.
    """
    if (foreground > 0).mean() > max_fraction or not foreground.any():
        return image.copy()
    return _inpaint(image, foreground > 0)


def defect_free_background(image: np.ndarray, mask: np.ndarray, foreground: np.ndarray, *, dilate_px: int = 5,
                           max_fraction: float = TEXTURE_FRACTION) -> np.ndarray:
    """A learn shot's BCM training reference: the shot with its foreground and its defect inpainted away.

    Args:
        image: the anomalous learn shot, uint8 (H, W, 3); mask: its defect mask, uint8 (H, W), 255 = defect.
        foreground: the shot's foreground estimate, uint8 (H, W), 255 = object.
        dilate_px: the defect mask is dilated by this many pixels first (its soft border is defect too).
        max_fraction: foregrounds larger than this share (textures) are not removed; the defect still is.

    Returns:
        uint8 (H, W, 3): every pixel of the (dilated) defect and, for objects, of the foreground is
        inpainted from the remaining background; all other pixels are the shot's own bytes.
    """
    import cv2

    defect = mask > 0
    if dilate_px > 0 and defect.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1))
        defect = cv2.dilate(defect.astype(np.uint8), kernel) > 0
    remove = defect.copy()
    if (foreground > 0).mean() <= max_fraction:
        remove |= foreground > 0
    if not remove.any():
        return image.copy()
    if remove.all():  # nothing left to inpaint from: a flat image of the shot's mean background colour
        return np.broadcast_to(image.reshape(-1, 3).mean(0).round().astype(np.uint8), image.shape).copy()
    return _inpaint(image, remove)


def zero_image(size: int, count: int = 1) -> torch.Tensor:
    """The unconditional rows' BCM reference: zeros (count, 3, size, size) in the VAE's [-1, 1] space."""
    return torch.zeros(count, 3, size, size)
