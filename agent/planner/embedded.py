"""The embedded backend: SmolLM2-135M + the project's LoRA, decoding under an xgrammar grammar.

The grammar is the steps form's EBNF built from the registry, so the model can only
write registered tools with well-formed, typed arguments; the validator catches
the rest (a mask nobody uses, an amount out of range) and the repair loop re-prompts.

Start-up is cached (issue 16): the adapter is merged into the base weights once and the merged
model kept as safetensors in the cache (see :func:`model.load_planner`); the tokenizer's xgrammar
info is kept there too, keyed by hashes of what it is made from. Cached or not, the weights and
the grammar are the same, so the plans are the same bit for bit.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from banana.agent import timings
from banana.agent.planner.base import PlanRequest, Surface, prompt_for
from banana.agent.planner.model import ADAPTER_DIR, atomic_write, cache_dir, file_hash, im_end_id, load_planner
from banana.agent.surface import steps_grammar
from banana.tools.registry import Registry


def compiled_grammar(tok: Any, folder: Path, vocab_size: int, stop: int, grammar: str, say: Callable[[str], None] = lambda _: None) -> Any:
    """xgrammar's compiled ``grammar`` for the tokenizer in ``folder``.

    The tokenizer's xgrammar info is cached (keyed by the tokenizer file, vocabulary size, stop token and xgrammar
    version; a damaged file is rebuilt, never an error): building it costs about 0.16 s of CPU, reading it 0.04 s.
    The grammar itself is compiled every time: compiling takes about 0.1 s of CPU, reading xgrammar's serialised
    compiled grammar (6 MB of JSON) 0.4 s, so caching it would make start-up slower (measured with xgrammar 0.2.8).
    """
    import xgrammar as xgr

    where = cache_dir() / "planner" / "grammar"
    tok_key = hashlib.sha256(f"{file_hash(folder / 'tokenizer.json')} {vocab_size} {stop} {version('xgrammar')}".encode()).hexdigest()[:20]
    info_file = where / f"tokenizer-{tok_key}.json"
    info = None
    if info_file.is_file():
        try:
            info = xgr.TokenizerInfo.deserialize_json(info_file.read_text())
        except Exception as exc:  # xgrammar's own errors (bad JSON, format, version): make it again
            say(f"rebuilding the damaged {info_file.name} ({type(exc).__name__})")
    if info is None:
        info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab_size, stop_token_ids=[stop])
        _write_quietly(info_file, info.serialize_json())
    return xgr.GrammarCompiler(info).compile_grammar(grammar)


def _write_quietly(path: Path, text: str) -> None:
    try:
        atomic_write(path, text.encode())
    except OSError:
        pass  # a read-only cache only costs the compile next time


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
        with timings.phase("import torch+transformers"):
            import torch

        torch.set_num_threads(threads)
        t = time.perf_counter()
        self.tok, model, folder = load_planner(adapter, say)
        self.model = model.eval()
        self.stop = im_end_id(self.tok)
        with timings.phase("grammar compile"):
            self.grammar = compiled_grammar(self.tok, folder, self.model.config.vocab_size, self.stop, steps_grammar(registry), say)
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
        with self._lock, torch.inference_mode(), timings.phase("decode"):
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      logits_processor=[self._processor()], eos_token_id=self.stop, pad_token_id=self.stop)
        texts = []
        for row in out[:, enc["input_ids"].shape[1]:]:
            ids = [int(i) for i in row if int(i) != self.stop]
            texts.append(self.tok.decode(ids, skip_special_tokens=True).strip())
        return texts

    def sample(self, request: PlanRequest, k: int = 4, temperature: float = 0.8, top_p: float = 0.95, seed: int = 0,
               previous: str = "", problems: list[str] | None = None) -> list[str]:
        """``k`` plans drawn under the grammar (temperature / nucleus sampling), for reranking and re-plans."""
        import torch

        enc = self.tok([prompt_for(request.instruction, previous, problems)], return_tensors="pt", add_special_tokens=False)
        with self._lock, torch.inference_mode(), timings.phase("decode"):
            torch.manual_seed(seed)
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=True, temperature=temperature, top_p=top_p,
                                      num_return_sequences=k, logits_processor=[self._processor()], eos_token_id=self.stop,
                                      pad_token_id=self.stop)
        rows = out[:, enc["input_ids"].shape[1]:]
        return [self.tok.decode([int(i) for i in row if int(i) != self.stop], skip_special_tokens=True).strip() for row in rows]

    def loglik(self, request: PlanRequest, texts: list[str]) -> list[float]:
        """Mean log-probability per token the model gives each answer text (its own confidence, for reranking)."""
        import torch

        prompt = prompt_for(request.instruction)
        p_ids = self.tok(prompt, add_special_tokens=False)["input_ids"]
        scores = []
        with self._lock, torch.inference_mode():
            for text in texts:
                a_ids = self.tok(text, add_special_tokens=False)["input_ids"] + [self.stop]
                ids = torch.tensor([p_ids + a_ids])
                logp = torch.log_softmax(self.model(ids).logits[0, len(p_ids) - 1 : -1].float(), dim=-1)
                scores.append(float(logp.gather(1, torch.tensor(a_ids)[:, None]).mean()))
        return scores
