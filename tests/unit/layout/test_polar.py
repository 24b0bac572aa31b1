"""Polar placement of real shapes: a rim defect keeps its learn shot's radius, turns to a new angle, stays
tangent to the rim and on the object; paste transplants it there; one seed gives the same bytes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from anogen_data.data.image_io import read_image, write_png
from anogen_data.errors import AnogenError
from anogen_data.layout.propose import LayoutProposer, propose_layouts
from anogen_data.layout.rle import decode_rle
from anogen_data.layout.shapes import mask_centroid, polar_shape
from anogen_data.records import IndexEntry
from anogen_data.synthesis import SynthesisContext, get_backend
from anogen_data.synthesis.runner import sample_rng

SIDE = 128
SHOT = {"centre": (60.0, 67.0), "radius": 50, "arc": (20.0, 80.0)}  # arc from 20 to 80 degrees on the rim
RIM = (30, 38)  # ring radii of the rim, as a fraction of 50 px


def _bottle(centre, radius, seed, arc=None) -> tuple[np.ndarray, np.ndarray]:
    """A top-view "bottle": grey disk with a lighter rim ring on a white background, and the arc's mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)
    dist = np.hypot(xx - centre[0], yy - centre[1])
    image = np.full((SIDE, SIDE), 235.0)
    image[dist <= radius] = 60.0
    ring = (dist >= RIM[0] * radius / 50) & (dist <= RIM[1] * radius / 50)
    image[ring] = 110.0
    mask = np.zeros((SIDE, SIDE), np.uint8)
    if arc is not None:
        angle = np.degrees(np.arctan2(yy - centre[1], xx - centre[0])) % 360
        mask[ring & (angle >= arc[0]) & (angle <= arc[1])] = 255
        image[mask > 0] = 200.0 + 30.0 * np.sin(xx[mask > 0] / 2.0)  # bright broken glass
    image += rng.normal(0, 2, image.shape)
    rgb = np.repeat(np.clip(image, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return rgb, mask


@pytest.fixture(scope="module")
def entries(tmp_path_factory) -> list[IndexEntry]:
    root = tmp_path_factory.mktemp("polar")
    rows = []
    for i in range(4):
        image, _ = _bottle(*_good_frame(i), seed=i)
        write_png(root / f"good_{i}.png", image)
        rows.append(IndexEntry(str(root / f"good_{i}.png"), "train", "good", "good", None, SIDE, SIDE, "train", "toy"))
    image, mask = _bottle(SHOT["centre"], SHOT["radius"], seed=9, arc=SHOT["arc"])
    write_png(root / "shot.png", image)
    write_png(root / "shot_mask.png", mask)
    rows.append(IndexEntry(str(root / "shot.png"), "test", "anomaly", "broken", str(root / "shot_mask.png"),
                           SIDE, SIDE, "learn", "toy"))
    return rows


def _good_frame(i: int) -> tuple[tuple[float, float], int]:
    """The drawn centre and radius of good image ``i``: the object moves a little and changes size."""
    return (64.0 + 3 * (i - 1.5), 64.0 - 2 * (i - 1.5)), 46 + 2 * i


def _true_frame(path: str) -> tuple[np.ndarray, float]:
    """The drawn disk's centre and radius of a good image (ground truth, not the estimator's)."""
    centre, radius = _good_frame(int(path.rsplit("_", 1)[1].split(".")[0]))
    return np.array(centre), float(radius)


def _shot_radius() -> float:
    """The shot arc's centroid distance from its object centre, as a fraction of the object radius."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    dist = np.hypot(xx - SHOT["centre"][0], yy - SHOT["centre"][1])
    angle = np.degrees(np.arctan2(yy - SHOT["centre"][1], xx - SHOT["centre"][0])) % 360
    arc = (dist >= RIM[0]) & (dist <= RIM[1]) & (angle >= SHOT["arc"][0]) & (angle <= SHOT["arc"][1])
    centroid = np.array([xx[arc].mean(), yy[arc].mean()])
    return float(np.linalg.norm(centroid - SHOT["centre"])) / SHOT["radius"]


def _principal_axis(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    coords = np.stack([xs - xs.mean(), ys - ys.mean()])
    values, vectors = np.linalg.eigh(coords @ coords.T)
    return vectors[:, -1]


@pytest.fixture(scope="module")
def layouts(entries):
    return list(propose_layouts(entries, 16, category="toy", seed=5))


def test_polar_shape_turns_rigidly_and_is_seeded():
    bar = np.zeros((12, 40), np.uint8)
    bar[4:8, 2:38] = 255
    image = np.repeat(bar[..., None], 3, axis=2)
    mask, warped, turn = polar_shape(bar, 3, size_ratio=1.0, target_hw=(128, 128), image_crop=image)
    again, warped_again, _ = polar_shape(bar, 3, size_ratio=1.0, target_hw=(128, 128), image_crop=image)
    assert mask.tobytes() == again.tobytes() and warped.tobytes() == warped_again.tobytes()
    assert mask.shape == warped.shape[:2] and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_allclose(turn.T @ turn, np.eye(2), atol=1e-9)  # a rotation or a reflection
    assert abs(float(_principal_axis(mask) @ (turn @ [1.0, 0.0]))) > 0.98  # the bar points where turn sends x
    assert 0.9 * 36 * 4 * 0.81 <= np.count_nonzero(mask) <= 1.1 * 36 * 4 * 1.21 + 60  # size jitter +-10 %
    angles = {round(float(np.degrees(np.arctan2(*polar_shape(bar, s, size_ratio=1.0, target_hw=(128, 128))[2][::-1, 0]))))
              for s in range(8)}
    assert len(angles) == 8  # every seed its own angle


def _chiral_shot() -> np.ndarray:
    """An L with unequal arms: no rotation maps it onto its mirror image (an arc or a bar is symmetric)."""
    shot = np.zeros((24, 44), np.uint8)
    shot[2:8, 2:42] = 255  # long arm along +x
    shot[2:22, 2:8] = 255  # short arm along +y at the left end
    return shot


def _landing(src: np.ndarray, dst: np.ndarray, linear: np.ndarray) -> float:
    """Fraction of ``src``'s defect pixels that ``linear`` (2x2, about the centroids) sends onto ``dst``'s."""
    ys, xs = np.nonzero(src)
    moved = linear @ (np.stack([xs, ys]) - mask_centroid(src)[:, None]) + mask_centroid(dst)[:, None]
    cols, rows = np.round(moved).astype(int)
    inside = (rows >= 0) & (rows < dst.shape[0]) & (cols >= 0) & (cols < dst.shape[1])
    return float(np.mean(inside & (dst[np.clip(rows, 0, dst.shape[0] - 1), np.clip(cols, 0, dst.shape[1] - 1)] > 0)))


def test_polar_shape_turns_a_chiral_shot_by_exactly_the_returned_turn_in_both_mirror_states():
    shot = _chiral_shot()
    mirrors = set()
    for seed in range(12):
        mask, _, turn = polar_shape(shot, seed, size_ratio=1.0, target_hw=(128, 128))
        np.testing.assert_allclose(turn.T @ turn, np.eye(2), atol=1e-9)
        scale = math.sqrt(np.count_nonzero(mask) / np.count_nonzero(shot))
        assert _landing(shot, mask, scale * turn) > 0.9, seed  # the mask is the shot moved by turn ...
        assert _landing(mask, shot, turn.T / scale) > 0.9, seed  # ... and nothing else
        mirrors.add(bool(np.linalg.det(turn) < 0))
    assert mirrors == {True, False}  # some seeds mirror, some only turn


def test_polar_layouts_keep_the_learn_shot_radius_at_new_angles(entries, layouts):
    relative = _shot_radius()
    angles, mirrors = [], set()
    for layout in layouts:
        assert (layout.shape_source, layout.placement, layout.shot_mask) == ("real", "polar", entries[-1].mask_path)
        mask = decode_rle(layout.mask_rle)
        centre, radius = _true_frame(layout.source_path)
        offset = mask_centroid(mask) - centre
        assert abs(np.linalg.norm(offset) - relative * radius) <= 3.0  # px, at 128 px
        radial = offset / np.linalg.norm(offset)
        assert abs(float(_principal_axis(mask) @ radial)) < 0.05  # the arc runs along the rim (tangent, < 3 deg off)
        angles.append(math.degrees(math.atan2(offset[1], offset[0])) % 360)
        turn = polar_shape(np.full((4, 4), 255, np.uint8), layout.seed, size_ratio=1.0, target_hw=(SIDE, SIDE))[2]
        mirrors.add(bool(np.linalg.det(turn) < 0))
    assert np.ptp(angles) > 180  # placed all around, not at the shot's angle only
    assert mirrors == {True, False}  # both turned and mirrored shots are placed (a mirror is symmetric for an arc)


def test_polar_masks_stay_on_the_foreground(entries, layouts):
    proposer = LayoutProposer(entries)
    for layout in layouts:
        mask = decode_rle(layout.mask_rle)
        foreground = proposer.foreground_of(layout.source_path, mask.shape)
        assert mask.any() and not (foreground[mask > 0] == 0).any()


def test_paste_puts_the_turned_shot_under_the_mask_with_the_same_bytes_per_seed(entries, layouts):
    context = SynthesisContext(learn_shots=(entries[-1],), good_paths=tuple(e.path for e in entries[:-1]))
    backend = get_backend("paste")(context)
    again = list(propose_layouts(entries, 16, category="toy", seed=5))
    assert again == layouts
    for layout in layouts[:6]:
        source = read_image(layout.source_path)
        recipe = backend.make_recipe(source, layout, sample_rng(layout))
        assert recipe["mode"] == "normal"  # same surroundings at the same radius: the whole defect moves
        image, mask = backend.apply(source, layout, recipe)
        replay, _ = get_backend("paste")(context).apply(read_image(layout.source_path), layout, recipe)
        assert image.tobytes() == replay.tobytes()
        inner = cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0
        assert image[inner].mean() > 150 > source[inner].mean()  # the bright broken glass, not the grey rim


def test_auto_places_freely_on_textures_and_polar_needs_an_object(entries):
    free = list(propose_layouts(entries, 3, category="toy", seed=5, foreground="full"))
    assert all(x.placement == "free" for x in free)
    assert list(propose_layouts(entries, 3, category="toy", seed=5, placement="free")) != \
        list(propose_layouts(entries, 3, category="toy", seed=5))
    with pytest.raises(AnogenError, match="placement 'polar' needs an object"):
        list(propose_layouts(entries, 1, category="toy", seed=5, foreground="full", placement="polar"))
    with pytest.raises(AnogenError, match="unknown placement"):
        LayoutProposer(entries, placement="ring")


def test_the_propose_stage_config_chooses_the_placement(entries):
    from anogen_data.config import ProposeConfig
    from anogen_data.stages.propose import make_layouts

    assert ProposeConfig().placement == "auto"
    for placement, expected in (("auto", "polar"), ("polar", "polar"), ("free", "free")):
        layouts = make_layouts(ProposeConfig(n=2, placement=placement, seed=5), entries, "toy")
        assert {x.placement for x in layouts} == {expected}
