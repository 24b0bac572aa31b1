"""CPU backends (cutpaste, perlin, paste): output contract, untouched background, recipe replay."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from anogen_data.data.image_io import read_image
from anogen_data.errors import AnogenError
from anogen_data.layout.propose import propose_layouts
from anogen_data.layout.rle import decode_rle
from anogen_data.records import read_index
from anogen_data.synthesis import BACKENDS, CPU_BACKENDS, SynthesisContext, get_backend
from anogen_data.synthesis.runner import sample_rng


@pytest.fixture(scope="module")
def entries(demo_index):
    return read_index(demo_index)


@pytest.fixture(scope="module")
def context(entries):
    return SynthesisContext(
        learn_shots=tuple(e for e in entries if e.role == "learn"),
        good_paths=tuple(e.path for e in entries if e.role == "train"),
    )


@pytest.fixture(scope="module")
def layouts(entries):
    return list(propose_layouts(entries, 8, category="demo", seed=1))


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_output_contract(name, context, layouts):
    backend = get_backend(name)(context)
    assert backend.name == name and backend.mask_quality == "pixel"
    for layout in layouts:
        source = read_image(layout.source_path)
        image, mask = backend(source, layout, sample_rng(layout))
        assert image.shape == source.shape and image.dtype == np.uint8
        assert mask.shape == source.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255} and mask.any()
        assert not np.array_equal(image, source)


@pytest.mark.parametrize("name", ["cutpaste", "paste", "perlin"])
def test_pixels_outside_the_dilated_mask_are_unchanged(name, context, layouts):
    backend = get_backend(name)(context)
    for layout in layouts:
        source = read_image(layout.source_path)
        recipe = backend.make_recipe(source, layout, sample_rng(layout))
        image, mask = backend.apply(source, layout, recipe)
        reach = int(np.ceil(3 * recipe["feather_px"])) + 4 if "feather_px" in recipe else 1  # paste feathers
        dilated = cv2.dilate(mask, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
        diff = np.abs(image.astype(int) - source.astype(int)).max(axis=2)
        assert diff[~dilated].max(initial=0) <= 2
        if name == "cutpaste":  # hard paste: exactly the mask changes at most
            assert not diff[mask == 0].any()


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_stored_recipe_replays_to_the_same_bytes(name, context, layouts):
    backend = get_backend(name)(context)
    layout = layouts[3]
    source = read_image(layout.source_path)
    recipe = backend.make_recipe(source, layout, sample_rng(layout))
    stored = json.loads(json.dumps(recipe))  # what records.jsonl keeps
    image, mask = backend.apply(source, layout, recipe)
    fresh = get_backend(name)(context)  # a new process would build a new backend
    replay_image, replay_mask = fresh.apply(read_image(layout.source_path), layout, stored)
    assert image.tobytes() == replay_image.tobytes() and mask.tobytes() == replay_mask.tobytes()
    other = backend.make_recipe(source, layout, np.random.default_rng(99))
    assert other != recipe


def test_paste_transplants_the_real_defect_under_the_layout_mask(context, layouts):
    backend = get_backend("paste")(context)
    for layout in layouts:
        source = read_image(layout.source_path)
        image, mask = backend(source, layout, sample_rng(layout))
        np.testing.assert_array_equal(mask, decode_rle(layout.mask_rle))
        inside = np.abs(image.astype(int) - source.astype(int)).max(axis=2)[mask > 0]
        assert np.mean(inside > 10) > 0.3  # the defect is visible where the mask says


def test_paste_blend_ring_stays_a_few_pixels_for_any_box_or_feather(entries, layouts):
    from anogen_data.synthesis.paste import CLONE_ERODE, MAX_FEATHER_PX

    wide = SynthesisContext(
        learn_shots=tuple(e for e in entries if e.role == "learn"),
        good_paths=tuple(e.path for e in entries if e.role == "train"),
        options={"feather": 0.5},  # half the box side would drag the shot's surroundings along
    )
    backend = get_backend("paste")(wide)
    for layout in layouts:
        source = read_image(layout.source_path)
        recipe = backend.make_recipe(source, layout, sample_rng(layout))
        assert recipe["feather_px"] <= MAX_FEATHER_PX
        image, mask = backend.apply(source, layout, recipe)
        reach = int(np.ceil(MAX_FEATHER_PX + 2 * MAX_FEATHER_PX)) + CLONE_ERODE + 1  # dilation + blur tail
        dilated = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))) > 0
        assert np.abs(image.astype(int) - source.astype(int)).max(axis=2)[~dilated].max(initial=0) <= 2


def test_perlin_blend_follows_draem_equation(context, layouts):
    backend = get_backend("perlin")(context)
    layout = layouts[0]
    source = read_image(layout.source_path)
    recipe = {**backend.make_recipe(source, layout, sample_rng(layout)), "beta": 1.0}
    image, mask = backend.apply(source, layout, recipe)  # beta = 1 keeps the image
    assert np.array_equal(image, source) and mask.any()
    procedural = {**recipe, "texture": "procedural", "beta": 0.0}
    image, mask = backend.apply(source, layout, procedural)
    assert not np.array_equal(image[mask > 0], source[mask > 0])


def test_registry_and_bad_backends(entries):
    assert set(CPU_BACKENDS) <= set(BACKENDS) and {"anogen", "dualanodiff"} <= set(BACKENDS)
    with pytest.raises(AnogenError, match="valid backends: paste, perlin, cutpaste"):
        get_backend("gan")
    goods_only = SynthesisContext(good_paths=tuple(e.path for e in entries if e.role == "train"))
    with pytest.raises(AnogenError, match="--backend perlin"):
        get_backend("paste")(goods_only)


def test_paste_chooses_the_clone_mode_from_the_mask_on_free_layouts(entries, context):
    from anogen_data.synthesis.paste import clone_mode

    line, disk = np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8)
    cv2.line(line, (3, 5), (36, 30), 255, 2)
    cv2.circle(disk, (20, 20), 12, 255, -1)
    assert (clone_mode(line), clone_mode(disk)) == ("mixed", "normal")  # thin -> mixed, blob -> normal

    free = list(propose_layouts(entries, 12, category="demo", seed=3, placement="free"))
    backend, modes = get_backend("paste")(context), {}
    for layout in free:
        x0, y0, x1, y1 = layout.bbox_xyxy
        recipe = backend.make_recipe(read_image(layout.source_path), layout, sample_rng(layout))
        assert recipe["mode"] == clone_mode(decode_rle(layout.mask_rle)[y0:y1, x0:x1])
        modes.setdefault(layout.defect_type, set()).add(recipe["mode"])
    assert "mixed" in modes["scratch"] and modes["spot"] == {"normal"}  # thin scratches, round spots

    scratch = next(x for x in free if x.defect_type == "scratch" and clone_mode(
        decode_rle(x.mask_rle)[x.bbox_xyxy[1]:x.bbox_xyxy[3], x.bbox_xyxy[0]:x.bbox_xyxy[2]]) == "mixed")
    source = read_image(scratch.source_path)
    forced = get_backend("paste")(SynthesisContext(learn_shots=context.learn_shots, good_paths=context.good_paths,
                                                   options={"blend": {"scratch": "normal"}}))
    recipe = forced.make_recipe(source, scratch, sample_rng(scratch))
    assert recipe["mode"] == "normal"  # the per-defect override wins
    mixed, _ = backend.apply(source, scratch, {**recipe, "mode": "mixed"})
    normal, _ = backend.apply(source, scratch, recipe)
    assert not np.array_equal(mixed, normal)  # the mode reaches the Poisson blend
