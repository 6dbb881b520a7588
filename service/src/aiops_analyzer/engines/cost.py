"""Token estimates and the cost of one LLM call."""

from __future__ import annotations

import math

from aiops_analyzer.core.config import Settings

# A rough, model-independent estimate: English text and JSON average about four characters
# per token with OpenAI's tokenizers. It only has to keep prompts under the budget, so it
# errs on the high side by rounding up.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def cost_usd(prompt_tokens: int, completion_tokens: int, settings: Settings) -> float:
    """Estimated USD cost from the usage the server reported and the configured prices."""
    return (
        prompt_tokens * settings.llm_price_input_per_mtok
        + completion_tokens * settings.llm_price_output_per_mtok
    ) / 1_000_000
