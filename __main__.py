"""Pulumi entry point: read the typed config, then build the stack of its target."""

from stacks.program import deploy

deploy()
