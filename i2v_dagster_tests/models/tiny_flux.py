"""A tiny, randomly initialised ``FluxPipeline`` built in code (no download), for adapter tests.

The layout is FLUX.1-schnell's (16-channel latents, a VAE that downsamples 8x, patchified 2x2 latents,
CLIP + T5 text encoders, the schnell scheduler config), with every module a few thousand parameters, so a
64x64 image in 4 steps takes well under a second on CPU.
"""

from __future__ import annotations

from pathlib import Path

from i2v_dagster_tests.models.tiny_tokenizers import VOCAB_SIZE, clip_tokenizer, t5_tokenizer

SCHNELL_SCHEDULER = {
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "max_image_seq_len": 4096,
    "max_shift": 1.15,
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "use_dynamic_shifting": False,
}
"""FLUX.1-schnell's ``scheduler/scheduler_config.json`` values (dev shifts dynamically; schnell does not)."""

LATENT_CHANNELS = 4
TEXT_DIM = 32


def build_tiny_flux(seed: int = 0):
    """A ``FluxPipeline`` of tiny random modules (fixed ``seed``), on CPU in fp32."""
    from i2v_dagster.models._compat import ensure_torch_stack

    ensure_torch_stack()
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tokenizer = clip_tokenizer()
    tokenizer_2 = t5_tokenizer()

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=LATENT_CHANNELS * 4,  # 2x2 patches of the latents
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        pooled_projection_dim=TEXT_DIM,
        guidance_embeds=False,  # schnell has no guidance embedder
        axes_dims_rope=(4, 6, 6),
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 4, 4),  # 4 blocks: 8x downsampling, as FLUX's VAE
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=2,
        sample_size=256,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    bos_id = tokenizer.convert_tokens_to_ids(tokenizer.bos_token)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=TEXT_DIM,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=TEXT_DIM,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            pad_token_id=eos_id,
        )
    )
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=VOCAB_SIZE,
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            feed_forward_proj="gated-gelu",
            is_encoder_decoder=False,
        )
    )
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHNELL_SCHEDULER)
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


def save_tiny_flux(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny FLUX.1-schnell-shaped pipeline into ``path`` (diffusers format); returns the folder."""
    path = Path(path)
    build_tiny_flux(seed).save_pretrained(path)
    return path
