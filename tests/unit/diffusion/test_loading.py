"""Model loading: tiny / local diffusers folder / hub id offline, device and dtype resolution, errors."""

from __future__ import annotations

import pytest
import torch

from anogen_data.diffusion.loading import load_components, resolve_device, resolve_dtype, text_encoder_fingerprint
from anogen_data.errors import AnogenError


def test_tiny_components_are_frozen_and_report_their_geometry(tiny):
    assert tiny.resolution == 64 and tiny.vae_scale_factor == 2 and tiny.embedding_width == 32
    assert tiny.device == torch.device("cpu") and tiny.dtype == torch.float32
    assert not any(p.requires_grad for p in tiny.unet.parameters())
    assert not any(p.requires_grad for p in tiny.text_encoder.parameters())


def test_local_folder_round_trip(tiny, tmp_path):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(unet=tiny.unet, vae=tiny.vae, text_encoder=tiny.text_encoder, tokenizer=tiny.tokenizer,
                                   scheduler=tiny.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(tmp_path / "sd")
    loaded = load_components(str(tmp_path / "sd"), device="cpu", dtype="bf16")
    assert loaded.dtype == torch.bfloat16 and loaded.unet.dtype == torch.bfloat16
    w0, w1 = tiny.unet.conv_in.weight, loaded.unet.conv_in.weight
    assert torch.equal(w0.to(torch.bfloat16), w1)
    assert loaded.tokenizer("a photo").input_ids == tiny.tokenizer("a photo").input_ids
    assert text_encoder_fingerprint(loaded.text_encoder) == text_encoder_fingerprint(tiny.text_encoder)


def test_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(AnogenError, match=f"model folder {tmp_path / 'nope'} does not exist"):
        load_components(str(tmp_path / "nope"))


def test_incomplete_folder_names_every_missing_part(tmp_path):
    (tmp_path / "sd" / "unet").mkdir(parents=True)
    (tmp_path / "sd" / "tokenizer").mkdir()
    with pytest.raises(AnogenError, match=r"missing vae/, text_encoder/, scheduler/, unet/config.json"):
        load_components(str(tmp_path / "sd"))


def test_uncached_hub_id_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AnogenError, match=r"model 'someorg/not-a-model': cannot load its unet/ from the local cache \(offline\)"):
        load_components("someorg/not-a-model", local_files_only=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_refused():
    with pytest.raises(AnogenError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_dtype_resolution():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("fp32", cpu) == torch.float32
    with pytest.raises(AnogenError, match="fp16 is not supported on CPU"):
        resolve_dtype("fp16", cpu)
    with pytest.raises(AnogenError, match="not one of auto, fp32, fp16, bf16"):
        resolve_dtype("int8", cpu)
    with pytest.raises(AnogenError, match="not one of auto, cpu, cuda"):
        resolve_device("tpu")
