"""The four video adapters at full size with random weights: load seconds, seconds per step and peak VRAM
next to the memory planner's estimate.

For each model it builds every module of the pipeline (transformer, VAE, text encoders) from
``<configs>/<slug>/`` (``shared/model-configs`` beside the repo by default) with random weights, created
directly on the device in bf16 (the VAE in fp32 where the adapter keeps it so), saves the pipeline in the
real repo's layout (``i2v_dagster_tests/models/layouts``: the same folders, shard counts and tokenizer
file formats; the tokenizers are the tiny in-code ones, so the encoders see valid ids), frees it, and
loads that folder through the adapter's own ``load()`` (``from_pretrained``, the memory planner on the
card's free memory, quantization, placement). Then one clip of ``--steps`` denoising steps at the size and
frame count of the model's job file (``jobs/<adapter>.yaml``) through the adapter's ``generate()``.

Per model it prints, and appends to ``benchmarks/RESULTS.md``: the placement the planner chose, build +
save seconds, load seconds, seconds per denoising step (mean of the steps after the first when there are
several), prompt + image encoding, VAE decode, the weights resident after loading and the peak
(``torch.cuda.max_memory_allocated`` from load to the decoded clip) next to the planner's estimates.

    python benchmarks/bench_video_adapters.py --models wan22_ti2v_5b            # one model per call
    python benchmarks/bench_video_adapters.py --models cogvideox_5b_i2v --quantization int8wo --steps 3
    python benchmarks/bench_video_adapters.py --device cpu --tiny              # smoke test, every model

A call stops starting models once ``--time-limit-s`` (540 s) would be passed, so each call ends within
10 minutes when one model fits in that time; run the larger models one per call. ``--tiny`` uses the tiny
test configs at their own sizes and only prints: its figures say nothing about the real models.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tiny configs, tokenizers and layouts live in the test package

import yaml  # noqa: E402

from i2v_dagster.models._compat import ensure_torch_stack  # noqa: E402
from i2v_dagster.models.base import AdapterSettings, ClipRequest  # noqa: E402
from i2v_dagster.models.registry import get_adapter_info  # noqa: E402
from i2v_dagster_tests.models import real_layout, tiny_video  # noqa: E402

MODELS = ("cogvideox_5b_i2v", "cogvideox15_5b_i2v", "wan22_ti2v_5b", "hunyuan_i2v")
RESULTS = REPO / "benchmarks" / "RESULTS.md"
GB = 1e9


@dataclass
class Row:
    model: str
    placement: str
    size: str
    frames: int
    steps: int
    build_s: float
    load_s: float
    first_step_s: float
    per_step_s: float
    encode_s: float
    decode_s: float
    weights_gb: float | None
    peak_gb: float | None
    planned_weights_gb: float | None
    planned_peak_gb: float | None
    nan_frames: int


def job_size(name: str) -> tuple[int, int, int]:
    """(width, height, frames per clip) of ``jobs/<name>.yaml``."""
    config = yaml.safe_load((REPO / "jobs" / f"{name}.yaml").read_text())["ops"]["script"]["config"]
    return int(config["width"]), int(config["height"]), int(config["max_clip_frames"])


def build_module(torch, entry: dict, cfg: dict, *, device: str, dtype):
    """One module with random weights, created on ``device`` in ``dtype`` (no fp32 copy on the way)."""
    torch.manual_seed(0)
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            module = tiny_video.build_module(entry["library"], entry["class"], cfg)
    finally:
        torch.set_default_dtype(torch.float32)
    # the dtype layout a bf16 checkpoint load gives: diffusers keeps its _keep_in_fp32_modules in fp32,
    # transformers does so only for fp16
    keep = (getattr(module, "_keep_in_fp32_modules", None) or []) if entry["library"] == "diffusers" else []
    for name, tensor in module.state_dict(keep_vars=True).items():
        if tensor.is_floating_point():
            tensor.data = tensor.data.to(torch.float32 if any(k in name.split(".") for k in keep) else dtype)
    return module.eval().requires_grad_(False)


def fit_to_tokenizers(cfg: dict, tokenizers: dict) -> dict:
    """Llava reads ``<image>`` and padding by id: point them at the in-code Llama tokenizer's ids."""
    if cfg.get("model_type") == "llava":
        tok = tokenizers["tokenizer"]
        cfg = {
            **cfg,
            "image_token_index": tok.convert_tokens_to_ids("<image>"),
            "pad_token_id": tok.pad_token_id,
        }
    return cfg


def build_pipeline(torch, name: str, configs: Path, *, device: str, dtype):
    """``name``'s pipeline from ``configs`` with random weights, built on ``device`` in ``dtype`` (the VAE
    in fp32 where the adapter keeps it so)."""
    cls = get_adapter_info(name).cls
    recipe = tiny_video.RECIPES[name]
    components = json.loads((configs / "components.json").read_text())["components"]
    tokenizers = {k: make() for k, make in recipe.tokenizers.items()}
    modules = {}
    for module, entry in components.items():
        cfg = fit_to_tokenizers(json.loads((configs / entry["config"]).read_text()), tokenizers)
        module_dtype = torch.float32 if module == "vae" and cls.vae_fp32 else dtype
        modules[module] = build_module(torch, entry, cfg, device=device, dtype=module_dtype)
    return tiny_video.assemble_pipeline(name, modules, tokenizers)


def save_real_layout(torch, name: str, configs: Path, folder: Path, *, device: str) -> None:
    """Build ``name``'s pipeline from ``configs`` with random weights and save it in the repo's layout."""
    pipe = build_pipeline(torch, name, configs, device=device, dtype=torch.bfloat16)
    real_layout.write_pipeline_layout(name, pipe, folder)
    del pipe


class Timer:
    """Synchronised timestamps: each step's first transformer call, and each step's end."""

    def __init__(self, torch, device: str) -> None:
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        self.starts: list[float] = []
        self.ends: list[float] = []
        self._in_step = False

    def pre_hook(self, module, args) -> None:  # noqa: ARG002 - forward pre-hook signature
        if not self._in_step:
            self.sync()
            self.starts.append(time.perf_counter())
            self._in_step = True

    def on_step(self, progress) -> None:  # noqa: ARG002
        self.sync()
        self.ends.append(time.perf_counter())
        self._in_step = False


def free(torch, cuda: bool) -> None:
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()


def measure(torch, name: str, configs: Path, scratch: Path, args, size) -> Row:
    cls = get_adapter_info(name).cls
    device = args.device
    cuda = device.startswith("cuda")
    width, height, frames = size
    folder = scratch / name
    started = time.perf_counter()
    save_real_layout(torch, name, configs, folder, device=device)
    free(torch, cuda)
    build_s = time.perf_counter() - started

    options: dict = {"plan_size": [width, height, frames]}
    if args.tiny and cls.any_size_rule is not None:
        options["any_size"] = True  # the tiny models run at their own small sizes
    settings = AdapterSettings(
        model=str(folder), device=device, quantization=args.quantization, num_inference_steps=args.steps,
        options=options,
    )  # fmt: skip
    adapter = cls(settings)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    adapter.load()
    load_s = time.perf_counter() - started
    weights = torch.cuda.memory_allocated() / GB if cuda else None
    plan = adapter.plan
    timer = Timer(torch, device)
    hook = adapter.pipe.transformer.register_forward_pre_hook(timer.pre_hook)

    from PIL import Image

    image = Image.effect_noise((width, height), 64).convert("RGB")
    kept = min(frames, cls.constraints_for(settings).usable_frames)
    request = ClipRequest(
        image=image, prompt="a red car drives along a coast road at sunset", num_frames=kept,
        width=width, height=height, fps=cls.constraints.fps[0], seed=0, on_step=timer.on_step,
    )  # fmt: skip
    started = time.perf_counter()
    clip = adapter.generate(request)
    finished = time.perf_counter()
    hook.remove()
    peak = torch.cuda.max_memory_allocated() / GB if cuda else None

    durations = [end - start for start, end in zip(timer.starts, timer.ends, strict=True)]
    per_step = sum(durations[1:]) / (len(durations) - 1) if len(durations) > 1 else durations[0]
    adapter.unload()
    del adapter
    free(torch, cuda)
    shutil.rmtree(folder, ignore_errors=True)
    return Row(
        model=name, placement=plan.placement.text(plan.device), size=f"{width}x{height}",
        frames=clip.generated_frames, steps=args.steps, build_s=build_s, load_s=load_s,
        first_step_s=durations[0], per_step_s=per_step, encode_s=timer.starts[0] - started,
        decode_s=finished - timer.ends[-1], weights_gb=weights, peak_gb=peak,
        planned_weights_gb=plan.weights_gb if cuda else None, planned_peak_gb=plan.peak_gb if cuda else None,
        nan_frames=len(clip.nan_frames),
    )  # fmt: skip


def table(rows: list[Row]) -> str:
    def gb(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    lines = [
        "| model | placement (planner) | size | frames | steps | build+save s | load s | 1st step s | s/step "
        "| encode s | decode s | weights GB (est.) | peak GB (est.) | NaN frames |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.placement} | {r.size} | {r.frames} | {r.steps} | {r.build_s:.1f} "
            f"| {r.load_s:.1f} | {r.first_step_s:.2f} | {r.per_step_s:.2f} | {r.encode_s:.2f} "
            f"| {r.decode_s:.2f} | {gb(r.weights_gb)} ({gb(r.planned_weights_gb)}) "
            f"| {gb(r.peak_gb)} ({gb(r.planned_peak_gb)}) | {r.nan_frames} |"
        )
    return "\n".join(lines)


def header(torch, device: str, steps: int, *, tiny: bool) -> str:
    import diffusers

    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "CPU"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"## {stamp}: {where}\n\n"
        f"torch {torch.__version__}, diffusers {diffusers.__version__}; random weights saved in each repo's "
        f"layout and loaded through the adapter, {steps} denoising steps at "
        f"{'each tiny model' if tiny else 'each job file'}'s size, "
        f"`{' '.join(['python', *sys.argv])}`.\n"
        "est.: the memory planner's estimate for the same placement and size. NaN frames: frames with "
        "NaN/inf pixels (random weights can overflow; a real checkpoint may not).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--quantization", choices=("auto", "none", "int8wo"), default="auto",
        help="auto: the memory planner's choice for this card",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=2, help="denoising steps to run per clip")
    parser.add_argument("--configs", type=Path, default=REPO.parent / "shared" / "model-configs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tiny test configs instead of --configs")
    parser.add_argument("--size", help="WIDTHxHEIGHT instead of each job file's size")
    parser.add_argument("--frames", type=int, help="frames per clip instead of each job file's")
    parser.add_argument("--scratch", type=Path, help="folder for the saved models (default: a temp folder)")
    parser.add_argument("--time-limit-s", type=float, default=540.0, help="start no model past this")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Markdown file the table goes to")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    ensure_torch_stack()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device: pass --device cpu (with --tiny for a smoke test)")
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    began = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="i2v-bench-", dir=args.scratch) as scratch:
        root = tiny_video.write_tiny_configs(Path(scratch) / "configs") if args.tiny else args.configs
        longest = 0.0
        for name in args.models:
            elapsed = time.perf_counter() - began
            if rows and elapsed + longest > args.time_limit_s:
                print(
                    f"skipped {name}: {elapsed:.0f} s spent, the last model took {longest:.0f} s", flush=True
                )
                continue
            width, height, frames = tiny_video.TINY_SIZES[name] + (9,) if args.tiny else job_size(name)
            if args.size:
                width, height = (int(v) for v in args.size.lower().split("x"))
            frames = args.frames or frames
            started = time.perf_counter()
            row = measure(torch, name, root / tiny_video.RECIPES[name].slug, Path(scratch), args,
                          (width, height, frames))  # fmt: skip
            longest = max(longest, time.perf_counter() - started)
            print(table([row]).splitlines()[-1], flush=True)
            rows.append(row)
    report = header(torch, args.device, args.steps, tiny=args.tiny) + "\n" + table(rows) + "\n"
    print("\n" + report)
    print(f"total {time.perf_counter() - began:.0f} s")
    if args.tiny:
        print(f"(--tiny: not written to {args.results})")
        return
    new = not args.results.exists()
    with args.results.open("a") as out:
        out.write(("# Video adapter benchmarks\n\n" if new else "\n") + report)
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
