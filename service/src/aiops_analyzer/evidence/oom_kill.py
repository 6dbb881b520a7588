"""What the kernel's OOM-kill lines say: which process died, and inside which cgroup.

A host's ``HostOomKillDetected`` counts kills, not victims. The kernel's own lines name them:

    Memory cgroup out of memory: Killed process 713340 (chrome) total-vm:... anon-rss:...
    oom-kill:constraint=CONSTRAINT_MEMCG,...,task_memcg=/system.slice/docker-5d7f9b1d....scope,
        task=chrome,pid=713340,uid=1000

``CONSTRAINT_MEMCG`` (or "Memory cgroup out of memory") means a cgroup's own limit was reached,
not the machine's memory; ``task_memcg`` names the container (Docker, containerd, CRI-O,
Podman) or the systemd unit. A container is only an id there: its name comes from cAdvisor's
series, whose ``id`` label holds the same cgroup path (``prometheus.oom_victim_queries``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_KILLED = re.compile(r"Killed process (\d+) \(([^)\s]+)\)")
_TASK = re.compile(r"\btask=([^,\s]+),pid=(\d+)")
_MEMCG = re.compile(r"Memory cgroup out of memory|constraint=CONSTRAINT_MEMCG")
_GLOBAL = re.compile(r"constraint=CONSTRAINT_NONE|Out of memory: Killed process")
# A container's cgroup: docker-<id>.scope, /docker/<id>, cri-containerd-<id>, crio-<id>,
# libpod-<id>. Lines may be clipped: a 12-digit prefix is as unique as `docker ps` shows.
_CONTAINER_ID = re.compile(r"(?:docker[-/]|cri-containerd-|crio-|libpod-)([0-9a-f]{12,64})")
_UNIT = re.compile(r"task_memcg=/(?:[\w@.-]+\.slice/)*([\w@.-]+\.service)\b")


@dataclass(frozen=True)
class OomKill:
    process: str
    pid: str
    line: str  # the line that names the victim, to quote
    at_cgroup_limit: bool | None  # None: the lines do not say which limit was hit
    container_id: str = ""  # a prefix of the victim's container id (12 to 64 hex digits)
    unit: str = ""  # the systemd unit whose cgroup it ran in


def read_oom_kill(lines: Iterable[str]) -> OomKill | None:
    """The newest victim the lines name (they come newest first), with its cgroup."""
    texts = list(lines)
    for text in texts:
        killed = _KILLED.search(text) or _TASK.search(text)
        if not killed:
            continue
        process, pid = (
            (killed.group(2), killed.group(1))
            if killed.re is _KILLED
            else (killed.group(1), killed.group(2))
        )
        # The same kill's other lines: those that name its pid, and the constraint line.
        related = [t for t in texts if pid in t or "constraint=" in t]
        memcg = any(_MEMCG.search(t) for t in related)
        at_limit = True if memcg else (False if any(_GLOBAL.search(t) for t in related) else None)
        container = next((m.group(1) for t in related if (m := _CONTAINER_ID.search(t))), "")
        unit = (
            "" if container else next((m.group(1) for t in related if (m := _UNIT.search(t))), "")
        )
        line = next((t for t in texts if _KILLED.search(t) and pid in t), text)
        return OomKill(process, pid, line, at_limit, container[:64], unit)
    return None
