"""CLI group ``anogen-data concepts``: learn defect concepts from the index's few real anomalies.

``concepts learn --method anogen`` runs AnoGen's masked textual inversion (Gui et al., ECCV 2024);
``--method dualanodiff`` the dual LoRA of DualAnoDiff (Jin et al., CVPR 2025). Methods are looked up
in ``anogen_data.stages.learn.LEARNERS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from anogen_data.cli.app import DeviceOpt, DtypeOpt, ForceOpt, OutOpt, ParamsOpt, SeedOpt, Typer, app, say
from anogen_data.cli.choices import Method, value
from anogen_data.config import LearnConfig

concepts_app = Typer(
    help="Learn one concept per defect type (AnoGen token, DualAnoDiff LoRA) from the learn shots.",
    no_args_is_help=True,
)
app.add_typer(concepts_app, name="concepts")


@concepts_app.command("learn", defaults=LearnConfig)
def learn_command(
    index: Annotated[Path, typer.Option("--index", help="index.jsonl from `anogen-data index` (role 'learn' shots).")],
    out: OutOpt,
    method: Annotated[Optional[Method], typer.Option("--method", help="anogen: textual inversion (ECCV 2024); dualanodiff: dual LoRA (CVPR 2025).")] = None,
    model: Annotated[
        Optional[str], typer.Option("--model", help="Hub id, local diffusers folder, or 'tiny' (random, CPU tests).")
    ] = None,
    defect: Annotated[Optional[str], typer.Option("--defect", help="Learn only this defect type.")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Training steps (sets <method>_steps).")] = None,
    shots: Annotated[Optional[int], typer.Option("--shots", min=0, help="0: all learn shots; k: k random (AnoGen: 3).")] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    seed: SeedOpt = None,
    params: ParamsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Learn each defect type of the index as a concept; writes OUT/<defect_type>/ and OUT/config.json.

    Usage:

      anogen-data concepts learn --method anogen --index runs/bottle/index/index.jsonl --out runs/bottle/concepts

      anogen-data concepts learn --method anogen --index runs/demo/index/index.jsonl --out runs/demo/concepts --model tiny --steps 30

      anogen-data concepts learn --method anogen --index idx.jsonl --out c --model /models/sd15 --shots 3 --dtype bf16

      anogen-data concepts learn --method dualanodiff --index runs/demo/index/index.jsonl --out runs/demo/dual --model tiny --steps 20
    """
    from anogen_data.config import resolve_config
    from anogen_data.stages.learn import LEARNERS, run_learn

    overrides = {"method": value(method), "model": model, "defect": defect, "shots": shots, "device": device,
                 "dtype": dtype, "seed": seed}
    config = resolve_config(LearnConfig, params, "learn", overrides)
    if config.method not in LEARNERS:
        raise typer.BadParameter(f"'{config.method}' is not one of {', '.join(sorted(LEARNERS))}", param_hint="--method")
    if steps is not None:
        config = resolve_config(LearnConfig, params, "learn", {**overrides, f"{config.method}_steps": steps})
    path = run_learn(config, index, out, force=force)
    say(f"wrote {path}")
