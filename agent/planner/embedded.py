"""The embedded backend: SmolLM2-135M + the project's LoRA, decoding under an xgrammar grammar.

The grammar is the steps form's EBNF built from the registry, so the model can only
write registered tools with well-formed, typed arguments; the validator catches
the rest (a mask nobody uses, an amount out of range) and the repair loop re-prompts.

Start-up is cached (issue 16): the adapter is merged into the base weights once and the merged
model kept as safetensors in the cache (see :func:`model.load_decoder`); the tokenizer's xgrammar
info is kept there too, keyed by hashes of what it is made from. Plans are decoded by
:mod:`decoder` with torch alone (no transformers import on this path). Cached or not, the weights
and the grammar are the same, so the plans are the same bit for bit.
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
from banana.agent.planner.model import ADAPTER_DIR, IM_END, atomic_write, cache_dir, file_hash, load_decoder
from banana.agent.surface import steps_grammar
from banana.tools.registry import Registry


def compiled_grammar(folder: Path, vocab_size: int, stop: int, grammar: str, say: Callable[[str], None] = lambda _: None) -> Any:
    """xgrammar's compiled ``grammar`` for the tokenizer in ``folder``.

    The tokenizer's xgrammar info is cached (keyed by the tokenizer file, vocabulary size, stop token and xgrammar
    version; a damaged file is rebuilt, never an error): building it needs transformers' tokenizer and costs about
    1.5 s with the import, reading it 0.04 s. The grammar itself is compiled every time: compiling takes about 0.1 s
    of CPU, reading xgrammar's serialised compiled grammar (6 MB of JSON) 0.4 s, so caching it would make start-up
    slower (measured with xgrammar 0.2.8).
    """
    with timings.phase("import xgrammar"):
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
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
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
        with timings.phase("import torch"):
            import torch

        torch.set_num_threads(threads)
        t = time.perf_counter()
        self.decoder, folder = load_decoder(adapter, say)
        self.stop = self.decoder.token_id(IM_END)
        with timings.phase("grammar compile"):
            self.grammar = compiled_grammar(folder, self.decoder.config.vocab_size, self.stop, steps_grammar(registry), say)
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # one decode at a time: the cache and matchers are per call, the threads are shared
        self.load_seconds = time.perf_counter() - t

    def _decode(self, prompt: str, **sampling: Any) -> list[str]:
        import torch

        ids = self.decoder.encode(prompt)
        with self._lock, torch.inference_mode(), timings.phase("decode"):
            answers = self.decoder.generate(ids, self.grammar, self.stop, self.max_new_tokens, **sampling)
        return [self.decoder.decode(a).strip() for a in answers]

    def generate(self, request: PlanRequest, previous: str = "", problems: list[str] | None = None) -> str:
        """The greedy, grammar-constrained answer to ``request`` (with the previous answer and its problems, a repair)."""
        return self._decode(prompt_for(request.instruction, previous, problems))[0]

    def sample(self, request: PlanRequest, k: int = 4, temperature: float = 0.8, top_p: float = 0.95, seed: int = 0,
               previous: str = "", problems: list[str] | None = None) -> list[str]:
        """``k`` plans drawn under the grammar (temperature / nucleus sampling), for reranking and re-plans."""
        return self._decode(prompt_for(request.instruction, previous, problems), k=k, temperature=temperature, top_p=top_p, seed=seed)

    def loglik(self, request: PlanRequest, texts: list[str]) -> list[float]:
        """Mean log-probability per token the model gives each answer text (its own confidence, for reranking)."""
        import torch

        p_ids = self.decoder.encode(prompt_for(request.instruction))
        with self._lock, torch.inference_mode():
            return [self.decoder.mean_logprob(p_ids, [*self.decoder.encode(text), self.stop]) for text in texts]
