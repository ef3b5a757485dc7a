"""A container's environment as the runner builds it where the pod runs.

Kubernetes `$(VAR)` expansion in command, args and env values: `$(NAME)` becomes NAME's value when defined,
otherwise stays as written; `$$` is a literal `$`. Nothing here involves a shell: the result is an argv
element, never re-parsed.

Downward-API values the controller cannot know are resolved here too (the plan says how: `plan.pod.
field_source`): the node's name and address, asked of this node, and in a job array's one plan template
the value of this task's own pod, picked by the index variable the runner defines first.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import math
import os
import shutil
import socket
import struct
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from podline.api.names import member_name, member_uid
from podline.api.quantity import parse_quantity

SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


def expand(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            name = text[i + 2:end]
            out.append(env[name] if name in env else text[i:end + 1])
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def container_env(entries: list[dict[str, Any]], first: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build a container's environment in order: `expand` entries see the variables defined before them.
    `first` (an array task's index variable) comes first and picks the per-index values of a template."""
    env: dict[str, str] = dict(first or {})
    for entry in entries:
        env[entry["name"]] = expand(entry["value"], env) if entry["expand"] else entry_value(entry, first or {})
    return env


def entry_value(entry: Mapping[str, Any], index_vars: Mapping[str, str]) -> str:
    """A literal value of the plan (env entry or downwardAPI file): a field of this node, this task's own
    value when the pods of a job array differ in it, else the value as planned."""
    if "fieldPath" in entry:
        return node_field(entry["fieldPath"])
    if "resourcePath" in entry:
        return node_resource(entry["resourcePath"], entry["divisor"])
    by_index = entry.get("byIndex")
    if by_index:
        own = by_index["values"].get(index_vars.get(by_index["env"], ""))
        if own is not None:
            return str(own)
    return str(entry["value"])


def own_pod(pod: Mapping[str, Any], index_vars: Mapping[str, str]) -> dict[str, Any]:
    """The plan's `pod` (name, namespace, uid) as this runner runs it: in a job array's template, with the
    name of this task's own pod (listed, or made by the rule that named it)."""
    rule, index = pod.get("namedBy"), None
    if rule:
        index = index_vars.get(rule["env"])
    if rule and index is not None and index.isdigit():
        own = {**pod, "name": member_name(rule["job"], rule["array"], int(index))}
    else:
        own = {**pod, "name": entry_value({"value": pod["name"], "byIndex": pod.get("byIndex")}, index_vars)}
    by_index = pod.get("byIndex") or {}
    index = index if index is not None else index_vars.get(by_index.get("env", ""))
    if (rule or by_index) and index is not None and index.isdigit():  # a job-array task: its pod's own uid
        own["podUid"] = member_uid(pod["uid"], int(index))  # (`uid` stays the array's: its RAM dirs are named so)
    return own


def file_bytes(item: Mapping[str, Any], index_vars: Mapping[str, str]) -> bytes:
    """The content of a planned volume file (base64 `data`), or of a downwardAPI file resolved here."""
    if "fieldPath" in item or "byIndex" in item:
        return entry_value({**item, "value": base64.b64decode(item["data"]).decode()}, index_vars).encode()
    return base64.b64decode(item["data"])


def node_resource(path: str, divisor: str) -> str:
    """A limit the container does not set, as the kubelet gives it: what the node can give, here the Slurm
    allocation's CPUs and memory when there is one, in units of `divisor` rounded up."""
    resource = path.split(".", 1)[1]
    if resource == "cpu":
        cpus = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE")
        amount = int(cpus) if cpus and cpus.isdigit() else len(os.sched_getaffinity(0))
    elif resource == "memory":
        per_node = os.environ.get("SLURM_MEM_PER_NODE", "")
        amount = int(per_node) << 20 if per_node.isdigit() else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    else:  # ephemeral-storage: the scratch filesystem's size
        amount = shutil.disk_usage(os.environ.get("TMPDIR") or "/tmp").total
    return str(math.ceil(Decimal(amount) / parse_quantity(divisor)))


def node_field(path: str) -> str:
    """`spec.nodeName`, `status.hostIP` or `status.podIP` of a pod running here (pods use the node's network,
    so its podIP is the hostIP)."""
    if path == "spec.nodeName":
        return node_name()
    if path in ("status.hostIP", "status.podIP"):
        return host_ip()
    raise ValueError(f"not a field of the node: {path}")


def node_name() -> str:
    """The node's name as the backend reports it: Slurm's name for it inside a Slurm job, else the hostname."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


@functools.cache
def host_ip() -> str:
    """This node's IPv4 address: that of the default route's interface, else of the first other interface
    that has one, else 127.0.0.1. No name lookup: a node without DNS must not wait for one."""
    for name in [_default_route_interface(), *_interfaces()]:
        address = _interface_ip(name) if name else None
        if address and not address.startswith("127."):
            return address
    return "127.0.0.1"


def _interfaces() -> list[str]:
    try:
        return [name for _, name in socket.if_nameindex()]
    except OSError:
        return []


def _default_route_interface(table: Path = Path("/proc/net/route")) -> str | None:
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return None
    return next((f[0] for f in (line.split() for line in lines) if len(f) > 2 and f[1] == "00000000"), None)


def _interface_ip(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])
