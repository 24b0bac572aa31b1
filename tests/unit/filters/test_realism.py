"""Realism scores with the pretrained backbone on tiny hand-made crops."""

from __future__ import annotations

import numpy as np
import pytest

from anogen_data.data.image_io import read_mask
from anogen_data.filters.embed import Embedder, crop
from anogen_data.filters.realism import defect_crop_box, realism_scores, reference_embeddings
from anogen_data.records import read_index


@pytest.fixture(scope="module")
def embedder():
    return Embedder(batch_size=8)


def test_embeddings_are_unit_length_and_deterministic(embedder):
    crops = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), np.uint8) for i in range(3)]
    first, second = embedder(crops), embedder(crops)
    assert first.shape == (3, 1280) and np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first, second)


def test_a_copy_of_a_learn_shot_is_at_distance_zero_and_surface_is_far(scene, embedder):
    learn = [e for e in read_index(scene.index) if e.role == "learn"]
    refs = reference_embeddings(learn, embedder, size=64, pad=0.25, min_side=32)
    assert list(refs) == ["spot"] and refs["spot"].shape == (2, 1280)
    # a synthetic sample that copies learn shot 0's defect onto the good source, embedded on its own
    mask = read_mask(learn[0].mask_path)
    box = defect_crop_box(mask, (0, 0, mask.shape[1], mask.shape[0]), pad=0.25, min_side=32)
    copy = scene.paint(scene.source_image, mask)
    generated, source = embedder([crop(copy, box, 64), crop(scene.source_image, box, 64)])
    scores = realism_scores(generated, source, refs["spot"])
    assert scores["defect_distance"] == pytest.approx(1 - float(np.max(refs["spot"] @ generated)), abs=1e-6)
    assert scores["defect_distance"] < 0.1  # like a real spot ...
    assert scores["good_distance"] == pytest.approx(1 - float(generated @ source), abs=1e-6)
    assert scores["good_distance"] > 0.05  # ... and unlike the surface it was painted on
    untouched = realism_scores(source, embedder([crop(scene.source_image.copy(), box, 64)])[0], refs["spot"])
    assert untouched["good_distance"] == pytest.approx(0.0, abs=1e-5)  # unchanged surface: no defect
    assert untouched["defect_distance"] > scores["defect_distance"] + 0.05
    plain = embedder([np.full((64, 64, 3), (200, 190, 170), np.uint8)])[0]
    far = realism_scores(plain, generated, refs["spot"])
    assert far["defect_distance"] > 0.05 and far["good_distance"] > 0.05


def test_types_without_learn_shots_skip_defect_distance(embedder):
    vector = embedder([np.zeros((32, 32, 3), np.uint8)])[0]
    assert set(realism_scores(vector, vector, None)) == {"good_distance"}
