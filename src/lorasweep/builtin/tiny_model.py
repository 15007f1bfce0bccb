"""The built-in tiny Llama: pretrained by lorasweep itself, offline, on the synthetic dialogues.

It never sees a summary: pretraining teaches it the language of the dialogues, so zero-shot it
cannot summarize and LoRA fine-tuning has something real to teach. The result is an ordinary
Hugging Face model folder (config, safetensors, tokenizer with a chat template), cached under
the user's cache directory and keyed by a hash of its recipe, so every code path that loads a
hub model loads this one the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from lorasweep.cache import cache_dir

BUILTIN_MODEL = "builtin:tiny-llama"
# Part of the cache key with the recipe: bump it whenever the build code changes what it makes.
BUILD_VERSION = 3
BOS, EOS, PAD = "<|bos|>", "<|end|>", "<|pad|>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"

# One user message and one assistant reply; every turn ends with EOS, so generation stops there.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>' + m['content'] + eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines the built-in model; its hash names the cache folder."""

    corpus_size: int = 4000  # dialogues of the built-in train split used for pretraining
    vocab_size: int = 2048
    hidden_size: int = 128
    layers: int = 2  # two layers are enough for induction (copying) heads, and twice as fast as 4
    heads: int = 4
    intermediate_size: int = 384
    context: int = 256  # pretraining chunk length; covers a whole prompt + summary
    max_positions: int = 1024
    # Copying names from earlier in a chat (what summarizing needs) appears abruptly, after
    # about 800 steps at this size; 1000 steps at a steady rate leave a margin (~3 min on 2 cores).
    steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 3e-3
    seed: int = 0

    def key(self) -> str:
        text = json.dumps({**dataclasses.asdict(self), "build": BUILD_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def micro(cls) -> TinyRecipe:
        """A model of well under 1M parameters that builds in seconds, for tests."""
        return cls(
            corpus_size=300, vocab_size=384, hidden_size=32, layers=2, heads=2,
            intermediate_size=64, context=64, max_positions=512, steps=30, batch_size=8,
        )  # fmt: skip


def builtin_model_path(
    recipe: TinyRecipe | None = None, log: Callable[[str], None] = print
) -> Path:
    """The folder of the built-in model, building it first if it is not cached."""
    recipe = recipe or TinyRecipe()
    target = cache_dir() / "models" / f"tiny-llama-{recipe.key()}"
    if (target / "config.json").is_file():
        return target
    log(f"Building the built-in tiny model (once; cached in {target}) ...")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        build_tiny_model(recipe, staging, log=log)
        try:
            staging.rename(target)  # atomic: a half-built model is never visible under its name
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent build that won
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_tiny_model(recipe: TinyRecipe, out_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Train a tokenizer, pretrain a tiny Llama on built-in dialogues, save both to ``out_dir``."""
    from lorasweep.builtin.corpus import SPLIT_SEEDS, generate_dialogues

    dialogues = [
        row["dialogue"] for row in generate_dialogues(recipe.corpus_size, SPLIT_SEEDS["train"])
    ]
    tokenizer = train_tokenizer(dialogues, recipe.vocab_size)
    torch.manual_seed(recipe.seed)
    config = tiny_config(recipe)
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    model = LlamaForCausalLM(config)
    _pretrain(model, tokenizer, dialogues, recipe, log)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "lorasweep_recipe.json").write_text(json.dumps(dataclasses.asdict(recipe)))
    return out_dir


def tiny_config(recipe: TinyRecipe) -> LlamaConfig:
    """The architecture alone: what a dry run needs to check LoRA target names."""
    return LlamaConfig(
        vocab_size=recipe.vocab_size,  # the tokenizer never has more tokens than this
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        max_position_embeddings=recipe.max_positions,
        tie_word_embeddings=True,
    )


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text encodes) with a chat template and a BOS prefix."""
    core = Tokenizer(models.BPE())
    # Every word carries its leading space, also at the start of a line, so "Anna" is one token
    # whether it opens a chat line ("\nAnna: ...") or sits inside a summary ("... and Anna").
    # Copying a name from the dialogue is then copying a token, which a tiny model can learn.
    core.normalizer = normalizers.Replace("\n", "\n ")
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, USER, ASSISTANT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    bos_id = core.token_to_id(BOS)
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[USER, ASSISTANT],
        chat_template=CHAT_TEMPLATE,
    )


def _pretrain(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    dialogues: list[str],
    recipe: TinyRecipe,
    log: Callable[[str], None],
) -> None:
    """Next-token prediction over dialogues packed into fixed-length chunks."""
    stream: list[int] = []
    for ids in tokenizer(dialogues, add_special_tokens=True)["input_ids"]:
        stream += ids + [tokenizer.eos_token_id]
    chunks = torch.tensor(stream[: len(stream) // recipe.context * recipe.context]).view(
        -1, recipe.context
    )
    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    warmup, decay_from = max(1, recipe.steps // 20), int(recipe.steps * 0.8)

    def schedule(step: int) -> float:
        """Warm up, hold, then decay over the last fifth: a cosine decay from the start would
        slow learning down before the copying heads have formed."""
        if step < warmup:
            return (step + 1) / warmup
        if step < decay_from:
            return 1.0
        return 0.1 + 0.9 * (recipe.steps - step) / max(1, recipe.steps - decay_from)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    for step, batch in zip(
        range(recipe.steps), _shuffled_batches(chunks, recipe, generator), strict=False
    ):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == recipe.steps - 1:
            log(f"  pretraining step {step + 1}/{recipe.steps}: loss {loss.item():.3f}")
    model.eval()


def _shuffled_batches(chunks: torch.Tensor, recipe: TinyRecipe, generator: torch.Generator):
    """Endless epochs over the chunks, each in a fresh seeded order."""
    size = min(recipe.batch_size, len(chunks))
    while True:
        order = torch.randperm(len(chunks), generator=generator)
        for start in range(0, len(order) - size + 1, size):
            yield chunks[order[start : start + size]]
