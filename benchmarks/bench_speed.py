"""The speed settings side by side: each video adapter at its job file's size with full-size random weights,
eager bf16 against compile, compile + cache, compile + int8dq and compile + fp8; seconds per step, the clip
at the model's default steps, peak VRAM and the speed-up over eager bf16.

For one model per call it builds every module of the pipeline from ``<configs>/<slug>/``
(``shared/model-configs`` beside the repo by default) with random weights directly on the device (bf16; the
VAE in fp32 where the adapter keeps it so; the tokenizers are the tiny in-code ones), wraps it in the
adapter (:meth:`~i2v_dagster.models.diffusers_base.DiffusersAdapter.from_pipeline`) and, per row of the grid,
applies the row's settings through the adapter's own speed code (:mod:`i2v_dagster.models.speed`: the same
refusals, e.g. fp8 on a card without it) and runs the adapter's pipeline call at the job file's size on the
model's real schedule (its default steps), stopped after ``--warmup`` + ``--steps`` steps:

- ``s/step``: mean of the steps after the warm-up (a compiled row's build lands in its first steps, shown
  as "1st step s");
- ``s/clip``: prompt/image encoding + default steps x s/step + the VAE decode measured in the eager row;
  for the cache row (TaylorSeer, whose schedule of full and predicted steps does not depend on the weights)
  the full and the predicted steps are timed apart and counted over the default schedule. First Block Cache
  is left out: how often it skips depends on the trained model's residuals, which random weights do not
  have;
- ``peak GB``: ``torch.cuda.max_memory_allocated`` during the call (weights included).

Rows the card cannot run are listed with the reason (the adapter's refusal). The table and the settings
``auto`` picks on the card are appended to ``benchmarks/RESULTS.md``; ``--tiny`` (the tiny test configs at
their own sizes, e.g. ``--device cpu --tiny``) only prints: its figures say nothing about the real models.

    python benchmarks/bench_speed.py --models cogvideox_5b_i2v          # one model per call, on CUDA
    python benchmarks/bench_speed.py --device cpu --tiny                 # smoke test, every model

Imports neither Dagster nor anything outside ``i2v_dagster.models`` and the tiny test recipes; needs torch,
transformers, diffusers, torchao, pydantic, numpy, Pillow and PyYAML (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_video_adapters as video_bench  # noqa: E402  (puts the repo on sys.path)

from i2v_dagster.errors import AdapterError, ModelLoadError  # noqa: E402
from i2v_dagster.models import speed  # noqa: E402
from i2v_dagster.models._compat import ensure_torch_stack  # noqa: E402
from i2v_dagster.models.base import AdapterSettings, ClipRequest  # noqa: E402
from i2v_dagster.models.diffusers_base import torchao_config  # noqa: E402
from i2v_dagster.models.registry import get_adapter_info  # noqa: E402
from i2v_dagster_tests.models import tiny_video  # noqa: E402

MODELS = video_bench.MODELS
RESULTS = REPO / "benchmarks" / "RESULTS.md"
GB = 1e9
CACHE = "taylorseer"


@dataclass(frozen=True)
class Setting:
    label: str
    compile: str = "off"
    cache: str = "none"
    quantization: str = "none"


GRID = (
    Setting("eager"),
    Setting("compile", compile="on"),
    Setting(f"compile + {CACHE}", compile="on", cache=CACHE),
    Setting("compile + int8dq", compile="on", quantization="int8dq"),
    Setting("compile + fp8", compile="on", quantization="fp8"),
)


@dataclass
class Result:
    model: str
    setting: str
    attention: str = ""
    first_step_s: float | None = None
    per_step_s: float | None = None
    predicted_step_s: float | None = None
    full_steps: int | None = None
    default_steps: int = 0
    encode_s: float | None = None
    decode_s: float | None = None
    clip_s: float | None = None
    peak_gb: float | None = None
    speedup: float | None = None
    note: str = ""


class StepClock(video_bench.Timer):
    """The adapters benchmark's step timer that also stops the pipeline (``_interrupt``) after
    ``stop_after`` steps."""

    def __init__(self, torch, device: str, stop_after: int) -> None:
        super().__init__(torch, device)
        self.stop_after = stop_after

    def on_step_end(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:  # noqa: ARG002
        self.on_step(None)
        if len(self.ends) >= self.stop_after:
            pipe._interrupt = True
        return callback_kwargs

    @property
    def durations(self) -> list[float]:
        return [end - start for start, end in zip(self.starts, self.ends, strict=False)]


def build_pipeline(torch, name: str, configs: Path, *, device: str, dtype):
    """``name``'s pipeline from ``configs`` with random weights on ``device`` (VAE in fp32 where kept so)."""
    return video_bench.build_pipeline(torch, name, configs, device=device, dtype=dtype).to(device)


def fresh_transformer(torch, pipe, name: str, configs: Path, *, device: str, dtype):
    """Swap in a new random transformer (a quantized row leaves the old one quantized for good)."""
    entry = json.loads((configs / "components.json").read_text())["components"]["transformer"]
    cfg = json.loads((configs / entry["config"]).read_text())
    pipe.transformer = None
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    transformer = video_bench.build_module(torch, entry, cfg, device=device, dtype=dtype)
    pipe.register_modules(transformer=transformer)
    return transformer


def quantize_transformer(torch, transformer, quantization: str) -> None:
    """torchao's ``quantization`` on the transformer's ``nn.Linear`` layers, leaving out what diffusers'
    ``TorchAoConfig`` loading leaves out (the model's ``_keep_in_fp32_modules``)."""
    from torchao.quantization import quantize_

    keep = list(getattr(transformer, "_keep_in_fp32_modules", None) or [])

    def wanted(module, fqn: str) -> bool:
        return isinstance(module, torch.nn.Linear) and not any(f"{k}." in f"{fqn}." for k in keep)

    quantize_(transformer, torchao_config(quantization), filter_fn=wanted)


def clear_speed(pipe) -> None:
    """Undo a row: the transformer's cache hooks and compiled blocks."""
    transformer = pipe.transformer
    if getattr(transformer, "is_cache_enabled", False):
        transformer.disable_cache()
    for module in transformer.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None


def run_row(torch, adapter, setting: Setting, request: ClipRequest, args, *, decode: bool) -> Result:
    name = adapter.name
    cls = type(adapter)
    card = speed.card_of(torch.device(args.device))
    dtype = "bf16" if args.device.startswith("cuda") else "fp32"
    options = cls.Options.model_validate({"compile": setting.compile, "cache": setting.cache})
    result = Result(model=name, setting=setting.label, default_steps=cls.default_steps)
    speed.check_quantization(name, setting.quantization, card)
    fast = speed.plan_speed(
        name, options, card=card, dtype=dtype, quantization=setting.quantization,
        attention_masked=cls.attention_masked, fixed_attention=cls.Options.fixed_attention,
    )  # fmt: skip
    result.attention = fast.attention
    if setting.quantization != "none":
        quantize_transformer(torch, adapter.pipe.transformer, setting.quantization)
    adapter.apply_speed(fast)
    schedule = (
        speed.taylorseer_full_steps(cls.default_steps, fast.cache_interval)
        if fast.cache == "taylorseer"
        else [True] * cls.default_steps
    )
    stop = args.warmup + args.steps
    if fast.cache == "taylorseer":  # time two predicted steps after the warm-up (the first may pay set-up)
        predicted = [i for i, full in enumerate(schedule) if not full and i >= args.warmup]
        stop = max(stop, predicted[1] + 1)
    clock = StepClock(torch, args.device, stop)
    kwargs = adapter._pipeline_kwargs(
        request, cls.constraints_for(adapter.settings).generation_frames(request.num_frames)
    )
    kwargs.update(num_inference_steps=cls.default_steps, output_type="np" if decode else "latent")
    hook = adapter.pipe.transformer.register_forward_pre_hook(clock.pre_hook)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        adapter._call_pipeline(**kwargs, callback_on_step_end=clock.on_step_end)
        if cuda:
            torch.cuda.synchronize()
    finally:
        hook.remove()
    finished = time.perf_counter()
    durations = clock.durations
    measured = list(range(args.warmup, len(durations)))
    full = [durations[i] for i in measured if schedule[i]]
    predicted = [durations[i] for i in measured if not schedule[i]]
    result.first_step_s = durations[0]
    result.per_step_s = sum(full) / len(full) if full else None
    result.predicted_step_s = sum(predicted) / len(predicted) if predicted else None
    result.full_steps = sum(schedule)
    result.encode_s = clock.starts[0] - started
    result.decode_s = finished - clock.ends[-1] if decode else None
    result.peak_gb = torch.cuda.max_memory_allocated() / GB if cuda else None
    return result


def finish(results: list[Result]) -> None:
    """s/clip from each row's steps and the eager row's encode and decode; speed-up over eager."""
    eager = next((r for r in results if r.setting == GRID[0].label and r.per_step_s), None)
    for r in results:
        if r.per_step_s is None or eager is None:
            continue
        predicted = (r.default_steps - (r.full_steps or 0)) * (r.predicted_step_s or 0.0)
        r.clip_s = (
            (r.encode_s or 0.0) + (r.full_steps or 0) * r.per_step_s + predicted + (eager.decode_s or 0.0)
        )
    if eager is not None and eager.clip_s:
        for r in results:
            r.speedup = eager.clip_s / r.clip_s if r.clip_s else None


def table(results: list[Result]) -> str:
    def num(value, fmt="{:.2f}") -> str:
        return "n/a" if value is None else fmt.format(value)

    lines = [
        "| model | settings | attention | 1st step s | s/step | predicted step s | full steps "
        "| s/clip (est.) | peak GB | speed-up | note |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        steps = "n/a" if r.full_steps is None else f"{r.full_steps}/{r.default_steps}"
        lines.append(
            f"| {r.model} | {r.setting} | {r.attention or 'n/a'} | {num(r.first_step_s)} "
            f"| {num(r.per_step_s)} | {num(r.predicted_step_s)} | {steps} | {num(r.clip_s, '{:.1f}')} "
            f"| {num(r.peak_gb, '{:.1f}')} | {num(r.speedup, '{:.2f}x')} | {r.note} |"
        )
    return "\n".join(lines)


def auto_choice(torch, name: str, args, size) -> str:
    """What ``auto`` picks for ``name`` on this device (memory plan and speed settings)."""
    from i2v_dagster.models.memory import cuda_free_gb, plan_stage

    cls = get_adapter_info(name).cls
    device = torch.device(args.device)
    card = speed.card_of(device)
    width, height, frames = size
    if card.type == "cuda":
        plan = plan_stage(name, AdapterSettings(), width=width, height=height, frames=frames,
                          free_gb=cuda_free_gb(device))  # fmt: skip
        placement, dtype, offload = plan.placement.text(), plan.dtype, plan.placement.offload
    else:
        placement, dtype, offload = "fp32 on cpu", "fp32", "none"
    fast = speed.plan_speed(
        name, cls.Options(), card=card, dtype=dtype, offload=offload,
        attention_masked=cls.attention_masked, fixed_attention=cls.Options.fixed_attention,
    )  # fmt: skip
    return f"`auto` on {card.text} for {name}: {placement}; {fast.text()}"


def header(torch, args) -> str:
    import diffusers
    import torchao

    cuda = args.device.startswith("cuda")
    where = torch.cuda.get_device_name(args.device) if cuda else platform.processor() or "CPU"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"## {stamp}: speed settings on {where}\n\n"
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, torchao {torchao.__version__}; "
        f"random weights, {'each tiny model' if args.tiny else 'each job file'}'s size, the model's real "
        f"schedule stopped after {args.warmup} warm-up + {args.steps} timed steps, "
        f"`{' '.join(['python', *sys.argv])}`.\n"
        "s/clip (est.): encode + default steps x s/step (+ predicted steps x their time for the cache row) "
        "+ the eager row's VAE decode. Speed-up: the eager row's s/clip over the row's.\n"
    )


def bench_model(torch, name: str, configs: Path, args, began: float) -> tuple[list[Result], str]:
    cls = get_adapter_info(name).cls
    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    width, height, frames = tiny_video.TINY_SIZES[name] + (9,) if args.tiny else video_bench.job_size(name)
    if args.frames:
        frames = args.frames
    options = {"any_size": True} if args.tiny and cls.any_size_rule is not None else {}
    settings = AdapterSettings(device=args.device, options=options)
    started = time.perf_counter()
    pipe = build_pipeline(torch, name, configs, device=args.device, dtype=dtype)
    adapter = cls.from_pipeline(pipe, settings)
    print(f"{name}: built at {width}x{height}x{frames} in {time.perf_counter() - started:.0f} s", flush=True)
    from PIL import Image

    kept = min(frames, cls.constraints_for(settings).usable_frames)
    request = ClipRequest(
        image=Image.effect_noise((width, height), 64).convert("RGB"), num_frames=kept, width=width,
        height=height, prompt="a red car drives along a coast road at sunset", fps=cls.constraints.fps[0],
        seed=0,
    )  # fmt: skip
    results: list[Result] = []
    quantized = False  # the transformer in the pipeline is quantized (for good): the next row needs a new one
    card = speed.card_of(torch.device(args.device))
    for setting in GRID:
        if args.rows and setting.label not in args.rows:
            continue
        if time.perf_counter() - began > args.time_limit_s:
            note = f"skipped: past --time-limit-s {args.time_limit_s:.0f}"
            results.append(Result(name, setting.label, default_steps=cls.default_steps, note=note))
            continue
        try:
            speed.check_quantization(name, setting.quantization, card)
            clear_speed(adapter.pipe)
            if quantized:
                fresh_transformer(torch, adapter.pipe, name, configs, device=args.device, dtype=dtype)
            quantized = setting.quantization != "none"
            row = run_row(torch, adapter, setting, request, args, decode=setting is GRID[0])
        except (AdapterError, ModelLoadError) as exc:
            row = Result(name, setting.label, default_steps=cls.default_steps, note=f"refused: {exc}")
        results.append(row)
        print(
            f"  {setting.label}: {row.per_step_s and round(row.per_step_s, 3)} s/step {row.note}", flush=True
        )
    adapter.unload()
    del adapter, pipe
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    finish(results)
    return results, auto_choice(torch, name, args, (width, height, frames))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--rows", nargs="+", choices=[s.label for s in GRID], help="a subset of the grid")
    parser.add_argument("--steps", type=int, default=3, help="timed denoising steps per row")
    parser.add_argument(
        "--warmup", type=int, default=2, help="steps run before timing (a compiled row builds)"
    )
    parser.add_argument("--configs", type=Path, default=REPO.parent / "shared" / "model-configs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tiny test configs instead of --configs")
    parser.add_argument("--frames", type=int, help="frames per clip instead of each job file's")
    parser.add_argument("--time-limit-s", type=float, default=420.0, help="start no row past this")
    parser.add_argument("--results", type=Path, help=f"Markdown file the table goes to (default {RESULTS})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    ensure_torch_stack()
    import tempfile

    import torch
    import torch._dynamo

    limits = torch._dynamo.config  # every row compiles the same block classes again: keep them all
    for key in ("recompile_limit", "cache_size_limit"):
        if hasattr(limits, key):
            setattr(limits, key, max(getattr(limits, key), 64))

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device: pass --device cpu (with --tiny for a smoke test)")
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    began = time.perf_counter()
    results: list[Result] = []
    autos: list[str] = []
    with tempfile.TemporaryDirectory(prefix="i2v-speed-") as scratch:
        root = tiny_video.write_tiny_configs(Path(scratch)) if args.tiny else args.configs
        for name in args.models:
            rows, auto = bench_model(torch, name, root / tiny_video.RECIPES[name].slug, args, began)
            results += rows
            autos.append(auto)
    report = header(torch, args) + "\n" + table(results) + "\n\n" + "\n".join(f"- {a}" for a in autos) + "\n"
    print("\n" + report)
    print(f"total {time.perf_counter() - began:.0f} s")
    target = args.results or (None if args.tiny else RESULTS)
    if target is None:
        print(f"(--tiny: not written to {RESULTS}; pass --results to keep it)")
        return
    new = not target.exists()
    with target.open("a") as out:
        out.write(("# Video adapter benchmarks\n\n" if new else "\n") + report)
    print(f"appended to {target}")


if __name__ == "__main__":
    main()
