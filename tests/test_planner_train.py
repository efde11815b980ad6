"""A one-step `banana planner train` on a handful of examples: an fp16 adapter is written, loads, and changes the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("adapter")
    proc = subprocess.run([sys.executable, "-m", "banana.agent.cli", "planner", "train", "--examples", "8", "--minutes", "2",
                           "--seed", "3", "--out", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, json.loads(proc.stdout)


def test_the_adapter_is_written_in_float16_with_a_report(trained):
    import torch
    from safetensors.torch import load_file

    out, report = trained
    assert report["examples_seen"] == 8 and report["steps"] == 1 and report["stopped_by"] == "data"
    assert json.loads((out / "training.json").read_text())["steps"] == 1
    state = load_file(out / "adapter_model.safetensors")
    assert state and all(t.dtype == torch.float16 for t in state.values())
    assert any("lora_B" in k and t.abs().max() > 0 for k, t in state.items()), "one step moved no LoRA B weight"
    assert not (out / "README.md").exists()


def test_the_adapter_loads_and_changes_the_output(trained):
    import torch
    from peft import PeftModel

    from banana.agent.planner.model import load_base

    out, _ = trained
    torch.set_num_threads(1)
    tok, base = load_base()
    ids = tok("<|im_start|>user\nblur the background<|im_end|>\n<|im_start|>assistant\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = base(ids).logits[0, -1].clone()
        tuned = PeftModel.from_pretrained(base, str(out))
        after = tuned(ids).logits[0, -1]
    assert not torch.allclose(before, after), "the trained adapter has no effect"
