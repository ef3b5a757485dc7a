"""Whatever a manifest says reaches the process byte for byte: no shell ever re-parses it.

Arbitrary strings (shell metacharacters, quotes, newlines, globs, unicode) in args and env values go
through plan → runner → process and arrive exactly as Kubernetes semantics define them ($(VAR) expansion
is the only transformation).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podline.plan.expand import expand
from podline.plan.pod import plan_pod
from podline.runtime.files import write_json_atomic

SHELLY = st.text(alphabet=st.sampled_from(list("$()`;|&<>'\"\\\n\t *?~{}[]#!=%:/.-_aZ09é")), max_size=40)
ANY = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40)
PROBE = "import json, os, sys; json.dump([sys.argv[1:], os.environ['VALUE']], open('probe.json', 'w'))"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=st.lists(st.one_of(SHELLY, ANY), max_size=4), value=st.one_of(SHELLY, ANY))
def test_args_and_env_arrive_verbatim(args: list[str], value: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "argv"},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "c", "image": "x", "command": [sys.executable, "-c", PROBE], "args": args,
                    "env": [{"name": "VALUE", "value": value}]}]}}
    with tempfile.TemporaryDirectory() as tmp:
        rundir = Path(tmp)
        write_json_atomic(rundir / "plan.json", plan_pod(manifest, "uid", lambda *a: None))
        subprocess.run([sys.executable, "-m", "podline.runtime.pod", str(rundir)], check=True, timeout=60)
        got_args, got_value = json.loads((rundir / "cwd" / "probe.json").read_text())
    env_value = expand(value, {})
    assert got_value == env_value
    assert got_args == [expand(a, {"VALUE": env_value}) for a in args]
