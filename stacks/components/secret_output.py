"""Marking a value as a Pulumi secret: encrypted in the state, masked in previews and outputs.

Both stacks use it (the local stack's tokens and Grafana password, the GCP stack's Secret
Manager values and registry token).
"""

from __future__ import annotations

from typing import Any

import pulumi


def as_secret(value: pulumi.Input[str]) -> pulumi.Output[str]:
    """`pulumi.Output.secret` with a type mypy can follow (it cannot solve `Input[U]`)."""
    marked: pulumi.Output[Any] = pulumi.Output.secret(value)
    return marked
