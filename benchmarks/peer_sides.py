"""The sides of ``peers.py``'s comparison: the models it builds and the training peers.

* models: a randomly initialised Llama of about a given size (no download) and a tokenizer that
  spells token ids, for a model without a vocabulary of words;
* training: lorasweep's ``fit`` and the Trainer-based peers (TRL's ``SFTTrainer`` in three
  configurations, the ``Trainer`` padded to ``max_length``), each from the same LoRA
  initialisation, each returning its per-step losses, real tokens and end times.

``gpu_throughput.py`` uses the same sides on an accelerator.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, median

sys.path.insert(0, str(Path(__file__).resolve().parent))  # compare_plain, run from anywhere

import torch  # noqa: E402
from compare_plain import trainer_arguments  # noqa: E402
from peft import get_peft_model  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback  # noqa: E402

from lorasweep.config.schema import TrainingConfig  # noqa: E402
from lorasweep.training.adapters import peft_config  # noqa: E402
from lorasweep.training.loop import StepLog, _micro_batches, fit  # noqa: E402

# --- models ------------------------------------------------------------------------------------


def llama_config(millions: float, vocab: int, pad_id: int, eos_id: int) -> LlamaConfig:
    """The shallowest Llama of at least ``millions`` parameters at Pythia's width for its size
    (512 under 100M, 768 under 300M, 1024 above), head size 64, 4 query heads per key-value
    head, SwiGLU width 8/3 of the hidden size, untied embeddings: layers are added one by one."""
    hidden = 512 if millions < 100 else 768 if millions < 300 else 1024
    heads = hidden // 64
    for layers in range(1, 129):
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=64 * round(8 * hidden / 3 / 64),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads // 4,
            head_dim=64,
            max_position_embeddings=2048,
            tie_word_embeddings=False,
            pad_token_id=pad_id,
            eos_token_id=eos_id,
            bos_token_id=None,
        )
        if parameters(config) >= millions * 1e6:
            return config
    raise ValueError(f"--size {millions} is beyond this script's range")


def parameters(config: LlamaConfig) -> int:
    """Parameter count of a Llama config, from its shapes (meta device: nothing allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in LlamaForCausalLM(config).parameters())


def random_llama(config: LlamaConfig) -> LlamaForCausalLM:
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    return model


def id_tokenizer(vocab_size: int, pad_id: int, eos_id: int):
    """A real (fast) tokenizer whose token ``i`` is spelled ``"i"``: what ``generate`` and TRL
    need for a model without a vocabulary of words, and decoding spells the ids, so equal texts
    are equal tokens."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(WordLevel({str(i): i for i in range(vocab_size)}, unk_token=str(pad_id)))
    words.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token=str(pad_id), eos_token=str(eos_id), padding_side="right"
    )


# --- training ----------------------------------------------------------------------------------


@dataclass
class Trained:
    """One training configuration's run: per-step losses, real tokens and end times."""

    name: str
    losses: list[float]
    tokens: list[int]  # real tokens per step
    ends: list[float]  # perf_counter at each step's end
    started: float
    examples_per_step: float
    more_rates: list[float] = field(default_factory=list)  # timed steps of later rounds

    @property
    def seconds(self) -> float:
        return self.ends[-1] - self.started

    @property
    def step_rates(self) -> list[float]:
        """Real tokens/s of each step after the first (which warms caches up)."""
        durations = [b - a for a, b in zip([self.started, *self.ends], self.ends, strict=False)]
        return [t / d for t, d in zip(self.tokens[1:], durations[1:], strict=True)]

    @property
    def rate(self) -> float:
        """Median real tokens/s over every timed step, this run's and later rounds'."""
        rates = self.step_rates + self.more_rates
        return median(rates) if rates else sum(self.tokens) / self.seconds


def with_lora(base: torch.nn.Module, lora: dict, seed: int) -> torch.nn.Module:
    """A copy of ``base`` with the demo's adapter, initialised from ``seed``: every side gets
    the same starting point and none sees another's adapter."""
    torch.manual_seed(seed)
    return get_peft_model(copy.deepcopy(base), peft_config(lora))


def train_lorasweep(base, lora, examples, config: TrainingConfig, pad_id, packing=False, seed=None):
    update = {"packing": packing} | ({"seed": seed} if seed is not None else {})
    config = config.model_copy(update=update)
    model = with_lora(base, lora, 42)
    logs: list[StepLog] = []
    ends: list[float] = []

    def on_step(log: StepLog) -> None:
        logs.append(log)
        ends.append(time.perf_counter())

    started = time.perf_counter()
    fit(model, examples, config, pad_id, on_step=on_step)
    name = f"lorasweep, packing {'on' if packing else 'off'}"
    losses, tokens = [s.loss for s in logs], [s.tokens for s in logs]
    return model, Trained(name, losses, tokens, ends, started, config.batch_size)


class StepClock(TrainerCallback):
    """Each optimizer step's end time and the Trainer's running count of real tokens."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.seen: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())
        self.seen.append(int(state.num_input_tokens_seen))


def run_trainer(name: str, trainer, examples_per_step: float) -> Trained:
    from transformers import PrinterCallback

    clock = StepClock()
    trainer.add_callback(clock)
    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    tokens = [b - a for a, b in zip([0, *clock.seen], clock.seen, strict=False)]
    return Trained(name, losses, tokens, clock.ends, started, examples_per_step)


def lorasweep_order(examples: list, config: TrainingConfig) -> list[int]:
    """The example indices of lorasweep's micro-batches for ``config``'s steps, in order.

    A Trainer that reads them in this order with lorasweep's batch size trains on lorasweep's
    batches, so its loss curve differs from lorasweep's only by arithmetic: with batches of its
    own drawing, 6 steps of the 105M model differ by 0.16-0.22 nats from batch order alone.
    """
    index = {id(e): i for i, e in enumerate(examples)}
    batches = _micro_batches(examples, config.batch_size, config.seed, config.group_by_length)
    micro = config.max_steps * config.gradient_accumulation_steps
    return [index[id(e)] for _ in range(micro) for e in next(batches)]


def in_order(trainer, order: list[int]):
    """``trainer`` reading its training set in ``order`` (a list is a sampler to a DataLoader)."""
    trainer._get_train_sampler = lambda *args, **kwargs: order
    return trainer


def train_padded_trainer(base, lora, examples, config, tokenizer, work: Path) -> Trained:
    """The common script: ``Trainer``, every batch padded to ``max_length`` (lorasweep's
    batches, so that the loss curves compare)."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    collator = DataCollatorForSeq2Seq(
        tokenizer, padding="max_length", max_length=config.max_length, label_pad_token_id=-100
    )
    dataset = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    trainer = Trainer(
        model=with_lora(base, lora, 42),
        args=TrainingArguments(**trainer_arguments(config, work)),
        train_dataset=dataset,
        data_collator=collator,
    )
    order = lorasweep_order(examples, config)
    return run_trainer("Trainer, padded to max_length", in_order(trainer, order), config.batch_size)


TRL_CONFIGS = {
    "SFTTrainer, padded to the batch's longest": {},
    "SFTTrainer, padding_free": {"padding_free": True},
    "SFTTrainer, packing (bfd, position ids)": {"packing": True, "packing_strategy": "bfd"},
}


def train_trl(name, base, lora, examples, config, tokenizer, work: Path) -> Trained:
    """TRL's ``SFTTrainer`` on the same encoded examples, loss on the completion only, in
    lorasweep's batches (packing apart).

    Packing fills rows of ``max_length`` tokens, so a step of ``batch_size`` rows would hold
    about twice the examples; its batch is cut to keep the examples per step (and so the loss
    curve's scale) close to the others'.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    options = TRL_CONFIGS[name]
    lengths = [len(e.input_ids) for e in examples]
    batch, per_step = config.batch_size, float(config.batch_size)
    if options.get("packing"):
        per_row = max(1, config.max_length // round(fmean(lengths)))
        batch = max(1, round(config.batch_size / per_row))
        per_step = batch * per_row
    dataset = Dataset.from_dict(
        {
            "input_ids": [e.input_ids for e in examples],
            "completion_mask": [[int(t != -100) for t in e.labels] for e in examples],
        }
    )
    # TRL turns bf16 autocast on by default; lorasweep and the Trainer compute in the model's
    # dtype, so the comparison does too.
    arguments = trainer_arguments(config, work, bf16=False, **options)
    arguments["per_device_train_batch_size"] = batch
    # lorasweep's encoding already cut every example to max_length; padding-free refuses one.
    max_length = None if options.get("padding_free") else config.max_length
    sft = SFTConfig(
        **arguments, max_length=max_length, completion_only_loss=True, dataset_num_proc=None
    )
    trainer = SFTTrainer(
        model=with_lora(base, lora, 42), args=sft, train_dataset=dataset, processing_class=tokenizer
    )
    if not options.get("packing"):  # packed rows are not lorasweep's batches: TRL's own order
        trainer = in_order(trainer, lorasweep_order(examples, config))
    return run_trainer(name, trainer, per_step)
