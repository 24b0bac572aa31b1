"""SAIM and BCM, the two attention modules of DualAnoDiff, as modules for diffusers' ``UNet2DConditionModel``.

Paper: Jin et al., "DualAnoDiff: Dual-Interrelated Diffusion Model for Few-Shot Anomaly Image
Generation", CVPR 2025 (arXiv:2408.13509); released code: zhiqing0205/DualAnoDiff.

Batch convention (used by training and by the pipeline): the UNet runs both branches as ONE
interleaved batch, row ``2i`` is the whole anomalous image of pair ``i`` and row ``2i + 1`` its anomaly
part. Classifier-free guidance concatenates ``[uncond pairs, cond pairs]``, which keeps pairs adjacent.

- **SAIM** (self-attention interaction module): as in the release, it sits inside EVERY attention
  processor of every transformer block, self- (``attn1``) and cross-attention (``attn2``) alike (32
  places in SD-1.5), on the attention output: each spatial token of one branch attends to the same
  token of both branches (video-style "temporal" attention over two frames) through new q/k/v/out
  layers, added back residually. Differences from the release, both kept deliberately: the out
  projection starts at zero, so an untrained SAIM reproduces the plain UNet exactly (training starts
  from SD's behaviour, tested bit-exact); and it is multi-head (64-channel heads, as SD's own
  attention). ``saim_places="block"`` keeps our earlier placement (once per transformer-block output,
  16 places) for concepts saved with it and for ablations.
- **BCM** (background compensation module): a "write" pass runs the UNet on a noised background-only
  latent and stores each self-attention input; in the "read" pass the whole-image rows take keys and
  values from ``(1 - a) * own + a * MLP(reference)``, with a small MLP and a learnable scalar ``a``
  initialised to 0 (so an untrained BCM is also the identity). Reference row ``r`` serves whole row
  ``2r`` (one reference per pair of the batch; with guidance the unconditional pairs get their own
  references, :mod:`anogen_data.diffusion.dual_reference`).

``DualModules`` owns the parameters (saved with ``save_pretrained`` as safetensors + config.json);
``DualModules.attached(unet)`` installs them on a UNet for the duration of a ``with`` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

BCM_MODES = ("off", "write", "read")


@dataclass
class DualState:
    """Switches shared by every installed SAIM hook and BCM processor.

    Attributes:
        saim: apply SAIM in every attention processor (needs an even, pair-interleaved batch).
        bcm: "off" (plain self-attention), "write" (store self-attention inputs of the reference pass in
            ``bank``) or "read" (whole-image rows mix the stored reference into their keys/values).
        bank: block name -> stored self-attention input, (R, N, C) for R reference images.
    """

    saim: bool = True
    bcm: str = "off"
    bank: dict[str, torch.Tensor] = field(default_factory=dict)


class SAIM(nn.Module):
    """Cross-branch attention over the two rows of each pair, per spatial token.

    Input and output: (2B, N, C) tokens, rows interleaved (whole, part). The output is the input plus a
    residual that is exactly zero at initialisation (zero out-projection).
    """

    def __init__(self, dim: int, head_dim: int = 64) -> None:
        super().__init__()
        heads = max(1, dim // head_dim)
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(query_dim=dim, heads=heads, dim_head=dim // heads, bias=False, out_bias=True)
        self.attn.set_processor(AttnProcessor2_0())
        nn.init.zeros_(self.attn.to_out[0].weight)
        nn.init.zeros_(self.attn.to_out[0].bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        rows, tokens, dim = hidden_states.shape
        if rows % 2:
            raise ValueError(f"SAIM needs pair-interleaved rows (whole, part), got an odd batch of {rows}")
        # (2B, N, C) -> (B, 2, N, C) -> (B*N, 2, C): a sequence of two "frames" per token.
        frames = hidden_states.view(rows // 2, 2, tokens, dim).permute(0, 2, 1, 3).reshape(-1, 2, dim)
        # fp32 SAIM on a half-precision UNet: compute in SAIM's dtype, add back in the UNet's
        mixed = self.attn(self.norm(frames.to(self.norm.weight.dtype))).to(hidden_states.dtype)
        mixed = mixed.view(rows // 2, tokens, 2, dim).permute(0, 2, 1, 3).reshape(rows, tokens, dim)
        return hidden_states + mixed


class BCM(nn.Module):
    """Background compensation: the reference tokens' MLP and the mixing scalar ``a`` (starts at 0)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.alpha = nn.Parameter(torch.zeros(()))

    def mix(self, own: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``(1 - a) * own + a * MLP(reference)``; both (rows, N, C)."""
        alpha = self.alpha
        mixed = (1 - alpha) * own.to(alpha.dtype) + alpha * self.mlp(reference.to(alpha.dtype))
        return mixed.to(own.dtype)


class DualAttnProcessor:
    """Attention processor carrying DualAnoDiff's modules for one attention layer of a transformer block.

    ``bcm`` (self-attention only): in "write" mode the layer's input is stored in the bank; in "read"
    mode rows ``2i`` (whole image) take keys/values from ``bcm.mix(own, bank[i % R])`` with R the number
    of stored references; part rows (odd) keep their own tokens. ``saim``: applied to the attention
    output (after the out projection, before the block's residual) unless ``state.saim`` is off or the
    pass is BCM's write pass. The attention itself is the processor the layer had before (SDPA on our
    path, classic attention on the reference path), so LoRA layers on ``to_q/to_k/to_v/to_out`` apply.
    """

    def __init__(self, name: str, state: DualState, inner=None, saim: SAIM | None = None, bcm: BCM | None = None) -> None:
        self.name, self.state, self.saim, self.bcm = name, state, saim, bcm
        self.inner = inner if inner is not None else AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        state = self.state
        if self.bcm is not None and encoder_hidden_states is None:
            if state.bcm == "write":
                state.bank[self.name] = hidden_states.detach()
            elif state.bcm == "read" and self.name in state.bank:
                encoder_hidden_states = self._kv_source(hidden_states, state.bank[self.name])
        out = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        if self.saim is not None and state.saim and state.bcm != "write":
            out = self.saim(out)
        return out

    def _kv_source(self, own: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        rows = own.shape[0]
        whole = torch.arange(0, rows, 2, device=own.device)
        reference = bank[(whole // 2) % bank.shape[0]]
        kv = own.clone()
        kv[whole] = self.bcm.mix(own[whole], reference)
        return kv


BCMAttnProcessor = DualAttnProcessor  # the self-attention processor (BCM + SAIM); kept name for callers

SAIM_PLACES = ("attention", "block")  # release: inside every attention processor; legacy: per block output


def transformer_blocks(unet: nn.Module) -> list[tuple[str, BasicTransformerBlock]]:
    """(name, block) for every ``BasicTransformerBlock`` of the UNet, in module order."""
    return [(name, mod) for name, mod in unet.named_modules() if isinstance(mod, BasicTransformerBlock)]


def _key(name: str) -> str:
    return name.replace(".", "__")


def _saim_keys(block: str, places: str) -> list[str]:
    return [_key(block)] if places == "block" else [f"{_key(block)}__attn1", f"{_key(block)}__attn2"]


class DualModules(ModelMixin, ConfigMixin):
    """All SAIM and BCM modules of one UNet, keyed by transformer-block (and attention-layer) name.

    Args:
        block_names: names of the UNet's ``BasicTransformerBlock`` modules.
        block_dims: their channel counts (C of the (rows, N, C) tokens).
        head_dim: SAIM attention head size (64 as in SD's own attention).
        saim_places: "attention" (the release: one SAIM in each of ``attn1`` and ``attn2`` of every block)
            or "block" (one per block output; concepts saved before the change have no such field).
    """

    config_name = "dual_modules_config.json"

    @register_to_config
    def __init__(self, block_names: list[str], block_dims: list[int], head_dim: int = 64, saim_places: str = "block") -> None:
        super().__init__()
        if saim_places not in SAIM_PLACES:
            raise ValueError(f"saim_places must be one of {SAIM_PLACES}, got {saim_places!r}")
        pairs = list(zip(block_names, block_dims, strict=True))
        self.saim = nn.ModuleDict({k: SAIM(d, head_dim) for n, d in pairs for k in _saim_keys(n, saim_places)})
        self.bcm = nn.ModuleDict({_key(n): BCM(d) for n, d in pairs})
        self.state = DualState()

    @classmethod
    def for_unet(cls, unet: nn.Module, head_dim: int = 64, saim_places: str = "attention") -> DualModules:
        """Fresh modules sized for ``unet`` (SAIM out-projection and BCM ``a`` are zero)."""
        blocks = transformer_blocks(unet)
        return cls([n for n, _ in blocks], [b.norm1.normalized_shape[0] for _, b in blocks], head_dim, saim_places)

    @contextlib.contextmanager
    def attached(self, unet: nn.Module) -> Iterator[DualState]:
        """Install the SAIM/BCM processors (and, for ``saim_places="block"``, block hooks) on ``unet``;
        restore the old processors on exit.

        Yields:
            the shared ``DualState``; set ``state.saim`` / ``state.bcm`` to switch the modules.
        """
        state, places = self.state, self.config.saim_places
        blocks = transformer_blocks(unet)
        missing = [n for n, _ in blocks if _key(n) not in self.bcm or any(k not in self.saim for k in _saim_keys(n, places))]
        if missing:
            raise ValueError(f"DualModules does not match this UNet (no modules for {missing[:3]} ...)")
        handles, old = [], []
        for name, block in blocks:
            old += [(block.attn1, block.attn1.processor), (block.attn2, block.attn2.processor)]
            in_attention = places == "attention"
            block.attn1.set_processor(DualAttnProcessor(
                name, state, block.attn1.processor, self.saim[f"{_key(name)}__attn1"] if in_attention else None,
                self.bcm[_key(name)]))
            if in_attention:
                block.attn2.set_processor(DualAttnProcessor(f"{name}.attn2", state, block.attn2.processor,
                                                            self.saim[f"{_key(name)}__attn2"]))
            else:
                handles.append(block.register_forward_hook(self._saim_hook(self.saim[_key(name)])))
        try:
            yield state
        finally:
            for handle in handles:
                handle.remove()
            for attn, processor in old:
                attn.set_processor(processor)
            state.bank.clear()
            state.bcm = "off"

    def _saim_hook(self, saim: SAIM):
        state = self.state

        def hook(module, args, output):
            if not state.saim or state.bcm == "write":
                return output
            return saim(output)

        return hook

    def place(self, device=None, dtype=None) -> DualModules:
        """Move/cast like ``nn.Module.to`` (ModelMixin.to warns about fp32 modules we do not have)."""
        return nn.Module.to(self, device=device, dtype=dtype)

    def saim_parameters(self) -> list[nn.Parameter]:
        return list(self.saim.parameters())

    def bcm_parameters(self) -> list[nn.Parameter]:
        return list(self.bcm.parameters())


class CrossAttnMapProcessor:
    """Cross-attention processor (``attn2``) that also records how much the chosen rows attend to the
    chosen prompt tokens (e.g. the part rows to "sks"); the output is that of the processor it wraps.

    Each call on a batch of ``batch`` rows (other calls, e.g. BCM's write pass, are not recorded) appends a
    (len(rows), N) map, the mean over heads and ``tokens`` of softmax(QK^T / sqrt(d)), to ``maps``.
    """

    def __init__(self, batch: int, rows: slice, tokens: list[int], maps: list[torch.Tensor], inner=None) -> None:
        self.batch, self.rows, self.tokens, self.maps = batch, rows, tokens, maps
        self.inner = inner if inner is not None else AttnProcessor2_0()  # e.g. SAIM's processor: kept

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is not None and hidden_states.shape[0] == self.batch:
            # project every row (per-row LoRA hooks need the full batch), then keep the chosen rows
            query = attn.head_to_batch_dim(attn.to_q(hidden_states)[self.rows])
            key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states)[self.rows])
            probs = attn.get_attention_scores(query, key)  # (rows * heads, N, 77)
            probs = probs[..., self.tokens].mean(-1).view(-1, attn.heads, probs.shape[1]).mean(1)
            self.maps.append(probs.float())
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)


@contextlib.contextmanager
def capture_cross_attention(unet: nn.Module, batch: int, rows: slice, tokens: list[int]) -> Iterator[list[torch.Tensor]]:
    """Record cross-attention maps of ``rows`` (of a ``batch``-row forward) to prompt positions ``tokens``
    in every transformer block.

    Yields:
        the list the maps are appended to: one (len(rows), N_block) tensor per block call.
    """
    maps: list[torch.Tensor] = []
    old = []
    for _, block in transformer_blocks(unet):
        old.append((block.attn2, block.attn2.processor))
        block.attn2.set_processor(CrossAttnMapProcessor(batch, rows, tokens, maps, block.attn2.processor))
    try:
        yield maps
    finally:
        for attn, processor in old:
            attn.set_processor(processor)


def average_map(maps: list[torch.Tensor], side: int) -> torch.Tensor:
    """Mean of square token maps resized to (side, side), scaled to [0, 1]: (rows, side, side)."""
    resized = []
    for m in maps:
        n = int(round(m.shape[-1] ** 0.5))
        resized.append(torch.nn.functional.interpolate(m.view(-1, 1, n, n), size=(side, side), mode="bilinear"))
    mean = torch.stack(resized).mean(0)[:, 0]
    low = mean.amin(dim=(1, 2), keepdim=True)
    high = mean.amax(dim=(1, 2), keepdim=True)
    return (mean - low) / (high - low).clamp_min(1e-12)
