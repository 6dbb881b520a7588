"""The policy tests run the Pulumi program too: same event-loop fixture as tests/infra."""

from tests.infra.conftest import event_loop_for_pulumi

__all__ = ["event_loop_for_pulumi"]
