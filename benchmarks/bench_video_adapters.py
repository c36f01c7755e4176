"""Speed and memory of the four video adapters at full size, with random weights (no download).

For each model it builds every module of the pipeline (transformer, VAE, text encoders) from
``<configs>/<slug>/`` (``shared/model-configs`` beside the repo by default) with random weights, created
directly on the device in bf16 (the VAE in fp32 where the adapter keeps it so), assembles the real
diffusers pipeline with the tiny in-code tokenizers (the encoders see valid ids; speed does not depend on
the words), wraps it in the adapter (``from_pipeline``) and makes one clip of ``--steps`` denoising steps
at the model's native size and frame count through the adapter's own ``generate()``. Precisions: ``bf16``,
and ``int8wo`` (the transformer in torchao int8 weight-only, as ``quantization: int8wo`` loads it).

Per model and precision it prints, and appends to ``benchmarks/RESULTS.md``: seconds per denoising step
(mean of the steps after the first when there are several), prompt + image encoding, VAE decode,
seconds per clip at the adapter's default step count (steps x per-step + encoding + decode), the
weights' memory and peak memory (``torch.cuda.max_memory_allocated``). Timings synchronise CUDA at each
step's first transformer call and at each step's end.

    python benchmarks/bench_video_adapters.py                    # CUDA, every model, bf16 and int8wo
    python benchmarks/bench_video_adapters.py --models wan22_ti2v_5b --steps 3 --precisions bf16
    python benchmarks/bench_video_adapters.py --device cpu --tiny  # smoke test of the same code path

``--tiny`` uses the tiny test configs (``i2v_dagster_tests/models/tiny_video.py``) at their own sizes and
prints only: its figures say nothing about the real models, so they are not written to RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tiny configs and tokenizers live in the test package

from i2v_dagster.models._compat import ensure_torch_stack  # noqa: E402
from i2v_dagster.models.base import AdapterSettings, ClipRequest  # noqa: E402
from i2v_dagster.models.registry import get_adapter_info  # noqa: E402
from i2v_dagster_tests.models import tiny_video  # noqa: E402

MODELS = ("cogvideox_5b_i2v", "cogvideox15_5b_i2v", "wan22_ti2v_5b", "hunyuan_i2v")
NATIVE = {  # (width, height, frames) each model was trained for
    "cogvideox_5b_i2v": (720, 480, 49),
    "cogvideox15_5b_i2v": (1360, 768, 81),
    "wan22_ti2v_5b": (1280, 704, 121),
    "hunyuan_i2v": (1280, 720, 129),
}
RESULTS = REPO / "benchmarks" / "RESULTS.md"
GB = 1e9


@dataclass
class Row:
    model: str
    precision: str
    size: str
    frames: int
    steps: int
    first_step_s: float
    per_step_s: float
    encode_s: float
    decode_s: float
    clip_s: float
    default_steps: int
    weights_gb: float | None
    peak_gb: float | None
    nan_frames: int


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


def int8_weight_only(torch, transformer) -> None:
    """torchao int8 weight-only on the transformer's Linear layers but its fp32 modules, as loading does."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    keep = set(getattr(transformer, "_keep_in_fp32_modules", None) or [])

    def wanted(module, fqn: str) -> bool:
        return isinstance(module, torch.nn.Linear) and not keep.intersection(fqn.split("."))

    quantize_(transformer, Int8WeightOnlyConfig(), filter_fn=wanted)


def build_pipeline(torch, name: str, folder: Path, *, device: str, precision: str):
    cls = get_adapter_info(name).cls
    recipe = tiny_video.RECIPES[name]
    components = json.loads((folder / "components.json").read_text())["components"]
    tokenizers = {k: make() for k, make in recipe.tokenizers.items()}
    modules = {}
    for module, entry in components.items():
        cfg = fit_to_tokenizers(json.loads((folder / entry["config"]).read_text()), tokenizers)
        dtype = torch.float32 if module == "vae" and cls.vae_fp32 else torch.bfloat16
        modules[module] = build_module(torch, entry, cfg, device=device, dtype=dtype)
    if precision == "int8wo":
        int8_weight_only(torch, modules["transformer"])
    return tiny_video.assemble_pipeline(name, modules, tokenizers)


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


def measure(
    torch, name: str, folder: Path, *, device: str, precision: str, steps: int, tiny: bool, size, frames
) -> Row:
    cls = get_adapter_info(name).cls
    cuda = device.startswith("cuda")
    width, height = size or (tiny_video.TINY_SIZES[name] if tiny else NATIVE[name][:2])
    frames = frames or (9 if tiny else NATIVE[name][2])
    pipe = build_pipeline(torch, name, folder, device=device, precision=precision)
    pipe.to(device)
    weights = torch.cuda.memory_allocated() / GB if cuda else None
    adapter = cls.from_pipeline(pipe, AdapterSettings(num_inference_steps=steps, device=device))
    timer = Timer(torch, device)
    hook = pipe.transformer.register_forward_pre_hook(timer.pre_hook)

    from PIL import Image

    image = Image.effect_noise((width, height), 64).convert("RGB")
    kept = min(frames, cls.constraints_for(adapter.settings).usable_frames)
    request = ClipRequest(
        image=image, prompt="a red car drives along a coast road at sunset", num_frames=kept,
        width=width, height=height, fps=cls.constraints.fps[0], seed=0, on_step=timer.on_step,
    )  # fmt: skip
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    clip = adapter.generate(request)
    finished = time.perf_counter()
    hook.remove()
    peak = torch.cuda.max_memory_allocated() / GB if cuda else None

    durations = [end - start for start, end in zip(timer.starts, timer.ends, strict=True)]
    per_step = sum(durations[1:]) / (len(durations) - 1) if len(durations) > 1 else durations[0]
    encode = timer.starts[0] - started
    decode = finished - timer.ends[-1]
    adapter.unload()
    del pipe, adapter
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return Row(
        model=name, precision=precision, size=f"{width}x{height}", frames=clip.generated_frames, steps=steps,
        first_step_s=durations[0], per_step_s=per_step, encode_s=encode, decode_s=decode,
        clip_s=cls.default_steps * per_step + encode + decode, default_steps=cls.default_steps,
        weights_gb=weights, peak_gb=peak, nan_frames=len(clip.nan_frames),
    )  # fmt: skip


def table(rows: list[Row]) -> str:
    def gb(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    lines = [
        "| model | precision | size | frames | steps run | 1st step s | s/step | encode s | decode s "
        "| s/clip (default steps) | weights GB | peak GB | NaN frames |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.precision} | {r.size} | {r.frames} | {r.steps} | {r.first_step_s:.2f} "
            f"| {r.per_step_s:.2f} | {r.encode_s:.2f} | {r.decode_s:.2f} "
            f"| {r.clip_s:.1f} ({r.default_steps}) | {gb(r.weights_gb)} | {gb(r.peak_gb)} | {r.nan_frames} |"
        )
    return "\n".join(lines)


def header(torch, device: str, steps: int) -> str:
    import diffusers

    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "CPU"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"## {stamp}: {where}\n\n"
        f"torch {torch.__version__}, diffusers {diffusers.__version__}; random weights, {steps} denoising "
        f"steps per clip measured, `{' '.join(['python', *sys.argv])}`.\n"
        f"NaN frames: frames with NaN/inf pixels (random weights can overflow; a real checkpoint may not).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--precisions", nargs="+", choices=("bf16", "int8wo"), default=["bf16", "int8wo"])
    parser.add_argument("--steps", type=int, default=2, help="denoising steps to run per clip")
    parser.add_argument("--configs", type=Path, default=REPO.parent / "shared" / "model-configs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tiny test configs instead of --configs")
    parser.add_argument("--size", help="WIDTHxHEIGHT instead of each model's native size")
    parser.add_argument("--frames", type=int, help="frames per clip instead of each model's native count")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="Markdown file the table is appended to"
    )
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    ensure_torch_stack()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device: pass --device cpu (with --tiny for a smoke test)")
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    with tempfile.TemporaryDirectory(prefix="i2v-tiny-configs-") as scratch:
        root = tiny_video.write_tiny_configs(scratch) if args.tiny else args.configs
        rows = []
        for name in args.models:
            folder = root / tiny_video.RECIPES[name].slug
            for precision in args.precisions:
                row = measure(
                    torch, name, folder, device=args.device, precision=precision, steps=args.steps,
                    tiny=args.tiny, size=size, frames=args.frames,
                )  # fmt: skip
                print(table([row]).splitlines()[-1], flush=True)
                rows.append(row)
    report = header(torch, args.device, args.steps) + "\n" + table(rows) + "\n"
    print("\n" + report)
    if args.tiny:
        print(f"(--tiny: not written to {args.results})")
        return
    new = not args.results.exists()
    with args.results.open("a") as out:
        out.write(("# Video adapter benchmarks\n\n" if new else "\n") + report)
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
