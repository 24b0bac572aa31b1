"""The papers' detector recipes as named, frozen records (``train --recipe``).

Each recipe fixes the model, the data mix, the loss settings and the schedule of one released training
script; ``epochs``/``base_width`` are CPU-sized (reduced) defaults that flags override.

- ``draem``: AnoGen's released DRAEM script (Gui et al., ECCV 2024; gaobb/AnoGen ``DRAEM/train_DRAEM.py``
  and ``data_loader.py``): per sample 25 % Perlin anomaly on a texture, 25 % generated anomaly, 50 % the
  clean good image; focal gamma 2 + L2 + SSIM on the reconstruction; lr x0.1 at epochs 400 and 600 of
  700. Released: Adam lr 1e-4, 700 epochs, width 128/64; ours: Adam lr from the config (1e-3: a CPU
  schedule of tens of epochs learns nothing at 1e-4), 20 epochs, width 16.
- ``destseg``: AnoGen's released DeSTSeg script (``DeSTSeg/train.py``, ``data/mvtec_dataset.py``):
  50 % Perlin + 50 % generated, no clean sample; focal gamma 4 + L1 on the head; the denoising student
  alone for the first 1,000 of 5,000 steps, then only the segmentation head (student frozen).
  Released: SGD (student lr 0.4, head 0.1/0.01), batch 32; ours: Adam, batch from the config, 20 epochs.
- ``unet``: the U-Net protocol of AnomalyDiffusion (Hu et al., AAAI 2024) and DualAnoDiff (Jin et al.,
  CVPR 2025): DRAEM's discriminative network alone on 50 % clean + 50 % generated, focal gamma 2, one
  constant learning rate.

"generated" is a version's synthetic anomaly; when a version has none (or for the ``--synthesis``
baseline without a version) the slot is filled by an on-the-fly anomaly, so every recipe's own baseline
is the same mix with Perlin in place of the generated share.

Perlin textures: DRAEM draws them from the Describable Textures Dataset; ``train --textures DIR`` takes
any folder of images (e.g. ``dtd/images``). Without it the textures are the category's own good images,
colour-jittered (our default, recorded in ``model.json`` as ``"textures": {"source": "in-category"}``).
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("clean", "perlin", "generated")


@dataclass(frozen=True)
class Recipe:
    """One released training recipe.

    Attributes:
        name: the ``--recipe`` value; model: "unet" | "draem" | "destseg".
        mix: sample kinds repeated in this order over an epoch (sample ``i`` is ``mix[i % len(mix)]``),
            so every batch whose size is a multiple of ``len(mix)`` holds the exact shares.
        gamma: focal-loss focusing exponent; l1_weight: weight of the L1 term on P(defect) (DeSTSeg).
        p_cutoff: AnoGen's weak-loss cutoff inside boxes (released: 0.1 DRAEM, 0.0 DeSTSeg).
        student_first: share of the steps that train only the DeSTSeg student before the head; 0 = joint.
        lr_milestones: shares of the steps after which the learning rate is multiplied by 0.1.
        epochs, base_width: CPU-sized defaults (reduced from the released ones, see the module docstring).
        released: where the settings come from.
    """

    name: str
    model: str
    mix: tuple[str, ...]
    gamma: float
    l1_weight: float
    p_cutoff: float
    student_first: float
    lr_milestones: tuple[float, ...]
    epochs: int
    base_width: int
    released: str

    def shares(self) -> dict[str, float]:
        """Share of each sample kind per epoch, e.g. {"clean": 0.5, "perlin": 0.25, "generated": 0.25}."""
        return {k: self.mix.count(k) / len(self.mix) for k in KINDS}


RECIPES: dict[str, Recipe] = {
    "draem": Recipe(
        "draem", "draem", ("perlin", "clean", "generated", "clean"), gamma=2.0, l1_weight=0.0, p_cutoff=0.1,
        student_first=0.0, lr_milestones=(400 / 700, 600 / 700), epochs=20, base_width=16,
        released="gaobb/AnoGen DRAEM/train_DRAEM.py: 700 epochs, Adam 1e-4, MultiStepLR [400, 600] x0.1",
    ),
    "destseg": Recipe(
        "destseg", "destseg", ("perlin", "generated"), gamma=4.0, l1_weight=1.0, p_cutoff=0.0,
        student_first=1000 / 5000, lr_milestones=(), epochs=20, base_width=16,
        released="gaobb/AnoGen DeSTSeg/train.py: 5000 steps (student alone for 1000), SGD, batch 32, gamma 4",
    ),
    "unet": Recipe(
        "unet", "unet", ("clean", "generated"), gamma=2.0, l1_weight=0.0, p_cutoff=0.1,
        student_first=0.0, lr_milestones=(), epochs=20, base_width=16,
        released="AnomalyDiffusion / DualAnoDiff U-Net protocol: DRAEM's discriminative net, focal loss",
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; ValueError naming the choices otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe '{name}'; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]
