"""Tiny random SD components: real diffusers/transformers classes, seeded, nothing downloaded."""

from __future__ import annotations

import torch

from anogen_data.diffusion.tiny import TINY_RESOLUTION, build_tiny_components, build_tiny_tokenizer


def test_same_seed_same_weights_and_other_seed_differs():
    a, b, c = build_tiny_components(0), build_tiny_components(0), build_tiny_components(1)
    for name in ("unet", "vae", "text_encoder"):
        sa, sb, sc = a[name].state_dict(), b[name].state_dict(), c[name].state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_global_rng_is_left_alone():
    with torch.random.fork_rng(devices=[]):  # this test's own seeding stays inside it
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        build_tiny_components(5)
        assert torch.equal(torch.rand(3), expected)


def test_tokenizer_from_memory_encodes_prompt_words_as_single_tokens():
    tok = build_tiny_tokenizer()
    ids = tok("a photo of a defect", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == tok.bos_token_id
    assert tok.convert_ids_to_tokens(ids[1:6]) == ["a</w>", "photo</w>", "of</w>", "a</w>", "defect</w>"]
    assert tok.decode(tok.encode("unseen wordz", add_special_tokens=False)) == "unseen wordz"
    assert len(tok) < 1000  # every id has a row in the text encoder


def test_shapes_through_vae_text_encoder_and_unet():
    c = build_tiny_components(0)
    with torch.no_grad():
        latents = c["vae"].encode(torch.zeros(2, 3, TINY_RESOLUTION, TINY_RESOLUTION)).latent_dist.mean
        ids = c["tokenizer"](["a photo of a defect"] * 2, padding="max_length", max_length=77, return_tensors="pt").input_ids
        hidden = c["text_encoder"](ids)[0]
        eps = c["unet"](latents, torch.tensor([10, 900]), hidden).sample
        decoded = c["vae"].decode(latents).sample
    assert latents.shape == (2, 4, 32, 32)
    assert hidden.shape == (2, 77, 32)
    assert eps.shape == latents.shape
    assert decoded.shape == (2, 3, TINY_RESOLUTION, TINY_RESOLUTION)
