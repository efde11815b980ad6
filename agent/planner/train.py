"""LoRA fine-tuning of the embedded planner on generated (instruction, steps) pairs.

Bounded in time and reproducible from a seed: the same seed gives the same data,
the same order and the same initial adapter; the run stops at ``minutes`` or when
the data is used up. A small share of examples teach repair: the prompt carries a
broken plan and the validator's exact messages, the answer is the right plan.
``init`` continues from an earlier adapter (its weights are the starting point; the
new run still sees every family, so nothing it knew is left out of the data).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from banana.agent.planner.base import Refusal, prompt_for, read_answer
from banana.agent.planner.data import Example, Generator
from banana.agent.planner.model import ADAPTER_DIR, IM_END, load_base
from banana.agent.program import ProgramError, validate
from banana.agent.surface import parse_steps
from banana.tools.registry import Registry

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainConfig(BaseModel):
    seed: int = 0
    examples: int = Field(default=8000, ge=8)
    minutes: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=8, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    rank: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    repair_fraction: float = Field(default=0.05, ge=0, le=0.5)
    threads: int = Field(default=1, ge=1)
    out: Path = ADAPTER_DIR
    init: Path | None = Field(default=None, description="start from this adapter instead of a fresh LoRA")
    focus: dict[str, float] = Field(default_factory=dict, description="family -> weight multiplier for the generated data (self-play)")


class TrainReport(BaseModel):
    config: dict[str, Any]
    examples_seen: int
    steps: int
    seconds: float
    examples_per_second: float
    first_loss: float
    final_loss: float
    stopped_by: str


def completion_for(steps: str) -> str:
    return steps.strip() + "\n" + IM_END


def check_examples(examples: list[Example], registry: Registry) -> None:
    """Every gold answer must lower and validate (or be a well-formed refusal): a generator bug should stop training, not be learned."""
    for ex in examples:
        try:
            answer = read_answer(ex.steps, "steps", registry)
            if not isinstance(answer, Refusal):
                validate(answer, registry)
        except ProgramError as exc:
            raise ValueError(f"generated example {ex.instruction!r} -> {ex.steps!r} is invalid: {exc}") from None


CORRUPTIONS = ("drop_first", "bad_value", "typo_tool", "extra_mask")


def corrupt(steps: str, rng: random.Random) -> str:
    lines = steps.splitlines()
    kind = rng.choice(CORRUPTIONS)
    if kind == "drop_first" and len(lines) > 1:
        return "\n".join(lines[1:])
    if kind == "bad_value":
        for i, line in enumerate(lines):
            for key in ("amount=", "brightness=", "contrast=", "saturation=", "warmth=", "strength="):
                if key in line:
                    head, _, tail = line.partition(key)
                    rest = tail.split(" ", 1)
                    lines[i] = head + key + rng.choice(["1.5", "3", "-2", "7"]) + (" " + rest[1] if len(rest) > 1 else "")
                    return "\n".join(lines)
    if kind == "typo_tool":
        i = rng.randrange(len(lines))
        name, _, rest = lines[i].partition(" ")
        lines[i] = (name[:-1] + name[-1] * 2 + " " + rest).strip()
        return "\n".join(lines)
    return "\n".join([*lines, 'segment target="' + rng.choice(["person", "sky", "car"]) + '"'])


def repair_examples(examples: list[Example], registry: Registry, n: int, rng: random.Random) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for ex in rng.sample(examples, min(n * 2, len(examples))):
        if ex.refusal:
            continue
        broken = corrupt(ex.steps, rng)
        try:
            validate(parse_steps(broken, registry), registry)
            continue  # the corruption happened to be valid
        except ProgramError as exc:
            problems = [str(p) for p in exc.problems]
        out.append((prompt_for(ex.instruction, broken, problems), completion_for(ex.steps)))
        if len(out) >= n:
            break
    return out


def build_pairs(cfg: TrainConfig, registry: Registry) -> list[tuple[str, str]]:
    examples = Generator(cfg.seed, "train", registry, focus=cfg.focus).examples(cfg.examples)
    check_examples(examples, registry)
    rng = random.Random(cfg.seed + 1)
    pairs = [(prompt_for(ex.instruction), completion_for(ex.steps)) for ex in examples]
    pairs += repair_examples(examples, registry, int(len(examples) * cfg.repair_fraction), rng)
    rng.shuffle(pairs)
    return pairs


def _batches(encoded: list[tuple[list[int], int]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped by similar length (less padding), in a shuffled order."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]), rng.random()))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def train(cfg: TrainConfig, registry: Registry, say: Callable[[str], None] = print) -> TrainReport:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    pairs = build_pairs(cfg, registry)
    say(f"{len(pairs)} training pairs (seed {cfg.seed})")
    tok, model = load_base(say)
    if cfg.init is not None:
        from peft import PeftModel

        say(f"starting from the adapter in {cfg.init}")
        model = PeftModel.from_pretrained(model, str(cfg.init), is_trainable=True)
        for p in model.parameters():  # saved in float16; train in float32
            if p.requires_grad:
                p.data = p.data.float()
    else:
        model = get_peft_model(model, LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0, target_modules=LORA_TARGETS,
                                                 task_type="CAUSAL_LM"))
    encoded = []
    for prompt, completion in pairs:
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        c = tok(completion, add_special_tokens=False)["input_ids"]
        encoded.append((p + c, len(p)))
    rng = random.Random(cfg.seed + 2)
    batches = _batches(encoded, cfg.batch_size, rng)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    warmup = min(20, len(batches) // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / len(batches), 1.0)))))
    pad = tok.pad_token_id
    model.train()
    start = time.perf_counter()
    seen, losses, stopped_by = 0, [], "data"
    for step, batch in enumerate(batches):
        if time.perf_counter() - start > cfg.minutes * 60:
            stopped_by = "time"
            break
        width = max(len(encoded[i][0]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            seq, n_prompt = encoded[i]
            ids[row, : len(seq)] = torch.tensor(seq)
            labels[row, n_prompt: len(seq)] = torch.tensor(seq[n_prompt:])
            mask[row, : len(seq)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        seen += len(batch)
        losses.append(loss.item())
        if step % 25 == 0:
            elapsed = time.perf_counter() - start
            say(f"step {step}/{len(batches)}  loss {sum(losses[-25:]) / len(losses[-25:]):.4f}  "
                f"{seen / max(elapsed, 1e-9):.2f} ex/s  {elapsed / 60:.1f} min")
    seconds = time.perf_counter() - start
    save_adapter(model, cfg.out)
    config = json.loads(cfg.model_dump_json())
    if cfg.out.resolve().is_relative_to(Path.cwd()):
        config["out"] = str(cfg.out.resolve().relative_to(Path.cwd()))
    report = TrainReport(config=config, examples_seen=seen, steps=len(losses), seconds=seconds,
                         examples_per_second=seen / max(seconds, 1e-9), first_loss=losses[0] if losses else float("nan"),
                         final_loss=sum(losses[-25:]) / max(len(losses[-25:]), 1), stopped_by=stopped_by)
    (cfg.out / "training.json").write_text(report.model_dump_json(indent=2) + "\n")
    say(f"saved adapter to {cfg.out}: {seen} examples in {seconds / 60:.1f} min, final loss {report.final_loss:.4f}")
    return report


def save_adapter(model: Any, out: Path) -> None:
    """Save the LoRA weights in float16 (half the size; loading casts back)."""
    import torch
    from safetensors.torch import load_file, save_file

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    weights = out / "adapter_model.safetensors"
    state = {k: v.to(torch.float16).contiguous() for k, v in load_file(weights).items()}
    save_file(state, weights, metadata={"format": "pt"})
    readme = out / "README.md"
    if readme.exists():
        readme.unlink()  # peft's model card template: not ours


# ---------------------------------------------------------------- self-play pairs (issue 12: the --from-traces hook)


def selfplay_pairs(path: Path, registry: Registry) -> list[tuple[str, str]]:
    """Prompt/completion pairs written by ``banana selfplay`` (JSONL); every completion must lower and validate.

    A bad line is an error naming the file and line, so a damaged file stops training instead of being learned.
    """
    pairs = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            prompt, completion = item["prompt"], item["completion"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{i}: not a self-play pair ({type(exc).__name__}: {exc})") from None
        if not (isinstance(prompt, str) and isinstance(completion, str) and completion.endswith(IM_END)):
            raise ValueError(f"{path}:{i}: prompt and completion must be strings, the completion ending with {IM_END}")
        try:
            answer = read_answer(completion.removesuffix(IM_END), "steps", registry)
            if not isinstance(answer, Refusal):
                validate(answer, registry)
        except ProgramError as exc:
            raise ValueError(f"{path}:{i}: the completion is not a valid plan: {exc}") from None
        pairs.append((prompt, completion))
    return pairs


def train_from_traces(cfg: TrainConfig, registry: Registry, traces: Path, say: Callable[[str], None] = print) -> TrainReport:
    """:func:`train` on the generated pairs plus self-play pairs (``banana planner train --from-traces FILE``)."""
    global build_pairs
    extra = selfplay_pairs(traces, registry)
    say(f"{len(extra)} self-play pairs from {traces}")
    generated = build_pairs

    def with_selfplay(c: TrainConfig, r: Registry) -> list[tuple[str, str]]:
        pairs = generated(c, r) + extra
        random.Random(c.seed + 3).shuffle(pairs)
        return pairs

    build_pairs = with_selfplay
    try:
        return train(cfg, registry, say)
    finally:
        build_pairs = generated
