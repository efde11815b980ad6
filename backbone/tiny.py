"""Tiny, randomly initialised diffusers pipelines built from configs: the real code paths without real weights.

Used by the tests, and handy on a new machine to check a configuration end to end
before fetching gigabytes::

    python -m banana.backbone.tiny sd-inpaint /tmp/tiny-sd
    BANANA_BACKBONE_WEIGHTS=/tmp/tiny-sd BANANA_BACKBONE_STEPS=2 banana run prog.json -i sample:astronaut -o out.png

Their pictures are noise: they check shapes, seeds, masks and adapters, never looks.
Tokenizers are built in-process (transformers 5 silently ignores ``vocab_file=``, so
vocabularies are passed as ``vocab=``/``merges=`` and their length is checked).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

WORDS = ("a", "cat", "dog", "red", "blue", "photo", "of", "the", "sky", "make", "it", "turn", "into")
PIPELINE_CLASSES = {
    "sd-inpaint": "StableDiffusionInpaintPipeline",
    "sd-img2img": "StableDiffusionImg2ImgPipeline",
    "sdxl-inpaint": "StableDiffusionXLInpaintPipeline",
    "flux-kontext": "FluxKontextPipeline",
    "instruct-pix2pix": "StableDiffusionInstructPix2PixPipeline",
}
UNET_IN_CHANNELS = {"sd-inpaint": 9, "sd-img2img": 4, "instruct-pix2pix": 8, "sdxl-inpaint": 9}
LORA_TARGETS = {"sd": ["to_q", "to_k", "to_v", "to_out.0"], "flux": ["to_q", "to_k", "to_v", "to_out.0"]}


def _byte_alphabet() -> list[str]:
    """GPT-2 / CLIP's printable stand-ins for the 256 byte values."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return [chr(c) for c in cs]


def clip_tokenizer(max_len: int = 16) -> Any:
    """Byte-level BPE over every byte plus whole-word merges for WORDS: any text tokenizes without <unk>."""
    from transformers import CLIPTokenizer

    chars = _byte_alphabet()
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        pieces = [*word[:-1], word[-1] + "</w>"]
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in merges:
                merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
            pieces = [pair[0] + pair[1], *pieces[2:]]
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_len)
    if len(tok) != len(vocab):
        raise RuntimeError(f"the tiny CLIP tokenizer lost its vocabulary ({len(tok)} of {len(vocab)} tokens)")
    return tok


def t5_tokenizer(max_len: int = 32) -> Any:
    """A unigram vocabulary handed straight to T5Tokenizer (no sentencepiece model file needed)."""
    from transformers import T5Tokenizer

    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + w, -1.0) for w in WORDS] + [(c, -5.0) for c in letters] + [("▁" + c, -6.0) for c in letters]
    tok = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_len)
    if len(tok) != len(pieces):
        raise RuntimeError(f"the tiny T5 tokenizer lost its vocabulary ({len(tok)} of {len(pieces)} pieces)")
    return tok


def clip_text_encoder(vocab_size: int, with_projection: bool = False) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, vocab_size=vocab_size, hidden_size=32,
                         intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=16,
                         hidden_act="gelu", projection_dim=32, layer_norm_eps=1e-5)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(cfg).eval()


def vae(flux: bool = False) -> Any:
    """Two blocks, so the latent factor is 2: a 64 px picture is a 32 px latent."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    extra = {"use_quant_conv": False, "use_post_quant_conv": False, "shift_factor": 0.0609, "scaling_factor": 1.5035} if flux else {}
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=64, block_out_channels=(8, 16),
                         layers_per_block=1, norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, **extra).eval()


def sd_components(kind: str) -> dict[str, Any]:
    from diffusers import DDIMScheduler, UNet2DConditionModel

    tok = clip_tokenizer()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=32, in_channels=UNET_IN_CHANNELS[kind], out_channels=4, block_out_channels=(16, 32),
                                layers_per_block=1, norm_num_groups=8, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=8).eval()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return {"unet": unet, "vae": vae(), "text_encoder": clip_text_encoder(len(tok)), "tokenizer": tok, "scheduler": scheduler,
            "safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def sdxl_components() -> dict[str, Any]:
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

    tok = clip_tokenizer()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=9, out_channels=4, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
        attention_head_dim=(2, 4), use_linear_projection=True, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 time ids x 8 + the second encoder's 32-d projection
        cross_attention_dim=64,  # both encoders' hidden states side by side: 32 + 32
    ).eval()
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                       timestep_spacing="leading")
    return {"unet": unet, "vae": vae(), "text_encoder": clip_text_encoder(len(tok)), "tokenizer": tok,
            "text_encoder_2": clip_text_encoder(len(tok), with_projection=True), "tokenizer_2": tok, "scheduler": scheduler}


def flux_components() -> dict[str, Any]:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    clip_tok, t5_tok = clip_tokenizer(), t5_tokenizer()
    torch.manual_seed(0)
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                 relative_attention_num_buckets=8, dropout_rate=0.0, is_encoder_decoder=False,
                                 decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)).eval()
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 6, 6], guidance_embeds=True,
    ).eval()
    return {"scheduler": FlowMatchEulerDiscreteScheduler(), "text_encoder": clip_text_encoder(len(clip_tok)), "tokenizer": clip_tok,
            "text_encoder_2": t5, "tokenizer_2": t5_tok, "transformer": transformer, "vae": vae(flux=True),
            "image_encoder": None, "feature_extractor": None}


def build(kind: str) -> Any:
    """A tiny random pipeline of ``kind`` (one of PIPELINE_CLASSES), in memory."""
    import diffusers

    if kind not in PIPELINE_CLASSES:
        raise ValueError(f"unknown tiny pipeline {kind!r}; known: {', '.join(PIPELINE_CLASSES)}")
    if kind == "flux-kontext":
        parts = flux_components()
    elif kind == "sdxl-inpaint":
        parts = sdxl_components()
    else:
        parts = sd_components(kind)
    return getattr(diffusers, PIPELINE_CLASSES[kind])(**parts)


def save(kind: str, folder: str | Path) -> Path:
    """Build a tiny ``kind`` pipeline and save it as a diffusers folder (``from_pretrained`` loads it offline)."""
    folder = Path(folder)
    build(kind).save_pretrained(folder)
    return folder


def save_lora(kind: str, file: str | Path, seed: int = 1, rank: int = 4) -> Path:
    """A random LoRA for a tiny ``kind`` pipeline, saved as one safetensors file.

    ``init_lora_weights=False``: peft's default initialisation makes an adapter that changes nothing.
    """
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    file = Path(file)
    pipe = build(kind)
    denoiser_name = "transformer" if kind == "flux-kontext" else "unet"
    denoiser = getattr(pipe, denoiser_name)
    torch.manual_seed(seed)
    denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS["flux" if kind == "flux-kontext" else "sd"],
                                    init_lora_weights=False), adapter_name="tiny")
    layers = get_peft_model_state_dict(denoiser, adapter_name="tiny")
    type(pipe).save_lora_weights(file.parent, weight_name=file.name, **{f"{denoiser_name}_lora_layers": layers})
    return file


def save_controlnet(folder: str | Path) -> Path:
    """A tiny ControlNet for the tiny SDXL pipeline, saved as a diffusers folder.

    A real ControlNet starts with zero output convolutions (no effect until trained); these are randomised so that
    the control picture visibly matters.
    """
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    net = ControlNetModel(
        in_channels=4, conditioning_channels=3, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), attention_head_dim=(2, 4), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80, cross_attention_dim=64,
        conditioning_embedding_out_channels=(8, 16),  # downsamples by 2, like the tiny VAE
    ).eval()
    with torch.no_grad():
        for p in [*net.controlnet_down_blocks.parameters(), *net.controlnet_mid_block.parameters(),
                  *net.controlnet_cond_embedding.conv_out.parameters()]:
            p.normal_(0.0, 0.5)
    folder = Path(folder)
    net.save_pretrained(folder)
    return folder


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: python -m banana.backbone.tiny KIND FOLDER   (KIND: {', '.join(PIPELINE_CLASSES)})", file=sys.stderr)
        return 2
    print(save(argv[0], argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
