"""Start-up caches (issue 16): the merged planner model and the compiled grammar give the same answers as building
them from scratch, are rebuilt when the adapter changes, and a damaged cached file is rebuilt, never a crash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from banana.agent.planner.model import ADAPTER_DIR, BASE_NAME, base_model_dir, load_decoder, merged_model_dir

pytestmark = pytest.mark.skipif(not (ADAPTER_DIR / "adapter_model.safetensors").is_file(), reason="no committed adapter")


def empty_cache(folder: Path) -> Path:
    """A cache folder with no planner caches in it: only a link to the converted base model (no 30 s conversion)."""
    (folder / "models").mkdir(parents=True)
    (folder / "models" / BASE_NAME).symlink_to(base_model_dir())
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return empty_cache(tmp_path_factory.mktemp("banana-cache"))


@pytest.fixture
def use_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BANANA_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def _quiet_peft() -> None:
    import warnings

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def merged_in_memory(adapter: Path) -> dict:
    """The weights the way the planner made them before the cache: base + LoRA merged in this process (without
    lm_head, which is tied to the embeddings: safetensors stores the tensor once)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(base_model_dir(), local_files_only=True)
    weights = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().state_dict()
    return {k: v for k, v in weights.items() if k != "lm_head.weight"}


def assert_same_weights(a: dict, b: dict) -> None:
    import torch

    assert sorted(a) == sorted(b)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == [], f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_cached_weights_are_the_in_memory_merge_bit_for_bit(use_cache: Path) -> None:
    said: list[str] = []
    cached, folder = load_decoder(ADAPTER_DIR, said.append)
    assert folder.parent == use_cache / "planner" / "merged" and (folder / "model.safetensors").is_file()
    assert any("merging the planner adapter" in m for m in said)
    assert_same_weights(cached.weights, merged_in_memory(ADAPTER_DIR))
    said.clear()
    assert load_decoder(ADAPTER_DIR, said.append)[1] == folder and said == []  # second load: from the cache, nothing built


def test_a_changed_adapter_file_gets_its_own_merged_model(use_cache: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    original = merged_model_dir(ADAPTER_DIR)
    changed = tmp_path / "adapter"
    shutil.copytree(ADAPTER_DIR, changed)
    tensors = load_file(changed / "adapter_model.safetensors")
    name = next(k for k in sorted(tensors) if "lora_B" in k)
    tensors[name] = tensors[name] + 0.01
    save_file(tensors, changed / "adapter_model.safetensors", metadata={"format": "pt"})
    said: list[str] = []
    model, folder = load_decoder(changed, said.append)
    assert folder != original and any("merging" in m for m in said)
    assert_same_weights(model.weights, merged_in_memory(changed))
    merged_name = name.replace("base_model.model.", "").replace(".lora_B", "")  # the base weight the LoRA pair changes
    assert not torch.equal(model.weights[merged_name], load_file(original / "model.safetensors")[merged_name])
    assert merged_model_dir(ADAPTER_DIR) == original  # the committed adapter's folder is still there and still valid


def test_a_damaged_merged_model_is_rebuilt(use_cache: Path) -> None:
    folder = merged_model_dir(ADAPTER_DIR)
    weights = folder / "model.safetensors"
    expected = weights.read_bytes()
    weights.write_bytes(expected[: len(expected) // 3])  # truncated: the manifest no longer matches
    said: list[str] = []
    assert merged_model_dir(ADAPTER_DIR, said.append) == folder
    assert any("damaged or incomplete; rebuilding" in m for m in said) and weights.read_bytes() == expected


def test_a_cached_file_that_does_not_load_is_rebuilt(use_cache: Path) -> None:
    folder = merged_model_dir(ADAPTER_DIR)
    weights = folder / "model.safetensors"
    expected = weights.read_bytes()
    st = weights.stat()
    weights.write_bytes(b"\xff" * len(expected))  # same size, same mtime: looks intact, does not load
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    said: list[str] = []
    model, again = load_decoder(ADAPTER_DIR, said.append)
    assert again == folder and any("did not load" in m for m in said) and weights.read_bytes() == expected
    assert model.config.vocab_size > 0


def test_the_grammar_from_the_cached_tokenizer_info_is_a_fresh_compile_and_damage_is_rebuilt(use_cache: Path, registry) -> None:
    import xgrammar as xgr
    from transformers import AutoTokenizer

    from banana.agent.planner.embedded import compiled_grammar
    from banana.agent.planner.model import im_end_id
    from banana.agent.surface import steps_grammar

    model, folder = load_decoder(ADAPTER_DIR)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    text, stop, vocab = steps_grammar(registry), im_end_id(tok), model.config.vocab_size
    fresh = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab, stop_token_ids=[stop])).compile_grammar(text)
    first = compiled_grammar(folder, vocab, stop, text)  # builds the tokenizer info and writes it
    where = use_cache / "planner" / "grammar"
    files = list(where.glob("tokenizer-*.json"))
    assert len(files) == 1
    said: list[str] = []
    cached = compiled_grammar(folder, vocab, stop, text, said.append)  # reads it
    assert said == [] and cached.serialize_json() == first.serialize_json() == fresh.serialize_json()
    files[0].write_text('{"not": "a tokenizer"')
    again = compiled_grammar(folder, vocab, stop, text, said.append)
    assert again.serialize_json() == fresh.serialize_json() and len(said) == 1 and "rebuilding the damaged" in said[0]
    assert xgr.TokenizerInfo.deserialize_json(files[0].read_text()).vocab_size == vocab  # rewritten whole


INSTRUCTIONS = ["make it warmer", "blur the background behind the astronaut, then make it warmer", "flip it horizontally",
                "pixelate the faces", "turn it into a watercolor painting"]


def banana(args: list[str], cache: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BANANA_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from banana.agent.cli import main; main()", *args]
    return subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_plans_and_the_demo_picture_are_the_same_with_the_caches_absent_and_present(tmp_path: Path) -> None:
    from PIL import Image as PILImage

    cache = empty_cache(tmp_path / "cache")
    runs = []
    for label in ("absent", "present"):
        plans = banana(["plan", "--jsonl"], cache, stdin="\n".join(INSTRUCTIONS) + "\n")
        edit = banana(["edit", "sample:astronaut", INSTRUCTIONS[1], "-o", str(tmp_path / f"{label}.png"), "-q"], cache)
        assert plans.returncode == 0 and edit.returncode in (0, 1), plans.stderr[-2000:] + edit.stderr[-2000:]
        runs.append((plans, edit))
        if label == "absent":
            assert "merging the planner adapter" in plans.stderr
            assert list((cache / "planner" / "grammar").glob("tokenizer-*.json"))
    (before, _), (after, _) = runs
    assert "merging" not in after.stdout + after.stderr  # the second process found everything cached
    lines = before.stdout.splitlines()
    assert len(lines) == len(INSTRUCTIONS) and all("nodes" in json.loads(x) or "cannot" in json.loads(x) for x in lines)
    assert after.stdout == before.stdout
    a, b = (np.asarray(PILImage.open(tmp_path / f"{x}.png")) for x in ("absent", "present"))
    assert a.shape == b.shape and np.array_equal(a, b)


HEAVY = ("torch", "transformers", "peft", "xgrammar")


def test_run_and_tools_do_not_import_the_planner_stack(tmp_path: Path) -> None:
    """`banana run` on a classical program and `banana tools` never pay for torch/transformers (the planner's imports)."""
    program = tmp_path / "warm.json"
    program.write_text(json.dumps({"version": 1, "nodes": [{"id": "warm", "tool": "adjust", "args": {"image": "$input", "warmth": 0.4}}],
                                   "output": "$warm"}))
    probe = ("import atexit, sys\n"
             f"atexit.register(lambda: print('LOADED', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr))\n"
             "from banana.agent.cli import main\nmain()\n")
    for args in (["run", str(program), "-i", "sample:astronaut", "-o", str(tmp_path / "out.png"), "-q"], ["tools", "--json"]):
        proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "LOADED []" in proc.stderr, (args[0], proc.stderr[-500:])


PLAN_TIME_HEAVY = ("peft", "transformers.modeling_utils", "transformers.models.llama.modeling_llama", "transformers.models.auto")


def test_plan_decodes_without_transformers_modeling_or_tokenizers(tmp_path: Path) -> None:
    """With the caches built, `banana plan` decodes with torch alone: transformers' modeling and auto-loading chain
    (about 2 s of a cold start) is not imported. (xgrammar itself imports transformers' tokenizer base classes.)"""
    probe = ("import atexit, sys\n"
             f"atexit.register(lambda: print('LOADED', [m for m in {PLAN_TIME_HEAVY!r} if m in sys.modules], file=sys.stderr))\n"
             "from banana.agent.cli import main\nmain()\n")
    merged_model_dir(ADAPTER_DIR)  # the user's cache, as every later start finds it
    for _ in range(2):  # the first run may build the tokenizer info (which needs transformers' tokenizer), the second must not
        proc = subprocess.run([sys.executable, "-c", probe, "plan", "make it warmer"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert "adjust" in proc.stdout and "LOADED []" in proc.stderr, proc.stderr[-500:]


def test_a_cache_that_cannot_be_written_costs_the_merge_not_the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry) -> None:
    from banana.agent.planner.base import PlanRequest
    from banana.agent.planner.embedded import EmbeddedBackend

    cache = empty_cache(tmp_path / "cache")
    (cache / "planner").write_text("a file where the planner's cache folder would go")
    monkeypatch.setenv("BANANA_CACHE", str(cache))
    said: list[str] = []
    backend = EmbeddedBackend(registry, say=said.append)
    assert any("cannot cache the merged planner model" in m for m in said)
    assert_same_weights(backend.decoder.weights, merged_in_memory(ADAPTER_DIR))
    assert backend.generate(PlanRequest(instruction="make it warmer")).strip() != ""
