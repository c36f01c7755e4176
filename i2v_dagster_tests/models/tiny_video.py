"""Tiny random image-to-video pipelines, built in code, for the four diffusers video adapters.

Each pipeline is the real diffusers class with every module shrunk (shapes follow diffusers' own fast
tests for the pipeline, adjusted so the real model's rules still hold: CogVideoX 1.0 keeps learned
positional embeddings tied to one size and 49 frames, CogVideoX 1.5 keeps ``patch_size_t=2`` and the
ofs embedding, Wan2.2 keeps the 48-channel residual VAE with 16x spatial compression and
``expand_timesteps``, HunyuanVideo-I2V keeps ``token_replace``, embedded guidance and 576 image tokens).

The module configs are laid out like ``shared/model-configs/<slug>/`` (``components.json`` plus one JSON
per module), so :func:`write_tiny_configs` lets the benchmark run its full-size code path on them.

- :func:`save_tiny_pipeline` builds one under a fixed seed and ``save_pretrained``-s it to a folder.
- :func:`build_tiny_pipeline` returns it in memory; :func:`assemble_pipeline` adds the tokenizers,
  scheduler and image processor to modules built elsewhere (the benchmark builds them at full size).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2v_dagster_tests.models import tiny_tokenizers as toks


@dataclass(frozen=True)
class Recipe:
    """How one adapter's pipeline is put together, beyond its neural modules."""

    slug: str
    """Folder name under ``shared/model-configs``."""
    pipeline: str
    modules: Mapping[str, tuple[str, str]]
    """Module name -> (library, class)."""
    tokenizers: Mapping[str, Callable[[], Any]]
    scheduler: tuple[str, Mapping[str, Any]]
    """Scheduler class and its config (the values the real repo ships)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Pipeline constructor arguments that are not modules (``expand_timesteps``, ...)."""
    image_processor: Mapping[str, Any] | None = None
    """``CLIPImageProcessor`` kwargs, for pipelines that take one."""


_COG_SCHEDULER = (
    "CogVideoXDDIMScheduler",
    {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "rescale_betas_zero_snr": True,
        "set_alpha_to_one": True,
        "snr_shift_scale": 1.0,
        "steps_offset": 0,
        "timestep_spacing": "trailing",
    },
)
_COG_MODULES = {
    "transformer": ("diffusers", "CogVideoXTransformer3DModel"),
    "vae": ("diffusers", "AutoencoderKLCogVideoX"),
    "text_encoder": ("transformers", "T5EncoderModel"),
}

RECIPES: dict[str, Recipe] = {
    "cogvideox_5b_i2v": Recipe(
        slug="cogvideox-5b-i2v",
        pipeline="CogVideoXImageToVideoPipeline",
        modules=_COG_MODULES,
        tokenizers={"tokenizer": toks.t5_tokenizer},
        scheduler=_COG_SCHEDULER,
    ),
    "cogvideox15_5b_i2v": Recipe(
        slug="cogvideox1.5-5b-i2v",
        pipeline="CogVideoXImageToVideoPipeline",
        modules=_COG_MODULES,
        tokenizers={"tokenizer": toks.t5_tokenizer},
        scheduler=_COG_SCHEDULER,
    ),
    "wan22_ti2v_5b": Recipe(
        slug="wan2.2-ti2v-5b",
        pipeline="WanImageToVideoPipeline",
        modules={
            "transformer": ("diffusers", "WanTransformer3DModel"),
            "vae": ("diffusers", "AutoencoderKLWan"),
            "text_encoder": ("transformers", "UMT5EncoderModel"),
        },
        tokenizers={"tokenizer": toks.umt5_tokenizer},
        scheduler=(
            "UniPCMultistepScheduler",
            {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 5.0},
        ),
        extra={"expand_timesteps": True, "boundary_ratio": None},
    ),
    "hunyuan_i2v": Recipe(
        slug="hunyuanvideo-i2v",
        pipeline="HunyuanVideoImageToVideoPipeline",
        modules={
            "transformer": ("diffusers", "HunyuanVideoTransformer3DModel"),
            "vae": ("diffusers", "AutoencoderKLHunyuanVideo"),
            "text_encoder": ("transformers", "LlavaForConditionalGeneration"),
            "text_encoder_2": ("transformers", "CLIPTextModel"),
        },
        tokenizers={"tokenizer": toks.llama_tokenizer, "tokenizer_2": toks.clip_tokenizer},
        scheduler=("FlowMatchEulerDiscreteScheduler", {"shift": 7.0}),
        image_processor={
            "crop_size": 336,
            "size": 336,
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "resample": 3,
        },
    ),
}

_T5 = {
    "architectures": ["T5EncoderModel"],
    "model_type": "t5",
    "vocab_size": toks.VOCAB_SIZE,
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 37,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "feed_forward_proj": "gated-gelu",
    "pad_token_id": toks.T5_PAD_ID,
    "eos_token_id": toks.T5_EOS_ID,
    "decoder_start_token_id": 0,
}
_COG_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["CogVideoXDownBlock3D"] * 4,
    "up_block_types": ["CogVideoXUpBlock3D"] * 4,
    "block_out_channels": [8, 8, 8, 8],
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 2,
    "temporal_compression_ratio": 4,
    "scaling_factor": 0.7,
}
_COG_TRANSFORMER = {
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "in_channels": 8,
    "out_channels": 4,
    "time_embed_dim": 8,
    "text_embed_dim": 32,
    "num_layers": 2,  # First Block Cache needs a first and a last block
    "patch_size": 2,
    "temporal_compression_ratio": 4,
    "max_text_seq_length": 16,
    "use_rotary_positional_embeddings": True,
}

TINY_CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    "cogvideox_5b_i2v": {
        # Learned positional embeddings fix the size: 2x2 latents = 16x16 pixels, 49 frames (real: 720x480).
        "transformer": {
            **_COG_TRANSFORMER,
            "sample_width": 2,
            "sample_height": 2,
            "sample_frames": 49,
            "patch_size_t": None,
            "ofs_embed_dim": None,
            "use_learned_positional_embeddings": True,
            "patch_bias": True,
        },
        "vae": {**_COG_VAE, "invert_scale_latents": False},
        "text_encoder": _T5,
    },
    "cogvideox15_5b_i2v": {
        "transformer": {
            **_COG_TRANSFORMER,
            "sample_width": 8,
            "sample_height": 8,
            "sample_frames": 81,
            "patch_size_t": 2,
            "ofs_embed_dim": 8,
            "use_learned_positional_embeddings": False,
            "patch_bias": False,
        },
        "vae": {**_COG_VAE, "invert_scale_latents": True},
        "text_encoder": _T5,
    },
    "wan22_ti2v_5b": {
        "transformer": {
            "patch_size": [1, 2, 2],
            "num_attention_heads": 2,
            "attention_head_dim": 12,
            "in_channels": 48,
            "out_channels": 48,
            "text_dim": 32,
            "freq_dim": 256,
            "ffn_dim": 32,
            "num_layers": 2,
            "cross_attn_norm": True,
            "qk_norm": "rms_norm_across_heads",
            "rope_max_seq_len": 32,
        },
        "vae": {
            "base_dim": 3,
            "z_dim": 48,
            "in_channels": 12,
            "out_channels": 12,
            "is_residual": True,
            "patch_size": 2,
            "latents_mean": [0.0] * 48,
            "latents_std": [1.0] * 48,
            "dim_mult": [1, 1, 1, 1],
            "num_res_blocks": 1,
            "scale_factor_spatial": 16,
            "scale_factor_temporal": 4,
            "temperal_downsample": [False, True, True],
        },
        "text_encoder": {**_T5, "architectures": ["UMT5EncoderModel"], "model_type": "umt5"},
    },
    "hunyuan_i2v": {
        "transformer": {
            "in_channels": 4,
            "out_channels": 4,
            "num_attention_heads": 2,
            "attention_head_dim": 10,
            "num_layers": 1,
            "num_single_layers": 1,
            "num_refiner_layers": 1,
            "mlp_ratio": 4.0,
            "patch_size": 2,
            "patch_size_t": 1,
            "qk_norm": "rms_norm",
            "guidance_embeds": True,
            "text_embed_dim": 16,
            "pooled_projection_dim": 8,
            "rope_theta": 256.0,
            "rope_axes_dim": [2, 4, 4],
            "image_condition_type": "token_replace",
        },
        "vae": {
            "in_channels": 3,
            "out_channels": 3,
            "latent_channels": 4,
            "down_block_types": ["HunyuanVideoDownBlock3D"] * 4,
            "up_block_types": ["HunyuanVideoUpBlock3D"] * 4,
            "block_out_channels": [8, 8, 8, 8],
            "layers_per_block": 1,
            "act_fn": "silu",
            "norm_num_groups": 4,
            "scaling_factor": 0.476986,
            "spatial_compression_ratio": 8,
            "temporal_compression_ratio": 4,
            "mid_block_add_attention": True,
        },
        # 336 / 14 = 24 patches a side = 576 image tokens (the template's image_emb_len), as in the real one.
        "text_encoder": {
            "architectures": ["LlavaForConditionalGeneration"],
            "model_type": "llava",
            "image_token_index": toks.LLAMA_IMAGE_TOKEN_ID,
            "pad_token_id": toks.LLAMA_PAD_TOKEN_ID,
            "image_seq_length": 576,
            "projector_hidden_act": "gelu",
            "vision_feature_layer": -2,
            "vision_feature_select_strategy": "default",
            "text_config": {
                "model_type": "llama",
                "vocab_size": toks.VOCAB_SIZE,
                "hidden_size": 16,
                "intermediate_size": 37,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "num_hidden_layers": 2,
                "bos_token_id": toks.LLAMA_BOS_ID,
                "eos_token_id": toks.LLAMA_EOS_ID,
                "pad_token_id": toks.LLAMA_PAD_TOKEN_ID,
                "max_position_embeddings": 2048,
            },
            "vision_config": {
                "model_type": "clip_vision_model",
                "hidden_size": 8,
                "intermediate_size": 16,
                "num_attention_heads": 2,
                "num_hidden_layers": 2,
                "image_size": 336,
                "patch_size": 14,
                "projection_dim": 8,
            },
        },
        "text_encoder_2": {
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            "vocab_size": toks.VOCAB_SIZE,
            "hidden_size": 8,
            "intermediate_size": 16,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "max_position_embeddings": toks.CLIP_MAX_LENGTH,
            "projection_dim": 8,
            # set from the tokenizer in _fit_to_tokenizers: the pooled output reads the first eos token
            "bos_token_id": None,
            "eos_token_id": None,
            "pad_token_id": None,
        },
    },
}
"""Per adapter: module name -> constructor kwargs (diffusers) or config dict (transformers)."""

TINY_SIZES: dict[str, tuple[int, int]] = {
    "cogvideox_5b_i2v": (16, 16),
    "cogvideox15_5b_i2v": (16, 16),
    "wan22_ti2v_5b": (64, 64),
    "hunyuan_i2v": (32, 32),
}
"""(width, height) each tiny pipeline makes (CogVideoX 1.0 makes no other size)."""


def _stack():
    from i2v_dagster.models._compat import ensure_torch_stack

    ensure_torch_stack()
    import diffusers
    import torch
    import transformers

    return torch, diffusers, transformers


def build_module(library: str, cls_name: str, config: Mapping[str, Any]):
    """One module from its config: ``Class(**cfg)`` for diffusers, ``Class(AutoConfig.for_model(**cfg))``."""
    _, diffusers, transformers = _stack()
    if library == "diffusers":
        return getattr(diffusers, cls_name)(**config)
    cfg = {k: v for k, v in config.items() if k != "architectures"}
    return getattr(transformers, cls_name)(transformers.AutoConfig.for_model(**cfg))


def _fit_to_tokenizers(name: str, configs: dict[str, dict[str, Any]], tokenizers: Mapping[str, Any]) -> None:
    """Point the tiny CLIP text config's special ids at the tiny CLIP tokenizer's."""
    if name == "hunyuan_i2v":
        clip = tokenizers["tokenizer_2"]
        configs["text_encoder_2"].update(
            bos_token_id=clip.bos_token_id, eos_token_id=clip.eos_token_id, pad_token_id=clip.pad_token_id
        )


def assemble_pipeline(name: str, modules: Mapping[str, Any], tokenizers: Mapping[str, Any] | None = None):
    """The real pipeline of adapter ``name`` from its neural ``modules`` plus scheduler, tokenizers, ..."""
    _, diffusers, transformers = _stack()
    recipe = RECIPES[name]
    tokenizers = (
        dict(tokenizers) if tokenizers is not None else {k: f() for k, f in recipe.tokenizers.items()}
    )
    sched_cls, sched_cfg = recipe.scheduler
    parts: dict[str, Any] = {
        **modules,
        **tokenizers,
        "scheduler": getattr(diffusers, sched_cls)(**sched_cfg),
        **recipe.extra,
    }
    if recipe.image_processor is not None:
        parts["image_processor"] = transformers.CLIPImageProcessor(**recipe.image_processor)
    return getattr(diffusers, recipe.pipeline)(**parts)


def tiny_configs(name: str) -> dict[str, dict[str, Any]]:
    """A copy of the tiny module configs of adapter ``name``, special ids filled in from the tokenizers."""
    recipe = RECIPES[name]
    configs = json.loads(json.dumps(TINY_CONFIGS[name]))
    _fit_to_tokenizers(name, configs, {k: f() for k, f in recipe.tokenizers.items()})
    return configs


def build_tiny_pipeline(name: str, *, seed: int = 0):
    """The tiny pipeline of adapter ``name``, in memory; every module initialised under ``seed``."""
    torch, _, _ = _stack()
    recipe = RECIPES[name]
    tokenizers = {k: f() for k, f in recipe.tokenizers.items()}
    configs = json.loads(json.dumps(TINY_CONFIGS[name]))
    _fit_to_tokenizers(name, configs, tokenizers)
    modules = {}
    for module, (library, cls_name) in recipe.modules.items():
        torch.manual_seed(seed)
        modules[module] = build_module(library, cls_name, configs[module]).eval()
    pipe = assemble_pipeline(name, modules, tokenizers)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pipeline(adapter_name: str, path: str | Path) -> Path:
    """Build the tiny pipeline of ``adapter_name`` (seed 0) and ``save_pretrained`` it into ``path``."""
    path = Path(path)
    build_tiny_pipeline(adapter_name).save_pretrained(path)
    return path


def write_tiny_configs(root: str | Path) -> Path:
    """Write every tiny config as ``<root>/<slug>/components.json`` + one JSON per module, like
    ``shared/model-configs``; returns ``root``."""
    root = Path(root)
    for name, recipe in RECIPES.items():
        folder = root / recipe.slug
        folder.mkdir(parents=True, exist_ok=True)
        configs = tiny_configs(name)
        components = {}
        for module, (library, cls_name) in recipe.modules.items():
            (folder / f"{module}.json").write_text(json.dumps(configs[module], indent=2))
            components[module] = {"library": library, "class": cls_name, "config": f"{module}.json"}
        (folder / "components.json").write_text(
            json.dumps({"pipeline": recipe.pipeline, "components": components}, indent=2)
        )
    return root


def saved_pipelines(tmp_path_factory) -> Callable[[str], str]:
    """``get(name)``: the folder of ``name``'s tiny pipeline, saved once under ``tmp_path_factory``."""
    saved: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in saved:
            saved[name] = str(save_tiny_pipeline(name, tmp_path_factory.mktemp(name)))
        return saved[name]

    return get
