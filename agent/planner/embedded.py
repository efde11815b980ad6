"""The embedded backend: SmolLM2-135M + the project's LoRA, decoding under an xgrammar grammar.

The grammar is the steps form's EBNF built from the registry, so the model can only
write registered tools with well-formed, typed arguments; the validator catches
the rest (a mask nobody uses, an amount out of range) and the repair loop re-prompts.
The adapter is merged into the base weights once at load (faster decoding).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from banana.agent.planner.base import PlanRequest, Surface, prompt_for
from banana.agent.planner.model import ADAPTER_DIR, im_end_id, load_base
from banana.agent.surface import steps_grammar
from banana.tools.registry import Registry


class EmbeddedBackend:
    name = "embedded"
    surface: Surface = "steps"

    def __init__(
        self,
        registry: Registry,
        adapter: Path | None = ADAPTER_DIR,
        threads: int = 1,
        max_new_tokens: int = 96,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        import torch
        import xgrammar as xgr

        torch.set_num_threads(threads)
        t = time.perf_counter()
        self.tok, model = load_base(say)
        if adapter is not None:
            if not (Path(adapter) / "adapter_model.safetensors").is_file():
                raise FileNotFoundError(f"no planner adapter at {adapter}; train one with `banana planner train`")
            from peft import PeftModel

            with warnings.catch_warnings():  # peft calls a transformers API deprecated for v6; not ours to fix
                warnings.simplefilter("ignore", FutureWarning)
                model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        self.model = model.eval()
        self.stop = im_end_id(self.tok)
        info = xgr.TokenizerInfo.from_huggingface(self.tok, vocab_size=self.model.config.vocab_size, stop_token_ids=[self.stop])
        self.grammar = xgr.GrammarCompiler(info).compile_grammar(steps_grammar(registry))
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # one decode at a time: the model is not re-entrant
        self.load_seconds = time.perf_counter() - t

    def _processor(self) -> Any:
        import xgrammar as xgr

        return xgr.contrib.hf.LogitsProcessor(self.grammar)  # stateful: a new one per generate()

    def generate(self, request: PlanRequest, previous: str = "", problems: list[str] | None = None) -> str:
        return self.generate_batch([request], [previous], [problems])[0]

    def generate_batch(
        self,
        requests: list[PlanRequest],
        previous: list[str] | None = None,
        problems: list[list[str] | None] | None = None,
    ) -> list[str]:
        """Greedy, grammar-constrained decoding of several requests at once (left-padded)."""
        import torch

        previous = previous or [""] * len(requests)
        problems = problems or [None] * len(requests)
        prompts = [prompt_for(r.instruction, p, q) for r, p, q in zip(requests, previous, problems, strict=True)]
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with self._lock, torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      logits_processor=[self._processor()], eos_token_id=self.stop, pad_token_id=self.stop)
        texts = []
        for row in out[:, enc["input_ids"].shape[1]:]:
            ids = [int(i) for i in row if int(i) != self.stop]
            texts.append(self.tok.decode(ids, skip_special_tokens=True).strip())
        return texts
