"""The plan-time decoder (torch alone) against transformers, the reference: the same logits bit for bit, the same
greedy grammar-constrained plans token for token, seeded sampling, and clear errors for models it does not run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from banana.agent.planner.model import ADAPTER_DIR, merged_model_dir

pytestmark = pytest.mark.skipif(not (ADAPTER_DIR / "adapter_model.safetensors").is_file(), reason="no committed adapter")

REQUESTS = ["make it warmer", "blur the background behind the astronaut, then make it warmer", "remove the cup on the left",
            "show me the back of the house", "grey out everything except the cat and crop it square"]


@pytest.fixture(scope="module")
def pair(registry):
    """(backend, transformers model) over the same merged weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from banana.agent.planner.embedded import EmbeddedBackend

    torch.set_num_threads(1)
    backend = EmbeddedBackend(registry)
    reference = AutoModelForCausalLM.from_pretrained(merged_model_dir(ADAPTER_DIR), local_files_only=True).eval()
    return backend, reference


def test_logits_are_transformers_logits_bit_for_bit(pair) -> None:
    import torch

    from banana.agent.planner.base import prompt_for

    backend, reference = pair
    ids = backend.decoder.encode(prompt_for(REQUESTS[1]))
    with torch.inference_mode():
        hidden, cache = backend.decoder.hidden(torch.tensor([ids]))
        expected = reference(torch.tensor([ids]), use_cache=True)
        assert torch.equal(backend.decoder.logits(hidden), expected.logits)
        step, _ = backend.decoder.hidden(torch.tensor([[ids[-1]]]), cache)  # one cached step
        expected_step = reference(torch.tensor([[ids[-1]]]), past_key_values=expected.past_key_values, use_cache=True)
        assert torch.equal(backend.decoder.logits(step), expected_step.logits)


def test_tokens_are_transformers_tokens() -> None:
    from transformers import AutoTokenizer

    from banana.agent.planner.base import prompt_for
    from banana.agent.planner.decoder import Decoder

    folder = merged_model_dir(ADAPTER_DIR)
    decoder, tok = Decoder.from_folder(folder), AutoTokenizer.from_pretrained(folder, local_files_only=True)
    for text in [*REQUESTS, "café ünïcode 🍌 and  two  spaces", "<|im_end|> typed by a user"]:
        ids = decoder.encode(prompt_for(text))
        assert ids == tok(prompt_for(text), add_special_tokens=False)["input_ids"]
        assert decoder.decode(ids) == tok.decode(ids, skip_special_tokens=True)


def test_greedy_plans_are_transformers_generate_token_for_token(pair) -> None:
    import torch
    import xgrammar as xgr

    from banana.agent.planner.base import prompt_for

    backend, reference = pair
    for text in REQUESTS:
        ids = backend.decoder.encode(prompt_for(text))
        with torch.inference_mode():
            ours = backend.decoder.generate(ids, backend.grammar, backend.stop, 96)[0]
            out = reference.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), max_new_tokens=96,
                                     do_sample=False, logits_processor=[xgr.contrib.hf.LogitsProcessor(backend.grammar)],
                                     eos_token_id=backend.stop, pad_token_id=backend.stop)
        theirs = [int(t) for t in out[0, len(ids):] if int(t) != backend.stop]
        assert ours == theirs, (text, backend.decoder.decode(ours), backend.decoder.decode(theirs))


def test_sampling_is_seeded_grammatical_and_varied(pair, registry) -> None:
    from banana.agent.planner.base import PlanRequest, read_answer

    backend, _ = pair
    request = PlanRequest(instruction="make it look more dramatic")
    first = backend.sample(request, k=6, temperature=1.2, seed=3)
    assert first == backend.sample(request, k=6, temperature=1.2, seed=3)  # same seed, same plans
    assert len(set(first)) > 1 and first != backend.sample(request, k=6, temperature=1.2, seed=4)
    for text in first:
        read_answer(text, "steps", registry)  # the grammar held for every row: each one reads as a plan or a refusal


def test_loglik_prefers_the_greedy_plan(pair) -> None:
    from banana.agent.planner.base import PlanRequest

    backend, _ = pair
    request = PlanRequest(instruction="make it warmer")
    greedy = backend.generate(request)
    good, odd = backend.loglik(request, [greedy, "pixelate amount=1.0"])
    assert good > odd and good < 0


def test_a_model_it_does_not_run_is_named(tmp_path: Path) -> None:
    from banana.agent.planner.decoder import LlamaConfig

    with pytest.raises(ValueError, match="model_type='gpt2'"):
        LlamaConfig({"model_type": "gpt2"})
    raw = json.loads((merged_model_dir(ADAPTER_DIR) / "config.json").read_text())
    with pytest.raises(ValueError, match="not 'yarn'"):
        LlamaConfig({**raw, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}})
