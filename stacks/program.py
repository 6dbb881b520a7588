"""The whole program as a function, so tests can run it once per stack under mocks."""

from __future__ import annotations

from stacks.config import AnalyzerConfig, load_target


def deploy() -> None:
    """Build the stack of the configured `aiops:target`; each target exports its own outputs."""
    target = load_target()
    analyzer = AnalyzerConfig.load()
    if target == "gcp":
        from stacks.gcp import deploy_gcp

        deploy_gcp(analyzer)
    else:
        from stacks.local import deploy_local

        deploy_local(analyzer)
