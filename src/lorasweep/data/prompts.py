"""Turn examples into token ids: the prompt, and for training the target with its loss mask."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from lorasweep.config.schema import PromptConfig
from lorasweep.data.sources import Example
from lorasweep.errors import UserError

IGNORE_INDEX = -100  # labels with this value carry no loss (the prompt tokens)

# Some chat templates (Llama 3.x) print today's date into the system header. A fixed date keeps
# prompts, and so scores, identical from one day to the next; templates without it ignore it.
_TEMPLATE_VARIABLES = {"date_string": "26 Jul 2024"}


def fill_template(prompt: PromptConfig, input_column: str, text: str) -> str:
    """The user message: the template with the instruction and the example's input filled in."""
    values = {"instruction": prompt.instruction, "input": text, input_column: text}
    return prompt.template.format(**values)


def check_template(prompt: PromptConfig, input_column: str, example: Example) -> None:
    """Fill the template once with a real example, before anything is trained.

    The config's own checks refuse every template they can see is unfillable; this is the proof
    on real data, and it catches what they cannot.

    Raises:
        UserError: The template cannot be filled, or the filled prompt lacks the input.
    """
    try:
        message = fill_template(prompt, input_column, example.input)
    except (KeyError, IndexError, AttributeError, ValueError, TypeError) as err:
        raise UserError(
            f"prompt.template: cannot be filled with example {example.key!r}: "
            f"{type(err).__name__}: {err}"
        ) from None
    if example.input.strip() and example.input not in message:
        raise UserError(
            f"prompt.template: the prompt of example {example.key!r} does not contain its input"
        )


@dataclass(frozen=True)
class Encoded:
    """Token ids of one training example; ``labels`` is ``IGNORE_INDEX`` over the prompt."""

    input_ids: list[int]
    labels: list[int]

    @property
    def target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


class PromptFormatter:
    """Formats prompts for one tokenizer and one prompt config.

    With a chat template the prompt is one user message and the target is the assistant's reply,
    ended by the template's own end-of-turn marker. Without one, the plain template is followed
    by the target and the tokenizer's EOS token.

    Args:
        tokenizer: The model's tokenizer.
        prompt: The prompt settings.
        input_column: The data column the template's ``{<input_column>}`` placeholder names.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, prompt: PromptConfig, input_column: str
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.input_column = input_column
        has_template = bool(getattr(tokenizer, "chat_template", None))
        self.use_chat = has_template if prompt.chat_template == "auto" else prompt.chat_template
        if self.use_chat and not has_template:
            raise ValueError("prompt.chat_template: true, but the tokenizer has no chat template")

    def user_message(self, text: str) -> str:
        return fill_template(self.prompt, self.input_column, text)

    def prompt_text(self, text: str) -> str:
        """The full prompt string the model sees, special tokens included."""
        message = self.user_message(text)
        if not self.use_chat:
            return message
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": message}],
            tokenize=False,
            add_generation_prompt=True,
            **_TEMPLATE_VARIABLES,
        )

    def encode_prompt(self, text: str) -> list[int]:
        prompt = self.prompt_text(text)
        # A chat template writes its own BOS; a plain prompt gets the tokenizer's special tokens.
        return self.tokenizer(prompt, add_special_tokens=not self.use_chat)["input_ids"]

    def encode_example(self, example: Example, max_length: int) -> Encoded:
        """Prompt and target ids; the loss falls on the target only. Cut at ``max_length``."""
        prompt_ids = self.encode_prompt(example.input)
        target_ids = self.tokenizer(self._target_text(example), add_special_tokens=False)[
            "input_ids"
        ]
        if not self.use_chat and self.tokenizer.eos_token_id is not None:
            target_ids = target_ids + [self.tokenizer.eos_token_id]
        input_ids = (prompt_ids + target_ids)[:max_length]
        labels = ([IGNORE_INDEX] * len(prompt_ids) + target_ids)[:max_length]
        return Encoded(input_ids, labels)

    def _target_text(self, example: Example) -> str:
        if not self.use_chat:
            prompt = self.user_message(example.input)
            separator = "" if not prompt or prompt[-1].isspace() else " "
            return separator + example.first_target
        prompt = self.prompt_text(example.input)
        full = self.tokenizer.apply_chat_template(
            [
                {"role": "user", "content": self.user_message(example.input)},
                {"role": "assistant", "content": example.first_target},
            ],
            tokenize=False,
            **_TEMPLATE_VARIABLES,
        )
        if not full.startswith(prompt):
            raise ValueError(
                "prompt.chat_template: the tokenizer's template does not extend the prompt with "
                "the reply; set chat_template: false"
            )
        return full[len(prompt) :]
