"""Whatever a manifest says reaches the process byte for byte: no shell ever re-parses it.

Arbitrary strings (shell metacharacters, quotes, newlines, globs, unicode) in args and env values go
through plan → runner → process and arrive exactly as Kubernetes semantics define them ($(VAR) expansion
is the only transformation).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podline.plan.pod import plan_pod
from podline.plan.slurm import Placement, render_pod
from podline.runtime.expand import expand
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


def test_array_task_gets_its_index_and_run_directory(tmp_path: Path) -> None:
    """`--array-base DIR`: one plan template for a whole job array, index from SLURM_ARRAY_TASK_ID."""
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shard"},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "c", "image": "x", "command": ["sh", "-c", "echo $(JOB_COMPLETION_INDEX) $SHARD"],
                    "env": [{"name": "SHARD", "value": "s-$(JOB_COMPLETION_INDEX)"}]}]}}
    plan = plan_pod(manifest, "uid", lambda *a: None, index_env="JOB_COMPLETION_INDEX")
    write_json_atomic(tmp_path / "plan.json", plan)
    for index in (0, 7):
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(index)}
        subprocess.run([sys.executable, "-m", "podline.runtime.pod", "--array-base", str(tmp_path)], env=env,
                       check=True, timeout=60)
        assert (tmp_path / str(index) / "logs" / "c.log").read_text() == f"{index} s-{index}\n"
    assert json.loads((tmp_path / "7" / "status.json").read_text())["status"]["phase"] == "Succeeded"


SAFE_FLAGS = st.lists(st.sampled_from(["--exclusive", "--time=5", "-p debug", "--nice=2", "--mail-type=END",
                                       "--constraint=a&b", "-c 2"]), max_size=3).map(" ".join)
HOSTILE = st.text(alphabet=st.sampled_from(list("$()`;|&<>'\"\\\n\t *?~{}[]#!=%:/.-_aZ09é")), max_size=30)


@settings(max_examples=15, deadline=None)
@given(args=st.lists(HOSTILE, max_size=3), value=HOSTILE, flags=SAFE_FLAGS,
       name=st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True))
def test_rendered_script_runs_exactly_the_intended_argv(args: list[str], value: str, flags: str, name: str) -> None:
    """The sbatch script, run as Slurm runs it (bash; #SBATCH lines are comments), starts the runner, and
    the container receives the manifest's argv and env byte for byte."""
    manifest = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "annotations": {"slurm.hpk.io/flags": flags}},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "c", "image": "x", "command": [sys.executable, "-c", PROBE.replace("VALUE", "V")],
                    "args": args,
                    "env": [{"name": "V", "value": value}]}]}}
    with tempfile.TemporaryDirectory() as tmp:
        rundir = Path(tmp) / "run dir; $(id)"  # even the run directory path is hostile
        rundir.mkdir()
        write_json_atomic(rundir / "plan.json", plan_pod(manifest, "0000", lambda *a: None))
        script = render_pod(manifest, "0000", str(rundir), Placement(python=sys.executable))
        (rundir / "job.sbatch").write_text(script)
        subprocess.run(["bash", str(rundir / "job.sbatch")], check=True, timeout=60, cwd=tmp,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
        got_args, got_value = json.loads((rundir / "cwd" / "probe.json").read_text())
    assert got_value == expand(value, {})
    assert got_args == [expand(a, {"V": got_value}) for a in args]


BWRAP_PROBE = ("import json, os, sys; json.dump([sys.argv[1:], os.environ['VALUE']], open('/out/probe.json', 'w'))")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap)")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=st.lists(st.one_of(SHELLY, ANY), max_size=4), value=st.one_of(SHELLY, ANY))
def test_args_and_env_arrive_verbatim_inside_a_bwrap_container(args: list[str], value: str) -> None:
    """The same through the bwrap runtime; the image is this machine's own root (`dir:/`, read-only), so the
    probe can be this machine's Python (the base interpreter: a venv under /tmp would be hidden by the
    container's private /tmp)."""
    python = os.path.join(sys.base_prefix, "bin", "python3")
    with tempfile.TemporaryDirectory() as tmp:
        rundir, out = Path(tmp) / "run", Path(tmp) / "out"
        rundir.mkdir()
        out.mkdir()
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "argv"},
                    "spec": {"restartPolicy": "Never", "volumes": [{"name": "out", "hostPath": {"path": str(out)}}],
                             "containers": [{
                                 "name": "c", "image": "dir:/", "command": [python, "-c", BWRAP_PROBE],
                                 "args": args, "env": [{"name": "VALUE", "value": value}],
                                 "volumeMounts": [{"name": "out", "mountPath": "/out"}]}]}}
        plan = plan_pod(manifest, "uid", lambda *a: None, runtime="bwrap", images={"cache": str(Path(tmp) / "c")})
        write_json_atomic(rundir / "plan.json", plan)
        subprocess.run([sys.executable, "-m", "podline.runtime.pod", str(rundir)], check=True, timeout=60)
        assert (out / "probe.json").exists(), (rundir / "logs" / "c.log").read_text()
        got_args, got_value = json.loads((out / "probe.json").read_text())
    env_value = expand(value, {})
    assert got_value == env_value
    assert got_args == [expand(a, {"VALUE": env_value}) for a in args]
