"""Plan-time decoding of the embedded planner with torch alone (issue 16).

transformers builds the planner (GGUF conversion, LoRA merge, training) and is the reference the tests compare
against; it is not imported to plan. Importing its modeling and tokenizer chain cost about 2 s of the 4.7 s a cold
`banana plan` took, more than the plan itself. SmolLM2-135M is a plain Llama (RMSNorm, rotary positions,
grouped-query attention, SwiGLU, tied embeddings), so its forward pass over the merged safetensors is a few torch
calls, done here in the order transformers does them; the tokenizer is the `tokenizers` library's, which is what
transformers' fast tokenizer wraps. Greedy plans are the same as `model.generate` gives (tests compare them).

Decoding is grammar-constrained with xgrammar's matcher: each step fills the allowed-token bitmask, masks the
logits and takes the argmax (or samples), exactly what xgrammar's transformers logits processor does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [batch, kv heads, positions, head dim]


class LlamaConfig:
    """The fields of a Llama config.json the forward pass reads; anything else in the file is not needed here."""

    def __init__(self, raw: dict[str, Any]) -> None:
        if raw.get("model_type") != "llama":
            raise ValueError(f"the planner decoder runs Llama models; config.json says model_type={raw.get('model_type')!r}")
        rope = raw.get("rope_parameters") or {"rope_theta": raw.get("rope_theta", 10000.0), "rope_type": "default"}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"the planner decoder supports default rotary positions, not {rope.get('rope_type')!r}")
        self.hidden = int(raw["hidden_size"])
        self.layers = int(raw["num_hidden_layers"])
        self.heads = int(raw["num_attention_heads"])
        self.kv_heads = int(raw.get("num_key_value_heads", self.heads))
        self.head_dim = int(raw.get("head_dim") or self.hidden // self.heads)
        self.vocab_size = int(raw["vocab_size"])
        self.eps = float(raw["rms_norm_eps"])
        self.rope_theta = float(rope["rope_theta"])
        self.tied = bool(raw.get("tie_word_embeddings", False))


class Decoder:
    """A Llama causal LM's forward pass over a weights dict (names as transformers saves them), fp32 on the CPU."""

    def __init__(self, config: LlamaConfig, weights: dict[str, torch.Tensor], tokenizer_file: Path) -> None:
        from tokenizers import Tokenizer

        self.config = config
        self.weights = weights
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        w = weights
        self._layers = [
            tuple(w[f"model.layers.{i}.{name}.weight"] for name in (
                "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"))
            for i in range(config.layers)
        ]
        self._embed = w["model.embed_tokens.weight"]
        self._norm = w["model.norm.weight"]
        self._head = self._embed if config.tied or "lm_head.weight" not in w else w["lm_head.weight"]
        d = config.head_dim
        self._inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).to(dtype=torch.float) / d))

    @classmethod
    def from_folder(cls, folder: Path, weights: dict[str, torch.Tensor] | None = None) -> Decoder:
        """The model saved in ``folder`` (config.json, tokenizer.json, model.safetensors memory-mapped), or ``weights``
        already in memory with that folder's config and tokenizer."""
        from safetensors.torch import load_file

        config = LlamaConfig(json.loads((folder / "config.json").read_text()))
        if weights is None:
            weights = load_file(folder / "model.safetensors")
        elif config.tied:  # a model's state_dict lists the tied head; the saved file holds the tensor once
            weights = {k: v for k, v in weights.items() if k != "lm_head.weight"}
        return cls(config, weights, folder / "tokenizer.json")

    # ------------------------------------------------------------------ text

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def token_id(self, token: str) -> int:
        found = self.tokenizer.token_to_id(token)
        if found is None:
            raise ValueError(f"the planner's tokenizer has no {token!r} token")
        return int(found)

    # ------------------------------------------------------------------ the network

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.config.eps))

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return (x * cos) + (rotated * sin)

    def hidden(self, ids: torch.Tensor, cache: KV | None = None) -> tuple[torch.Tensor, KV]:
        """Final-norm hidden states of ``ids`` [batch, n] after the positions already in ``cache``, and the new cache.
        Several new tokens are allowed only on an empty cache (the prompt); after that one token per row at a time."""
        c = self.config
        batch, n = ids.shape
        past = 0 if cache is None else cache[0][0].shape[2]
        if n > 1 and past:
            raise ValueError("the decoder takes several tokens only as the first call (the prompt)")
        positions = torch.arange(past, past + n, dtype=torch.float)
        freqs = positions[:, None] * self._inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        h = F.embedding(ids, self._embed)
        new_cache: KV = []
        for i, (ln1, wq, wk, wv, wo, ln2, wg, wu, wd) in enumerate(self._layers):
            x = self._rms(h, ln1)
            q = F.linear(x, wq).view(batch, n, c.heads, c.head_dim).transpose(1, 2)
            k = F.linear(x, wk).view(batch, n, c.kv_heads, c.head_dim).transpose(1, 2)
            v = F.linear(x, wv).view(batch, n, c.kv_heads, c.head_dim).transpose(1, 2)
            q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
            if cache is not None:
                k = torch.cat((cache[i][0], k), dim=2)
                v = torch.cat((cache[i][1], v), dim=2)
            new_cache.append((k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=n > 1, scale=c.head_dim**-0.5, enable_gqa=c.kv_heads != c.heads)
            h = h + F.linear(a.transpose(1, 2).reshape(batch, n, c.heads * c.head_dim), wo)
            x = self._rms(h, ln2)
            h = h + F.linear(F.silu(F.linear(x, wg)) * F.linear(x, wu), wd)
        return self._rms(h, self._norm), new_cache

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self._head)

    # ------------------------------------------------------------------ decoding

    def generate(self, prompt: list[int], grammar: Any, stop: int, max_new_tokens: int, *, k: int = 1,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> list[list[int]]:
        """``k`` answers to ``prompt`` under the compiled xgrammar ``grammar``: greedy when ``temperature`` is 0, else
        sampled (temperature, then nucleus ``top_p``) from a generator seeded with ``seed``. Each answer stops at
        ``stop`` (not included) or after ``max_new_tokens``."""
        import xgrammar as xgr

        matchers = [xgr.GrammarMatcher(grammar) for _ in range(k)]
        bitmask = xgr.allocate_token_bitmask(k, grammar.tokenizer_info.vocab_size)
        rng = torch.Generator().manual_seed(seed)
        hidden, cache = self.hidden(torch.tensor([prompt]))
        cache = [(key.expand(k, -1, -1, -1), value.expand(k, -1, -1, -1)) for key, value in cache]
        last = hidden[:, -1].expand(k, -1)
        answers: list[list[int]] = [[] for _ in range(k)]
        done = [False] * k
        for _ in range(max_new_tokens):
            scores = self.logits(last)
            for row, matcher in enumerate(matchers):
                if not done[row]:
                    matcher.fill_next_token_bitmask(bitmask, row)
            xgr.apply_token_bitmask_inplace(scores, bitmask)
            picked = scores.argmax(-1) if temperature <= 0 else _sample(scores, temperature, top_p, rng)
            for row, token in enumerate(picked.tolist()):
                if done[row]:
                    continue
                if token == stop:
                    done[row] = True
                    continue
                matchers[row].accept_token(token)
                answers[row].append(token)
            if all(done):
                break
            feed = torch.tensor([[answers[row][-1] if answers[row] and not done[row] else stop] for row in range(k)])
            hidden, cache = self.hidden(feed, cache)
            last = hidden[:, -1]
        return answers

    def mean_logprob(self, prompt: list[int], answer: list[int]) -> float:
        """Mean log-probability per token of ``answer`` after ``prompt`` (no grammar: the model's own confidence)."""
        hidden, _ = self.hidden(torch.tensor([prompt + answer]))
        logp = torch.log_softmax(self.logits(hidden[0, len(prompt) - 1 : -1]), dim=-1)
        return float(logp.gather(1, torch.tensor(answer)[:, None]).mean())


def _sample(scores: torch.Tensor, temperature: float, top_p: float, rng: torch.Generator) -> torch.Tensor:
    """One token per row: temperature, then the smallest set of tokens whose probability reaches ``top_p``."""
    scores = scores / temperature
    if top_p < 1.0:
        ordered, order = torch.sort(scores, descending=False, dim=-1)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - top_p)
        drop[..., -1:] = False  # keep at least the most likely token
        scores = scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=rng)[:, 0]
