"""Batched greedy generation: prompts sorted by length, a KV cache, each sequence stopped at EOS.

Two decoders give the same tokens as transformers' ``generate`` run on one prompt at a time
(``tests/test_generation.py`` checks both):

* :class:`LeanDecoder`, for the Llama family (Llama, Mistral, Qwen2, Qwen3 with SDPA attention,
  the models lorasweep is built around). It drives the model's own decoder layers, so the
  arithmetic is the model's, but it owns the loop around them: one KV buffer per batch,
  allocated once, instead of a cache that is re-concatenated every step; the prompts' shared
  prefix (chat header and instruction, a third of a demo prompt) read once per call instead of
  once per prompt; the batch's prompts read in passes of similar length, so short ones are
  not padded to the longest; each sequence dropped from the batch as soon as it ends,
  instead of decoding on, masked, until the whole batch ends; and, on a CPU, the next-token
  logits computed vocabulary-major (:meth:`LeanDecoder._next_tokens`) and, for a model of
  hidden size 512 or more, a decoding step's linear layers weight-major once it is down to 64
  rows (:class:`WeightMajorLinears`).
* transformers' ``generate``, for every other model.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

Decoder = Callable[[Sequence[list[int]]], list[list[int]]]

LEAN_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
# What one more prefill pass costs, in prompt tokens read: a pass over a few rows of similar
# length beats padding them to a longer row's width once it saves this many tokens. Measured on
# a 2-core CPU at 105M parameters, splits of 4 and 8 passes read 50 prompts in the same time.
PASS_TOKENS = 64
# The smallest hidden size at which :class:`WeightMajorLinears` pays for the Python dispatch it
# adds to every operation of a decoding step. Measured on a 2-core CPU, 50 prompts alternated
# in one process: the built-in model (hidden 128) decoded 6% slower with it, a 105M Llama
# (hidden 768) 11-12% faster at 16 and 32 rows.
WEIGHT_MAJOR_HIDDEN = 512


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every token that ends a reply: the tokenizer's EOS and the model's (Llama 3 has three)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    on_batch: Callable[[int], None] = lambda n: None,
    lean: bool = True,
) -> tuple[list[str], list[int]]:
    """Greedy completions of tokenized prompts, returned in the prompts' order.

    Prompts are sorted by length so each batch pads little; the longest go first, so an
    out-of-memory error shows up in the first batch rather than the last. ``lean=False`` forces
    transformers' ``generate`` (the benchmark compares the two).

    Returns:
        The decoded completions (special tokens removed, whitespace stripped) and the number of
        tokens generated for each (the stop token not counted).
    """
    model.eval()
    stops = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    decode: Decoder
    if lean and LeanDecoder.unsupported(model, max(map(len, prompts)) + max_new_tokens) is None:
        decode = LeanDecoder(model, prompts, max_new_tokens, stops)
    else:
        decode = _generate_decoder(model, max_new_tokens, stops, pad_id)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    texts: list[str] = [""] * len(prompts)
    lengths: list[int] = [0] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for i, new in zip(chunk, decode([prompts[i] for i in chunk]), strict=True):
            lengths[i] = len(new)
            texts[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
        on_batch(len(chunk))
    return texts, lengths


def _generate_decoder(
    model: PreTrainedModel, max_new_tokens: int, stops: list[int], pad_id: int
) -> Decoder:
    """transformers' ``generate`` on a left-padded batch: any model, more work per step."""
    device = next(model.parameters()).device
    config = greedy_config(max_new_tokens, stops, pad_id)

    def decode(prompts: Sequence[list[int]]) -> list[list[int]]:
        input_ids, attention_mask = _left_padded(prompts, pad_id)
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=config,
        )
        return [_until_stop(row, stops) for row in output[:, input_ids.shape[1] :].tolist()]

    return decode


def greedy_config(max_new_tokens: int, stops: Sequence[int], pad_id: int) -> GenerationConfig:
    """Plain greedy decoding for transformers' ``generate``, whatever the model's own file says.

    ``generate`` takes every setting its config leaves unset from the model's
    ``generation_config.json``, where hub models keep their sampling and penalty defaults
    (Qwen2.5's ``repetition_penalty: 1.1`` demotes every token of the prompt): left unset, they
    would make this decoder's tokens differ from the lean decoder's. transformers' own defaults,
    set explicitly, are the neutral values.
    """
    defaults = GenerationConfig._get_default_generation_params()
    defaults.pop("max_length")  # max_new_tokens decides the length
    return GenerationConfig(**{**defaults, "do_sample": False}, max_new_tokens=max_new_tokens,
                            eos_token_id=list(stops), pad_token_id=pad_id)  # fmt: skip


def _left_padded(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every prompt ends in the last column, where generation starts."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[row, width - len(prompt) :] = 1
    return input_ids, attention_mask


def _until_stop(tokens: list[int], stops: Sequence[int]) -> list[int]:
    end = next((k for k, t in enumerate(tokens) if t in stops), len(tokens))
    return tokens[:end]


def prefill_passes(widths: Sequence[int], limit: int) -> list[slice]:
    """Consecutive rows read in one forward pass each: the split that reads the fewest tokens,
    padding included, counting :data:`PASS_TOKENS` more for each pass, with at most ``limit``
    tokens per pass (a single row may have more).

    Every row of a pass is padded to the pass's widest, so a batch's short prompts read in a
    pass of their own skip that padding; sorted rows (as :func:`generate` passes them) split
    into runs of similar width. A dynamic programme over the split points.
    """
    n = len(widths)
    best = [0] + [0x7FFFFFFF] * n  # best[j]: the cost of the cheapest split of rows [0, j)
    cut = [0] * (n + 1)  # cut[j]: where that split's last pass starts
    for end in range(1, n + 1):
        widest = 0
        for start in range(end - 1, -1, -1):
            widest = max(widest, widths[start])
            size = (end - start) * widest
            if size > limit and end - start > 1:
                break
            if best[start] + size + PASS_TOKENS < best[end]:
                best[end], cut[end] = best[start] + size + PASS_TOKENS, start
    passes, end = [], n
    while end:
        passes.append(slice(cut[end], end))
        end = cut[end]
    return passes[::-1]


class KVBuffer:
    """Keys and values of one batch, every layer's allocated once for the whole generation.

    It stands in for a transformers ``Cache``: each attention layer calls :meth:`update` with
    the keys and values of the columns ``[start, end)`` being computed and attends to columns
    ``[0, end)``, a view, not a copy.
    """

    def __init__(self, rows: int, capacity: int):
        self.rows, self.capacity = rows, capacity
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.start = self.end = 0

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        if layer_idx == len(self.keys):  # first write: allocate on the layer's device and dtype
            shape = (self.rows, key.shape[1], self.capacity, key.shape[3])
            self.keys.append(key.new_empty(shape))
            self.values.append(value.new_empty(shape))
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[:, :, self.start : self.end] = key
        values[:, :, self.start : self.end] = value
        return keys[:, :, : self.end], values[:, :, : self.end]

    def allocate_like(self, other: KVBuffer) -> None:
        """Allocate every layer's buffers with ``other``'s heads, head size, dtype and device.

        Zeros, not ``empty``: padding columns are masked out, but attention still multiplies
        their values by a weight of 0, and uninitialised memory can hold NaN (0 x NaN = NaN).
        """
        for source, target in ((other.keys, self.keys), (other.values, self.values)):
            for layer in source:
                shape = (self.rows, layer.shape[1], self.capacity, layer.shape[3])
                target.append(layer.new_zeros(shape))

    def copy_columns(
        self, other: KVBuffer, source: slice, target: slice, rows: slice = slice(None)
    ) -> None:
        """Copy ``other``'s columns ``source`` into ``rows`` of this buffer's ``target`` columns
        (one row of ``other`` is copied to every row)."""
        for mine, theirs in ((self.keys, other.keys), (self.values, other.values)):
            for layer, layer_other in zip(mine, theirs, strict=True):
                layer[rows, :, target] = layer_other[:, :, source]

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every other row (sequences that have ended)."""
        self.keys = [k.index_select(0, rows.to(k.device)) for k in self.keys]
        self.values = [v.index_select(0, rows.to(v.device)) for v in self.values]
        self.rows = len(rows)


class WeightMajorLinears(TorchFunctionMode):
    """Within it, a CPU float32 linear layer without a bias, applied to at most :data:`ROWS`
    rows, computes ``(W @ x.T).T`` instead of ``x @ W.T``.

    The decoding steps' products are that shape: a few dozen rows against weights of hundreds
    or thousands of columns, where MKL runs the weight-major product faster (measured on a
    2-core CPU, 1.0x-1.8x per layer shape at 16-64 rows; BENCHMARKS.md gives the effect on a
    whole evaluation). The products are the same; for some row counts their sums round
    differently in the last bit, which can only flip a near-tie. Other linears (a bias, another
    dtype or device, a prefill pass's thousands of rows) run as they are. The mode dispatches
    every operation through Python, so :class:`LeanDecoder` enters it only for a step where it
    pays (:meth:`LeanDecoder._linears`).
    """

    ROWS = 64

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear and len(args) >= 2:
            x, weight, bias = *args[:2], args[2] if len(args) > 2 else kwargs.get("bias")
            if (
                bias is None
                and x.device.type == "cpu"
                and x.dtype == weight.dtype == torch.float32
                and weight.dim() == 2
                and x.numel() <= self.ROWS * x.shape[-1]
            ):
                product = torch.mm(weight, x.reshape(-1, x.shape[-1]).t()).t()
                return product.view(*x.shape[:-1], weight.shape[0])
        return func(*args, **kwargs)


class LeanDecoder:
    """Greedy decoding of Llama-family models, batch by batch (see the module docstring).

    A batch's buffer columns hold, left to right: the shared prefix, each prompt's remainder
    right-aligned (so shorter ones start with masked padding), then the generated tokens, one
    column per step for every row. Position ids count real tokens only, so every token sits at
    the position it has when its prompt is read alone.

    Args:
        model: A model :meth:`unsupported` accepts, in eval mode.
        prompts: Every prompt of the evaluation; their common prefix is read once, here.
        max_new_tokens: The cap on new tokens per prompt.
        stops: Token ids that end a sequence (not included in its output).
        prefill_tokens: The most prompt tokens, padding included, read in one forward pass (a
            bound on the pass's activations); within it, :meth:`_chunks` splits a batch where
            that skips more padding than another pass costs.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        prompts: Sequence[list[int]],
        max_new_tokens: int,
        stops: Sequence[int],
        prefill_tokens: int = 4096,
    ):
        self.decoder = model.get_decoder()
        self.max_new_tokens = max_new_tokens
        self.stops = frozenset(stops)
        self.prefill_tokens = prefill_tokens
        self.embed, self.head = model.get_input_embeddings(), model.get_output_embeddings()
        self.device = self.embed.weight.device
        head = self.head
        self.vocab_major = (
            self.device.type == "cpu" and type(head) is torch.nn.Linear and head.bias is None
        )
        hidden = self.embed.weight.shape[-1]
        self.weight_major = self.device.type == "cpu" and hidden >= WEIGHT_MAJOR_HIDDEN
        layer_params = inspect.signature(self.decoder.layers[0].forward).parameters
        self.cache_arg = "cache" if "cache" in layer_params else "past_key_values"
        # Every prompt keeps at least one token of its own: its logits give the first new token.
        shared = len(os.path.commonprefix(list(prompts))) if len(prompts) > 1 else 0
        self.prefix = list(prompts[0][: min(shared, min(map(len, prompts)) - 1)])
        self.prefix_kv = self._read_prefix() if self.prefix else None

    @staticmethod
    def unsupported(model: PreTrainedModel, longest: int) -> str | None:
        """Why this decoder cannot run ``model`` on sequences up to ``longest`` tokens, or None."""
        config = model.config
        if config.model_type not in LEAN_MODEL_TYPES:
            return f"model type {config.model_type!r} is not in the Llama family"
        if config._attn_implementation != "sdpa":
            return f"attention {config._attn_implementation!r} is not sdpa"
        if any(t != "full_attention" for t in getattr(config, "layer_types", None) or []):
            return "some layers use sliding-window attention"
        window = getattr(config, "sliding_window", None)
        if window is not None and window < longest:
            return f"sliding window {window} is shorter than {longest} tokens"
        return None

    def _layers(
        self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, kv
    ) -> torch.Tensor:
        """The decoder's layers over ``ids``; returns their output (before the final norm)."""
        hidden = self.embed(ids)
        rotary = self.decoder.rotary_emb(hidden, position_ids=positions)
        for layer in self.decoder.layers:
            hidden = layer(
                hidden,
                attention_mask=mask,
                position_ids=positions,
                position_embeddings=rotary,
                **{self.cache_arg: kv},
            )
        return hidden

    def _next_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """Each row's greedy next token, from the layers' output in its last column.

        On a CPU the logits are computed vocabulary-major, ``W @ h.T``: for a few dozen rows
        and a vocabulary of 32,000, MKL runs that product in two thirds of the time of
        ``h @ W.T`` (29 ms against 43 ms a step at 105M parameters and 50 rows, 2 cores). The
        products are the same; for some shapes their sums round differently in the last bit,
        which can only flip a near-tie (``tests/test_generation.py`` checks both ways against
        ``generate``). A head with a bias, or quantized, or on an accelerator is called as is.
        """
        last = self.decoder.norm(hidden[:, -1])
        if self.vocab_major:
            return torch.mm(self.head.weight, last.t()).argmax(dim=0)
        return self.head(last).argmax(dim=-1)

    def _linears(self, rows: int) -> contextlib.AbstractContextManager:
        """The mode a decoding step over ``rows`` rows runs its linear layers in: weight-major
        on a CPU for a wide enough model and few enough rows, else as they are."""
        if self.weight_major and rows <= WeightMajorLinears.ROWS:
            return WeightMajorLinears()
        return contextlib.nullcontext()

    @torch.inference_mode()
    def _read_prefix(self) -> KVBuffer:
        n = len(self.prefix)
        kv = KVBuffer(1, n)
        kv.start, kv.end = 0, n
        causal = torch.ones(n, n, dtype=torch.bool, device=self.device).tril()
        self._layers(
            torch.tensor([self.prefix], device=self.device),
            torch.arange(n, device=self.device)[None],
            causal[None, None],
            kv,
        )
        return kv

    def _chunks(self, rests: Sequence[list[int]]) -> list[slice]:
        return prefill_passes([len(r) for r in rests], self.prefill_tokens)

    def _prefill(self, kv: KVBuffer, rests: Sequence[list[int]], rows: slice) -> torch.Tensor:
        """Read the remainders of ``rests[rows]`` after the shared prefix into their rows of
        ``kv`` (right-aligned); returns each row's first new token."""
        device, p, width = (
            self.device,
            len(self.prefix),
            kv.capacity - self.max_new_tokens - len(self.prefix),
        )
        input_ids, attention_mask = _left_padded(rests[rows], pad_id=0)
        n, w = input_ids.shape
        chunk = KVBuffer(n, p + w)
        if self.prefix_kv is not None:
            chunk.allocate_like(self.prefix_kv)
            chunk.copy_columns(self.prefix_kv, slice(0, p), slice(0, p))
        real = attention_mask.bool().to(device)
        causal = torch.ones(w, p + w, dtype=torch.bool, device=device).tril(p)
        itself = causal.triu(p)  # column p + i for query i
        # Causal attention over the prefix and the real tokens; a padding column attends to
        # itself only, never to nothing (a row of NaN in SDPA).
        seen = torch.cat([torch.ones(n, p, dtype=torch.bool, device=device), real], dim=1)
        mask = (seen[:, None, None, :] & causal[None, None]) | itself[None, None]
        positions = (p + real.cumsum(dim=1) - 1).clamp(min=p)
        chunk.start, chunk.end = p, p + w
        tokens = self._next_tokens(self._layers(input_ids.to(device), positions, mask, chunk))
        if not kv.keys:
            kv.allocate_like(chunk)
            if self.prefix_kv is not None:
                kv.copy_columns(self.prefix_kv, slice(0, p), slice(0, p))
        kv.copy_columns(chunk, slice(p, p + w), slice(p + width - w, p + width), rows)
        return tokens

    @torch.inference_mode()
    def __call__(self, prompts: Sequence[list[int]]) -> list[list[int]]:
        device, p = self.device, len(self.prefix)
        rests = [prompt[p:] for prompt in prompts]
        width = max(len(r) for r in rests)
        kv = KVBuffer(len(prompts), p + width + self.max_new_tokens)
        lengths = torch.tensor([len(r) for r in rests], device=device)
        valid = torch.ones((kv.rows, kv.capacity), dtype=torch.bool, device=device)
        valid[:, p : p + width] = torch.arange(width, device=device) >= (width - lengths)[:, None]
        tokens = torch.cat([self._prefill(kv, rests, rows) for rows in self._chunks(rests)])

        # Decode: one column per step for the rows still running.
        outputs: list[list[int]] = [[] for _ in prompts]
        rows = list(range(len(prompts)))  # batch row -> index in prompts
        positions = (p + lengths)[:, None]
        for column in range(p + width, kv.capacity):
            running = []
            for row, token in enumerate(tokens.tolist()):
                if token not in self.stops:
                    outputs[rows[row]].append(token)
                    running.append(row)
            if not running or column == kv.capacity - 1:
                break
            if len(running) < len(rows):  # some sequences ended: drop their rows
                keep = torch.tensor(running, device=device)
                kv.keep(keep)
                valid, positions, tokens = valid[keep], positions[keep], tokens[keep]
                rows = [rows[r] for r in running]
            kv.start, kv.end = column, column + 1
            mask = valid[:, None, None, : column + 1]
            with self._linears(len(rows)):
                tokens = self._next_tokens(self._layers(tokens[:, None], positions, mask, kv))
            positions = positions + 1
        return outputs
