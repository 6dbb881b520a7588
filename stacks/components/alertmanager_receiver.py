"""The Alertmanager `webhook_configs` entry that points at a deployed analyzer."""

from __future__ import annotations

import yaml

# Where the contract mounts the token in Alertmanager; the snippet names the file, never the
# token itself, so the output can be shown and pasted anywhere.
CREDENTIALS_FILE = "/etc/alertmanager/secrets/webhook-token"
WEBHOOK_PATH = "/webhook/alertmanager"


def webhook_configs_snippet(webhook_url: str, credentials_file: str = CREDENTIALS_FILE) -> str:
    """YAML to paste under a receiver of alertmanager.yml."""
    entry = {
        "url": webhook_url,
        "send_resolved": True,
        "http_config": {
            "authorization": {"type": "Bearer", "credentials_file": credentials_file},
        },
    }
    header = (
        "# Paste under a receiver in alertmanager.yml; write the stack output webhookToken\n"
        f"# (pulumi stack output webhookToken --show-secrets) into {credentials_file}.\n"
    )
    return header + yaml.safe_dump({"webhook_configs": [entry]}, sort_keys=False)
