"""CLIP prompt-fidelity scorer (open_clip): cosine similarity of each image to its prompt, per model.

Options (``models.scorer.options``, validated by :class:`ClipOptions`):

- ``models``: open_clip architectures to score with (default ``["ViT-B-32", "ViT-L-14"]``); each one is a
  key of :attr:`Scores.per_model`.
- ``pretrained``: the weights, one value for every model or a mapping model -> value. A value is an
  open_clip tag (default ``openai``), a weights file (``.safetensors``, ``.bin``, ``.pt``), or a folder
  holding ``open_clip_config.json`` and a weights file (a hub snapshot of the model's repo).
- ``model_configs``: extra architecture JSON files (or folders of them), registered with
  ``open_clip.add_model_config``; a file's stem is the architecture's name.
- ``batch_size``: images per forward pass (default 16).

``settings.model`` (a weights file or folder) sets the weights when ``models`` lists exactly one model.

Settings: ``device`` ``auto`` is CUDA when present; ``dtype`` ``auto`` is fp16 on CUDA and fp32 on CPU;
``quantization`` is not used (``auto`` and ``none`` load plain weights; other values are logged, then
ignored).

A tag's weights come from the Hugging Face cache (``settings.cache_dir``, else ``HF_HUB_CACHE``, else
``HF_HOME/hub``). With ``HF_HUB_OFFLINE`` set nothing is downloaded: missing weights raise
:class:`~i2v_dagster.errors.ScorerUnavailableError` naming the model and where it looked. No score is ever
made up. :func:`scorer_availability` gives the same reason without loading anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from i2v_dagster.errors import AdapterError, ModelLoadError, ScorerUnavailableError
from i2v_dagster.models._torch import dtype_setting, free_memory, hub_offline, resolve_device, resolve_dtype
from i2v_dagster.models.base import AdapterOptions, AdapterSettings, Scorer, Scores, parse_options

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_MODELS: tuple[str, ...] = ("ViT-B-32", "ViT-L-14")
DEFAULT_PRETRAINED = "openai"
DEFAULT_BATCH_SIZE = 16
CONFIG_NAME = "open_clip_config.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"
TORCH_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
Source = Annotated[str, Field(min_length=1, max_length=1_000)]


class ClipOptions(AdapterOptions):
    """``models.scorer.options`` of ``clip``."""

    models: list[Name] = Field(
        default_factory=lambda: list(DEFAULT_MODELS),
        min_length=1,
        max_length=8,
        description="open_clip architectures to score with (each a key of the scores); one name alone "
        "stands for a list of one.",
    )
    pretrained: str | dict[str, str] = Field(
        DEFAULT_PRETRAINED,
        description="The weights: an open_clip tag, a weights file or a folder (open_clip_config.json + "
        "weights), for every model, or a mapping model -> value.",
    )
    model_configs: list[Source] = Field(
        default_factory=list,
        max_length=100,
        description="Extra architecture JSON files (or folders of them) registered with open_clip; a file's "
        "stem is the architecture's name. One path alone stands for a list of one.",
    )
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=1_024, description="Images per forward pass.")

    @field_validator("pretrained", mode="before")
    @classmethod
    def _tag_path_or_mapping(cls, value: Any) -> Any:
        values = list(value.values()) if isinstance(value, dict) else [value]
        if not (isinstance(value, str | dict) and all(isinstance(v, str) and v.strip() for v in values)):
            raise PydanticCustomError(
                "pretrained", "takes an open_clip tag, a path, or a mapping model -> tag or path (not empty)"
            )
        return value

    @field_validator("models", "model_configs", mode="before")
    @classmethod
    def _one_is_a_list_of_one(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else [] if value is None else value


@dataclass(frozen=True)
class WeightsPlan:
    """Where one model's weights are, or why they cannot be used."""

    model: str
    """Architecture name (the key in ``Scores.per_model``)."""
    pretrained: str
    """The configured value: a tag, a file or a folder."""
    kind: Literal["tag", "file", "folder"]
    path: str | None = None
    """The weights file (tag, file) or folder on disk; None while a tag's weights are not cached."""
    repo_id: str | None = None
    filenames: tuple[str, ...] = ()
    """Hub files that hold a tag's weights, preferred first."""
    cache_dir: str | None = None
    quick_gelu: bool = False
    preprocess: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    """Why the weights cannot be loaded; None when they can (on disk, or downloadable)."""


@dataclass
class LoadedClip:
    """One loaded open_clip model with its image transform and tokenizer."""

    model: Any
    preprocess: Any
    tokenizer: Any


class LoadedModels(dict[str, LoadedClip]):
    """Model name -> loaded model, in the configured order (a dict that can be weakly referenced)."""


def hub_cache_dir(settings: AdapterSettings) -> Path:
    """The Hugging Face hub cache this scorer reads (and downloads into, when online)."""
    if settings.cache_dir:
        return Path(settings.cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def clip_options(settings: AdapterSettings) -> ClipOptions:
    return parse_options(ClipOptions, "clip", settings.options)


def configured_models(settings: AdapterSettings) -> dict[str, str]:
    """Model name -> configured weights (tag, file or folder), from the settings; no imports."""
    opts = clip_options(settings)
    names = list(opts.models)
    pretrained = opts.pretrained
    if isinstance(pretrained, Mapping):
        unknown = sorted(set(pretrained) - set(names))
        if unknown:
            raise AdapterError(
                f"clip: options.pretrained names {', '.join(unknown)}, "
                f"not in options.models ({', '.join(names)})"
            )
        chosen = {n: str(pretrained.get(n, DEFAULT_PRETRAINED)) for n in names}
    else:
        chosen = dict.fromkeys(names, pretrained)
    if settings.model:
        if len(names) != 1:
            raise AdapterError(
                f"clip: model={settings.model!r} gives one weights source but options.models lists "
                f"{len(names)} models ({', '.join(names)}); "
                "list one model, or set options.pretrained per model"
            )
        chosen = {names[0]: settings.model}
    return chosen


def _looks_like_path(value: str) -> bool:
    return (
        "/" in value
        or "\\" in value
        or value.startswith(("~", "."))
        or value.lower().endswith(WEIGHT_SUFFIXES)
    )


def register_model_configs(paths: Any) -> None:
    """Register extra architecture JSON files or folders with open_clip (once per changed config)."""
    import json

    import open_clip

    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths or [])
    for item in items:
        path = Path(item).expanduser()
        if not path.exists():
            raise AdapterError(f"clip: options.model_configs: not found: {path}")
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            wanted = json.loads(file.read_text(encoding="utf-8"))
            if not all(key in wanted for key in ("embed_dim", "vision_cfg", "text_cfg")):
                raise AdapterError(
                    f"clip: {file} is not an open_clip model config (embed_dim, vision_cfg, text_cfg)"
                )
            if open_clip.get_model_config(file.stem) != wanted:
                open_clip.add_model_config(file)


def _hub_candidates(hf_hub: str) -> tuple[str, tuple[str, ...]]:
    repo_id, filename = os.path.split(hf_hub)  # "org/repo/" or "org/repo/file"
    if not filename or filename == TORCH_WEIGHTS_NAME:
        return repo_id, (SAFE_WEIGHTS_NAME, TORCH_WEIGHTS_NAME)
    if filename.endswith((".bin", ".pth")):
        return repo_id, (filename[:-4] + ".safetensors", filename)
    return repo_id, (filename,)


def _find_cached(repo_id: str, filenames: tuple[str, ...], cache_dir: Path) -> str | None:
    """A cached copy of the first of ``filenames`` found: at ``main``, else in any snapshot (pinned)."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache_dir))
        if isinstance(cached, str) and Path(cached).is_file():
            return cached
    snapshots = cache_dir / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    for filename in filenames:
        found = sorted(snapshots.glob(f"*/{filename}"), key=lambda p: p.stat().st_mtime, reverse=True)
        if found and found[0].is_file():
            return str(found[0])
    return None


def _plan_tag(name: str, tag: str, cache_dir: Path) -> WeightsPlan:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise AdapterError(
            f"clip: pretrained {tag!r} is neither a file, a folder nor an open_clip tag of {name} "
            f"(tags: {known})"
        )
    common: dict[str, Any] = {
        "model": name,
        "pretrained": tag,
        "kind": "tag",
        "cache_dir": str(cache_dir),
        "quick_gelu": bool(cfg.get("quick_gelu", False)),
        "preprocess": {k: cfg[k] for k in _PREPROCESS_KEYS if k in cfg},
    }
    if not cfg.get("hf_hub"):
        return WeightsPlan(
            **common,
            problem=f"{name} (pretrained {tag!r}): the tag has no Hugging Face file; "
            "give a weights file instead",
        )
    repo_id, filenames = _hub_candidates(cfg["hf_hub"])
    cached = _find_cached(repo_id, filenames, cache_dir)
    if cached is not None:
        return WeightsPlan(**common, path=cached, repo_id=repo_id, filenames=filenames)
    problem = None
    if hub_offline():
        problem = (
            f"{name} (pretrained {tag!r}): weights not found in the Hugging Face cache {cache_dir} "
            f"(looked for {repo_id}: {', '.join(filenames)}) and HF_HUB_OFFLINE is set; "
            "prefetch them (the prefetch_models job) or point options.pretrained at a local file"
        )
    return WeightsPlan(**common, repo_id=repo_id, filenames=filenames, problem=problem)


def _plan_path(name: str, value: str) -> WeightsPlan:
    import open_clip

    path = Path(value).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            problem = f"{name}: folder {path} has no {CONFIG_NAME}"
        elif not any(p.suffix in WEIGHT_SUFFIXES for p in path.iterdir() if p.is_file()):
            problem = f"{name}: folder {path} has no weights file ({', '.join(WEIGHT_SUFFIXES)})"
        else:
            problem = None
        return WeightsPlan(model=name, pretrained=value, kind="folder", path=str(path), problem=problem)
    if open_clip.get_model_config(name) is None:
        raise AdapterError(
            f"clip: {name!r} is not an open_clip architecture (see open_clip.list_models(); "
            "register your own with options.model_configs)"
        )
    if not path.is_file():
        return WeightsPlan(
            model=name, pretrained=value, kind="file", problem=f"{name}: weights file not found: {path}"
        )
    return WeightsPlan(model=name, pretrained=value, kind="file", path=str(path))


def plan_weights(settings: AdapterSettings) -> list[WeightsPlan]:
    """Resolve every configured model's weights. Imports open_clip (call ``ensure_torch_stack()`` first).

    Raises AdapterError for a configuration that can never work (unknown architecture or tag).
    """
    register_model_configs(clip_options(settings).model_configs)
    cache_dir = hub_cache_dir(settings)
    plans = []
    for name, value in configured_models(settings).items():
        if Path(value).expanduser().exists() or _looks_like_path(value):
            plans.append(_plan_path(name, value))
        else:
            plans.append(_plan_tag(name, value, cache_dir))
    return plans


def scorer_availability(settings: AdapterSettings | None = None) -> str | None:
    """None when every model's weights are on disk (or downloadable: hub online), else the reason.

    Loads no weights. Raises AdapterError for a configuration that can never work.
    """
    settings = settings or AdapterSettings()
    configured_models(settings)
    try:
        from i2v_dagster.models._compat import ensure_torch_stack

        ensure_torch_stack()
        import open_clip  # noqa: F401
    except ImportError as exc:
        return f"clip: open_clip is not installed ({exc}); install the [models] extra"
    problems = [p.problem for p in plan_weights(settings) if p.problem]
    return "clip: " + "; ".join(problems) if problems else None


class ClipScorer(Scorer):
    """Scores each (image, prompt) pair with every configured open_clip model."""

    name = "clip"
    large = False
    Options = ClipOptions
    weights_gb = 1.2
    """ViT-B-32 (0.30 GB) + ViT-L-14 (0.86 GB) in fp16."""
    default_repo = "timm/vit_base_patch32_clip_224.openai"
    allow_patterns = (CONFIG_NAME, SAFE_WEIGHTS_NAME)
    prefetch_repos: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("timm/vit_base_patch32_clip_224.openai", (CONFIG_NAME, SAFE_WEIGHTS_NAME)),
        ("timm/vit_large_patch14_clip_224.openai", (CONFIG_NAME, SAFE_WEIGHTS_NAME)),
    )
    """Every hub repo (and its files) the default models (``openai`` tags) load from."""

    def __init__(self, settings: AdapterSettings | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.models: LoadedModels | None = None
        self._device: Any = None

    @property
    def model_id(self) -> str:
        return ", ".join(f"{n}:{p}" for n, p in configured_models(self.settings).items())

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["models"] = dict(configured_models(self.settings))
        info["quantization_used"] = "none"
        return info

    @property
    def batch_size(self) -> int:
        return self.options.batch_size

    # ---- lifecycle ------------------------------------------------------------------------------
    def _load(self) -> None:
        from i2v_dagster.models._compat import ensure_torch_stack

        ensure_torch_stack()
        plans = plan_weights(self.settings)
        problems = [p.problem for p in plans if p.problem]
        if problems:
            raise ScorerUnavailableError("clip: " + "; ".join(problems))
        device = resolve_device(self.name, self.settings.device)
        dtype = resolve_dtype(self.name, self.settings.dtype, device, auto_cuda="fp16", log=self.log)
        precision = dtype_setting(dtype)  # open_clip's name for it
        if self.settings.quantization not in ("none", "auto"):
            self.log.info("clip: quantization %r is not used by this scorer", self.settings.quantization)
        models = LoadedModels()
        for plan in plans:
            path = plan.path or self._download(plan)
            self.log.info("loading CLIP %s from %s on %s (%s)", plan.model, path, device, precision)
            models[plan.model] = self._create(plan, path, device=device, precision=precision)
        self.models = models
        self._device = device

    def _unload(self) -> None:
        self.models = None
        self._device = None
        free_memory()

    def _download(self, plan: WeightsPlan) -> str:
        from huggingface_hub import hf_hub_download

        if plan.repo_id is None:
            raise ScorerUnavailableError(f"clip: {plan.model}: no weights at {plan.pretrained!r}")
        errors = []
        for filename in plan.filenames:
            try:
                return hf_hub_download(plan.repo_id, filename, cache_dir=plan.cache_dir)
            except Exception as exc:  # every hub failure ends in the one error below
                errors.append(f"{filename}: {exc}")
        raise ScorerUnavailableError(
            f"clip: {plan.model} (pretrained {plan.pretrained!r}): could not download {plan.repo_id} "
            f"into {plan.cache_dir}: {'; '.join(errors)}"
        )

    def _create(self, plan: WeightsPlan, path: str, *, device: Any, precision: str) -> LoadedClip:
        import open_clip

        try:
            if plan.kind == "folder":
                source = f"local-dir:{path}"
                model, _, preprocess = open_clip.create_model_and_transforms(
                    source, device=device, precision=precision, require_pretrained=True
                )
                tokenizer = open_clip.get_tokenizer(source)
            else:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    plan.model,
                    pretrained=path,
                    device=device,
                    precision=precision,
                    force_quick_gelu=plan.quick_gelu,
                    **{f"image_{k}": v for k, v in plan.preprocess.items()},
                    require_pretrained=True,  # never random weights
                )
                tokenizer = open_clip.get_tokenizer(plan.model)
        except (RuntimeError, ValueError, OSError, KeyError) as exc:
            raise ModelLoadError(f"clip: cannot load {plan.model} from {path}: {exc}") from exc
        model.eval()
        return LoadedClip(model=model, preprocess=preprocess, tokenizer=tokenizer)

    # ---- scoring --------------------------------------------------------------------------------
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> Scores:
        """Cosine similarity (normalised embeddings, dot product) per (image, prompt) pair, per model."""
        if len(images) != len(prompts):
            raise AdapterError(
                f"clip: got {len(images)} images but {len(prompts)} prompts; pass one prompt per image"
            )
        self.load()
        assert self.models is not None
        return Scores(
            per_model={name: self._score_with(clip, images, prompts) for name, clip in self.models.items()}
        )

    def _score_with(
        self, clip: LoadedClip, images: Sequence[Image.Image], prompts: Sequence[str]
    ) -> list[float]:
        import torch

        if not images:
            return []
        size = self.batch_size
        unique = list(dict.fromkeys(prompts))
        row = {p: i for i, p in enumerate(unique)}
        dtype = next(clip.model.parameters()).dtype
        out: list[float] = []
        with torch.inference_mode():
            texts = torch.cat(
                [
                    clip.model.encode_text(
                        clip.tokenizer(unique[i : i + size]).to(self._device), normalize=True
                    )
                    for i in range(0, len(unique), size)
                ]
            ).float()
            for start in range(0, len(images), size):
                batch = images[start : start + size]
                pixels = torch.stack([clip.preprocess(img.convert("RGB")) for img in batch])
                feats = clip.model.encode_image(pixels.to(self._device, dtype), normalize=True).float()
                idx = torch.tensor([row[p] for p in prompts[start : start + size]], device=texts.device)
                sims = (feats * texts[idx]).sum(dim=-1).clamp(-1.0, 1.0)
                out.extend(float(v) for v in sims.cpu())
        return out
