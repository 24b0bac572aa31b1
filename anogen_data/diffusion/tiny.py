"""Tiny, randomly initialised text-to-image latent diffusion components, for tests and ``--model tiny``.

Same classes as Stable Diffusion 1.5 (Rombach et al., "High-Resolution Image Synthesis with Latent
Diffusion Models", CVPR 2022, https://arxiv.org/abs/2112.10752), at the sizes diffusers uses in its own
pipeline tests (``get_dummy_components``): UNet blocks (4, 8), VAE blocks (4, 8) (one downsampling,
so a 64 px image has a (4, 32, 32) latent; ~0.02 GFLOP per UNet call), a 5-layer CLIP text encoder of
width 32. The CLIP tokenizer
is built from an in-memory byte-level BPE vocabulary, so nothing is downloaded and nothing is read from
disk. Same seed, same weights.

The ``full_sd15_*`` configs are the real SD-1.5 architecture (for the throughput benchmark: random
weights cost exactly what trained weights cost).
"""

from __future__ import annotations

from typing import Any

TINY_RESOLUTION = 64  # pixels: unet sample_size 32 x vae scale factor 2

# Words that get a single token in the tiny vocabulary (prompt templates and init words).
TINY_WORDS = (
    "a the of on in with and photo picture image rendering close up cropped good bright dark clean "
    "small large object surface defect damage scratch crack hole stain contamination broken bent glue "
    "thread color colour cut fold print poke squeeze missing"
).split()

TINY_UNET = dict(
    block_out_channels=(4, 8),
    layers_per_block=1,
    norm_num_groups=2,
    sample_size=32,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=32,
)
TINY_VAE = dict(
    block_out_channels=(4, 8),
    norm_num_groups=2,
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    latent_channels=4,
    sample_size=TINY_RESOLUTION,
)
TINY_TEXT = dict(
    bos_token_id=0,
    eos_token_id=2,
    hidden_size=32,
    intermediate_size=37,
    layer_norm_eps=1e-05,
    num_attention_heads=4,
    num_hidden_layers=5,
    pad_token_id=1,
    vocab_size=1000,
    max_position_embeddings=77,
)
# Stable Diffusion 1.5's scheduler (scaled-linear betas, epsilon prediction), used for tiny and full.
SD_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)

# The real SD-1.5 architecture (stable-diffusion-v1-5 unet/vae/text_encoder config.json values).
FULL_SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768,
    attention_head_dim=8,
)
FULL_SD15_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    latent_channels=4,
    layers_per_block=2,
    sample_size=512,
)
FULL_SD15_TEXT = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_attention_heads=12,
    num_hidden_layers=12,
    max_position_embeddings=77,
    vocab_size=49408,
    hidden_act="quick_gelu",
    projection_dim=768,
)


def _bpe_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level CLIP BPE vocabulary: specials, 256 byte symbols (+ word-final forms), TINY_WORDS.

    Returns:
        (vocab token -> id, merges (a, b) in priority order). Fewer ids than TINY_TEXT["vocab_size"].
    """
    from tokenizers.pre_tokenizers import ByteLevel

    symbols = sorted(ByteLevel.alphabet())
    tokens = ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]
    merges: list[tuple[str, str]] = []
    for word in TINY_WORDS:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merge = (current, piece)
            current = current + piece
            if merge not in merges:
                merges.append(merge)
                tokens.append(current)
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab, merges


def build_tiny_tokenizer():
    """A ``CLIPTokenizer`` over the in-memory tiny vocabulary (max length 77, like SD's tokenizer)."""
    from transformers import CLIPTokenizer

    vocab, merges = _bpe_vocabulary()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _build(unet_config: dict, vae_config: dict, text_config: dict, seed: int) -> dict[str, Any]:
    """UNet, VAE and CLIP text encoder from configs, each seeded with ``seed``, plus tokenizer and scheduler.

    The global RNG is left untouched. Modules in eval mode, fp32, on CPU; the tokenizer is the tiny
    in-memory one, the scheduler DDIM with SD-1.5's betas.
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    makers = (("unet", lambda: UNet2DConditionModel(**unet_config)), ("vae", lambda: AutoencoderKL(**vae_config)),
              ("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**text_config))))
    parts: dict[str, Any] = {}
    with torch.random.fork_rng(devices=[]):
        for name, make in makers:
            torch.manual_seed(seed)
            parts[name] = make().eval()
    return dict(parts, tokenizer=build_tiny_tokenizer(), scheduler=DDIMScheduler(**SD_SCHEDULER))


def build_tiny_components(seed: int = 0) -> dict[str, Any]:
    """Fresh tiny SD components with seeded random weights (the global RNG is left untouched).

    Returns:
        dict with ``unet`` (UNet2DConditionModel, latent (4, 32, 32)), ``vae`` (AutoencoderKL, scale
        factor 2), ``text_encoder`` (CLIPTextModel, width 32), ``tokenizer`` (CLIPTokenizer) and
        ``scheduler`` (DDIMScheduler with SD-1.5 betas). All modules in eval mode, fp32, on CPU.
    """
    return _build(TINY_UNET, TINY_VAE, TINY_TEXT, seed)


def build_full_sd15_components(seed: int = 0) -> dict[str, Any]:
    """The full-size SD-1.5 UNet (860 M params), VAE and CLIP-L text encoder with random weights.

    For benchmarks only: compute cost equals that of the trained model. The tokenizer is the tiny one
    (tokenising is not what the benchmark measures; all its ids are valid in the 49,408-row table).
    """
    return _build(FULL_SD15_UNET, FULL_SD15_VAE, FULL_SD15_TEXT, seed)
