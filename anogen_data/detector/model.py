"""The bundled detectors, plain torch, written from the papers.

- ``unet``: DRAEM's discriminative sub-network alone (Zavrtanik et al., ICCV 2021, Fig. 3), a U-Net
  with skip connections that maps an image to a defect map. Trained on 50% good and 50% synthetic
  images with focal loss: the protocol of AnomalyDiffusion (Hu et al., AAAI 2024) and DualAnoDiff
  (Jin et al., CVPR 2025) tables.
- ``draem``: DRAEM's reconstructive auto-encoder (no skips) + discriminative U-Net on
  [image, reconstruction] (6 channels).
- ``destseg``: DeSTSeg (Zhang et al., CVPR 2023): a frozen pretrained teacher (here EfficientNet-Lite0
  instead of ResNet-18), a denoising student encoder-decoder that regresses the teacher's multi-scale
  features of the clean image from the (possibly anomalous) input, and a segmentation head on the
  element-wise product of the L2-normalised teacher and student features.

Every model maps images (B, 3, H, W) float in [0, 1] (H, W divisible by 32) to ``logits``
(B, 1, H, W); ``sigmoid(logits)`` is P(defect) per pixel. ``base_width`` is the CPU knob: the papers
use 64 (discriminative) / 128 (reconstructive); 8-16 trains in minutes on a laptop CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PRIOR = 0.01  # initial P(defect) of every pixel (focal-loss prior init, Lin et al., ICCV 2017)


def prior_head(c_in: int, kernel: int = 3) -> nn.Conv2d:
    """The 1-channel logit layer, bias set so that sigmoid(output) starts at ``PRIOR``: defects are
    rare pixels, and a head starting at 0.5 spends its first hundreds of steps learning only that."""
    head = nn.Conv2d(c_in, 1, kernel, padding=kernel // 2)
    nn.init.constant_(head.bias, math.log(PRIOR / (1 - PRIOR)))
    return head


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """(conv3x3 -> BN -> ReLU) x 2, DRAEM's basic block."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def up_block(c_in: int, c_out: int) -> nn.Sequential:
    """Bilinear x2 upsampling -> conv3x3 -> BN -> ReLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class DiscriminativeUNet(nn.Module):
    """DRAEM's discriminative sub-network: 6-level encoder (b, 2b, 4b, 8b, 8b, 8b), skip-connected decoder.

    Input (B, in_channels, H, W), H and W divisible by 32; output logits (B, 1, H, W).
    """

    def __init__(self, in_channels: int = 3, base_width: int = 64):
        super().__init__()
        widths = [base_width * m for m in (1, 2, 4, 8, 8, 8)]
        self.encoder = nn.ModuleList()
        c_prev = in_channels
        for w in widths:
            self.encoder.append(conv_block(c_prev, w))
            c_prev = w
        self.ups = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for skip_w in reversed(widths[:-1]):
            self.ups.append(up_block(c_prev, skip_w))
            self.decoder.append(conv_block(2 * skip_w, skip_w))
            c_prev = skip_w
        self.head = prior_head(c_prev)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, block, skip in zip(self.ups, self.decoder, reversed(skips[:-1])):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class ReconstructiveNet(nn.Module):
    """DRAEM's reconstructive sub-network: encoder (b, 2b, 4b, 8b, 8b) / decoder without skips.

    Input (B, 3, H, W) in [0, 1] (H, W divisible by 16); output the reconstruction, same shape, in [0, 1].
    """

    def __init__(self, base_width: int = 128):
        super().__init__()
        widths = [base_width * m for m in (1, 2, 4, 8, 8)]
        self.encoder = nn.ModuleList()
        c_prev = 3
        for w in widths:
            self.encoder.append(conv_block(c_prev, w))
            c_prev = w
        self.decoder = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.decoder.append(nn.Sequential(up_block(c_prev, w), conv_block(w, w)))
            c_prev = w
        self.head = nn.Conv2d(c_prev, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
        for block in self.decoder:
            x = block(x)
        return torch.sigmoid(self.head(x))


class UNetDetector(nn.Module):
    """``unet``: the discriminative U-Net on the image alone. forward -> {"logits": (B, 1, H, W)}."""

    kind = "unet"

    def __init__(self, base_width: int = 64):
        super().__init__()
        self.seg = DiscriminativeUNet(3, base_width)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.seg(x)}


class DraemDetector(nn.Module):
    """``draem``: reconstruct, then segment [image, reconstruction].

    forward -> {"recon": (B, 3, H, W) in [0, 1], "logits": (B, 1, H, W)}.
    """

    kind = "draem"

    def __init__(self, base_width: int = 64, recon_width: int | None = None):
        super().__init__()
        self.recon = ReconstructiveNet(recon_width or 2 * base_width)
        self.seg = DiscriminativeUNet(6, base_width)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        recon = self.recon(x)
        return {"recon": recon, "logits": self.seg(torch.cat([x, recon], dim=1))}


class Student(nn.Module):
    """DeSTSeg's denoising student: a conv encoder-decoder whose decoder emits one map per teacher scale.

    ``channels``/``strides``: the teacher maps it must match (e.g. (24, 40, 112) at strides (4, 8, 16)).
    The stem works at stride 2 and the decoder stops at the finest teacher stride, so no full-resolution
    feature map is ever computed (the teacher has none either).
    """

    def __init__(self, channels: tuple[int, ...], strides: tuple[int, ...], base_width: int = 32):
        super().__init__()
        levels = [2**k for k in range(1, strides[-1].bit_length())]  # strides 2, 4, ..., deepest
        widths = {s: min(base_width * s // 2, 8 * base_width) for s in levels}
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[2], 3, stride=2, padding=1), nn.BatchNorm2d(widths[2]), nn.ReLU(inplace=True),
            conv_block(widths[2], widths[2]),
        )
        self.down = nn.ModuleList(conv_block(widths[s], widths[2 * s]) for s in levels[:-1])
        ups = [s for s in reversed(levels[:-1]) if s >= strides[0]]  # decoder strides, deep to fine
        self.up = nn.ModuleList(up_block(widths[2 * s], widths[s]) for s in ups)
        self.fuse = nn.ModuleList(conv_block(2 * widths[s], widths[s]) for s in ups)
        self.ups, self.levels = ups, levels
        self.heads = nn.ModuleDict({str(s): nn.Conv2d(widths[s], c, 1) for s, c in zip(strides, channels)})
        self.strides = strides

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = {2: self.stem(x)}
        for s, block in zip(self.levels[:-1], self.down):
            feats[2 * s] = block(F.max_pool2d(feats[s], 2))
        y = feats[self.levels[-1]]
        for s, up, fuse in zip(self.ups, self.up, self.fuse):
            y = fuse(torch.cat([up(y), feats[s]], dim=1))
            feats[s] = y
        return [self.heads[str(s)](feats[s]) for s in self.strides]


class DeSTSegDetector(nn.Module):
    """``destseg``: frozen teacher, denoising student, segmentation head on T*S feature products.

    Args:
        teacher: a module with ``forward_features(x) -> list of (B, C_i, H/s_i, W/s_i)`` taking RGB in
            [0, 1] (it normalises itself, as ``features.efficientnet_lite`` does); frozen here. The maps at strides 4, 8 and 16 are used.
        base_width: student width; seg_width: segmentation-head width.

    forward -> {"teacher": [...], "student": [...], "logits": (B, 1, H, W)}; the head sees detached
    features, so the segmentation loss never moves the student. The ``destseg`` recipe trains in the
    released order (``detector.recipes``): the student alone, then the head alone (``segment``).
    """

    kind = "destseg"
    strides = (4, 8, 16)

    def __init__(self, teacher: nn.Module, base_width: int = 32, seg_width: int = 64, image_size: int = 64):
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        with torch.no_grad():
            maps = self.teacher.forward_features(torch.zeros(1, 3, image_size, image_size))
        self.taps = [self._tap(maps, image_size, s) for s in self.strides]
        channels = tuple(maps[i].shape[1] for i in self.taps)
        self.student = Student(channels, self.strides, base_width)
        self.head = nn.Sequential(conv_block(sum(channels), seg_width), prior_head(seg_width, kernel=1))

    @staticmethod
    def _tap(maps: list[torch.Tensor], size: int, stride: int) -> int:
        """Index of the last teacher map at ``stride`` (the deepest features at that resolution)."""
        hits = [i for i, m in enumerate(maps) if m.shape[-1] == size // stride]
        if not hits:
            raise ValueError(f"teacher has no feature map at stride {stride} for {size} px input")
        return hits[-1]

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # frozen: BN statistics never move
        return self

    def teacher_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            maps = self.teacher.forward_features(x)
        return [maps[i] for i in self.taps]

    def segment(self, teacher: list[torch.Tensor], student: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Head logits (B, 1, *size) from the teacher and (detached) student maps of the same input."""
        grid = teacher[0].shape[-2:]
        products = [
            F.interpolate(F.normalize(t, dim=1) * F.normalize(s.detach(), dim=1), size=grid, mode="bilinear", align_corners=False)
            for t, s in zip(teacher, student)
        ]
        return F.interpolate(self.head(torch.cat(products, dim=1)), size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> dict:
        teacher = self.teacher_features(x)
        student = self.student(x)
        return {"teacher": teacher, "student": student, "logits": self.segment(teacher, student, x.shape[-2:])}


def build_model(kind: str, base_width: int, image_size: int, teacher: nn.Module | None = None) -> nn.Module:
    """A detector by name ("unet", "draem", "destseg"); destseg needs ``teacher`` (see DeSTSegDetector)."""
    if kind == "unet":
        return UNetDetector(base_width)
    if kind == "draem":
        return DraemDetector(base_width)
    if kind == "destseg":
        if teacher is None:
            raise ValueError("destseg needs a teacher with forward_features")
        return DeSTSegDetector(teacher, base_width=base_width, seg_width=2 * base_width, image_size=image_size)
    raise ValueError(f"unknown detector '{kind}'; choose unet, draem or destseg")
