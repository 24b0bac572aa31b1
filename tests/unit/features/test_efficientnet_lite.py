"""EfficientNet-Lite0: shapes, position mapping, and proof that the packaged weights are pretrained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anogen_data.errors import AnogenError
from anogen_data.features.efficientnet_lite import (
    EMBED_DIM,
    FEATURE_CHANNELS,
    load_efficientnet_lite0,
    load_state_by_position,
)


@pytest.fixture(scope="module")
def pretrained():
    return load_efficientnet_lite0()


def test_feature_maps_have_documented_strides_and_channels(pretrained):
    x = torch.rand(2, 3, 64, 96)
    maps = pretrained.forward_features(x)
    assert [m.shape[1] for m in maps] == list(FEATURE_CHANNELS)
    assert [tuple(m.shape[2:]) for m in maps] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    emb = pretrained.embed(x)
    assert emb.shape == (2, EMBED_DIM) and bool((emb >= 0).all())
    assert not pretrained.training and not any(p.requires_grad for p in pretrained.parameters())


def test_same_input_same_features_and_batch_independent(pretrained):
    x = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    full = pretrained.embed(x)
    single = pretrained.embed(x[1:2])
    torch.testing.assert_close(full[1:2], single, rtol=1e-4, atol=1e-5)


def test_fused_batchnorm_gives_the_same_features(pretrained):
    fused = load_efficientnet_lite0(fuse=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for ours, theirs in zip(fused.forward_features(x), pretrained.forward_features(x)):
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(fused(x), pretrained(x), rtol=1e-3, atol=1e-3)


def test_rejects_wrong_channel_count(pretrained):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        pretrained.embed(torch.rand(1, 1, 32, 32))


def test_position_mapping_rejects_a_wrong_file():
    model = load_efficientnet_lite0(pretrained=False)
    state = model.state_dict()
    keys = list(state)
    broken = {f"x{i}": v for i, v in enumerate(state.values())}
    broken[f"x{len(keys) - 1}"] = torch.zeros(7)
    with pytest.raises(AnogenError, match="not EfficientNet-Lite0"):
        load_state_by_position(model, broken, "bad.pth")
    with pytest.raises(AnogenError, match="holds 3 tensors"):
        load_state_by_position(model, dict(list(state.items())[:3]), "short.pth")


def test_loaded_tensors_equal_the_file(pretrained):
    from anogen_data.features.efficientnet_lite import weights_path

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    torch.testing.assert_close(pretrained.stem[0].weight, state["_conv_stem.weight"])
    torch.testing.assert_close(pretrained.blocks[15].body[3].weight, state["_blocks.15._depthwise_conv.weight"])
    torch.testing.assert_close(pretrained.classifier.bias, state["_fc.bias"])


def _load(paths, size=224):
    import cv2

    from anogen_data.data.image_io import read_image

    images = [cv2.resize(read_image(p), (size, size), interpolation=cv2.INTER_AREA) for p in paths]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def test_pretrained_classifies_real_hazelnuts_as_nuts(shared_data, pretrained):
    """ImageNet has no hazelnut class; its nearest classes are acorn (988) and buckeye (990).
    Random weights put them in the top 5 with probability ~1 %."""
    paths = sorted((shared_data / "hazelnut_toy/hazelnut/train/good").iterdir())[:6]
    top5 = pretrained(_load(paths)).topk(5, dim=1).indices
    hits = [bool({988, 990} & set(row.tolist())) for row in top5]
    assert sum(hits) >= 5, top5


def _patch_auroc(model, shared_data, n_good=6, n_bad=8):
    """PatchCore-style kNN score (stride-8 features, 3x3 local mean) on bottle: AUROC of defect vs good
    feature cells of broken_large test images against a memory bank of train/good cells."""
    import torch.nn.functional as F
    from torchmetrics.functional.classification import binary_auroc

    from anogen_data.data.image_io import read_mask

    root = shared_data / "mvtec_bottle/bottle"
    train = sorted((root / "train/good").iterdir())[:n_good]
    test = sorted((root / "test/broken_large").iterdir())[:n_bad]
    masks = [read_mask(root / "ground_truth/broken_large" / f"{p.stem}_mask.png") for p in test]
    bank = F.avg_pool2d(model.forward_features(_load(train))[1], 3, 1, 1)
    bank = bank.permute(0, 2, 3, 1).reshape(-1, bank.shape[1])
    feats = F.avg_pool2d(model.forward_features(_load(test))[1], 3, 1, 1)
    n, c, h, w = feats.shape
    score = torch.cdist(feats.permute(0, 2, 3, 1).reshape(-1, c), bank).min(dim=1).values
    target = torch.from_numpy(np.stack(masks) > 0).float().unsqueeze(1)
    target = F.adaptive_avg_pool2d(target, (h, w)).flatten() > 0.5
    return float(binary_auroc(score, target.long()))


@pytest.mark.slow
def test_pretrained_features_separate_defects_better_than_random(shared_data, pretrained):
    """Measured: pretrained 0.96, random init 0.84."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        random_model = load_efficientnet_lite0(pretrained=False)
    ours, chance = _patch_auroc(pretrained, shared_data), _patch_auroc(random_model, shared_data)
    assert ours > 0.9 and ours > chance + 0.05, (ours, chance)
