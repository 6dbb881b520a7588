"""The body an OpenAI-compatible server answers ``POST /v1/chat/completions`` with.

The loopback stand-ins for OpenAI (tests/service, tests/e2e) build their replies here, so the
real OpenAI SDK parses one complete response shape everywhere and a change to it is made once.
"""

from __future__ import annotations

import time
from typing import Any


def chat_completion(
    content: str,
    prompt_tokens: int = 420,
    completion_tokens: int = 80,
    *,
    model: str = "gpt-4o-mini",
    completion_id: str = "chatcmpl-test",
) -> dict[str, Any]:
    """A finished, non-streamed chat completion whose one choice says `content`."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
