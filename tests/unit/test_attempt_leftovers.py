"""The attempt mark's pure parts: its text, which marks an earlier attempt of the same work, how it is found in
a process's environment, and that every container's environment carries the runner's mark."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.runtime.attempt_marks import ENV, Mark, earlier, inherited, mark_in, parse
from podline.runtime.launch import Request, container_environment

OWN = Mark("podline-3f2a-0", "node1", 2_000, 42)


def test_a_mark_reads_back_from_its_text_even_with_an_at_sign_in_its_scope() -> None:
    assert str(OWN) == "podline-3f2a-0@node1@2000.42"
    assert parse(str(OWN)) == OWN
    odd = Mark("a@b", "n", 5, 6)
    assert parse(str(odd)) == odd


@pytest.mark.parametrize("text", ["", "x", "scope@node", "@node@1.2", "scope@@1.2", "scope@node@1", "scope@node@x.2",
                                  "scope@node@1.y", "scope@node@-1.2"])
def test_anything_else_is_no_mark(text: str) -> None:
    assert parse(text) is None


@pytest.mark.parametrize("seen, killed", [
    (Mark("podline-3f2a-0", "node1", 1_999, 7), True),      # the same work, an earlier runner on this node
    (Mark("podline-3f2a-0", "node1", 1_999, 42), True),     # ... whose pid this runner has now
    (OWN, False),                                           # this attempt
    (Mark("podline-3f2a-0", "node1", 2_000, 7), False),     # started in the same nanosecond: not earlier
    (Mark("podline-3f2a-0", "node1", 2_001, 7), False),     # a later attempt (this runner started late)
    (Mark("podline-3f2a-1", "node1", 1_000, 7), False),     # another shard
    (Mark("podline-3f2a", "node1", 1_000, 7), False),       # a scope that is a prefix of ours
    (Mark("podline-3f2a-0", "node2", 1_000, 7), False),     # another node sharing the PID namespace
])
def test_only_earlier_attempts_of_the_same_work_on_the_same_node_are_leftovers(seen: Mark, killed: bool) -> None:
    assert earlier(seen, OWN) is killed


def test_the_mark_is_found_anywhere_in_an_environment_and_nowhere_else() -> None:
    text = str(OWN).encode()
    assert mark_in(b"PATH=/bin\0" + ENV.encode() + b"=" + text + b"\0HOME=/\0") == OWN
    assert mark_in(ENV.encode() + b"=" + text) == OWN
    assert mark_in(b"PATH=/bin\0HOME=/\0") is None
    assert mark_in(b"X" + ENV.encode() + b"=" + text + b"\0") is None       # another variable's name
    assert mark_in(ENV.encode() + b"X=" + text + b"\0") is None
    assert mark_in(b"OTHER=" + ENV.encode() + b"=" + text + b"\0") is None  # inside another variable's value
    assert mark_in(ENV.encode() + b"=not-a-mark\0") is None
    assert mark_in(b"") is None


def test_a_container_carries_the_runners_mark_over_the_manifests(tmp_path: Path) -> None:
    assert inherited({"PATH": "/bin"}) == {}
    assert inherited({ENV: str(OWN), "PATH": "/bin"}) == {ENV: str(OWN)}
    spec = {"name": "c", "image": "x", "command": ["true"], "args": [], "env": {ENV: "mine", "A": "1"},
            "workingDir": None, "mounts": []}
    pod = {"name": "p", "namespace": "default", "uid": "u"}
    env = container_environment(Request(spec, pod, (), tmp_path, host_env={ENV: str(OWN), "SECRET": "no"}))
    assert env[ENV] == str(OWN) and env["A"] == "1" and "SECRET" not in env
    assert ENV not in container_environment(Request(spec | {"env": {}}, pod, (), tmp_path, host_env={}))
