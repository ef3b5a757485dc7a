"""CLI verbs beyond the basics: directories and stdin, yaml output, selectors, immutability, contexts."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import Cli, wait_for

POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{tier: {tier}}}}}
spec:
  restartPolicy: Never
  containers: [{{name: main, image: busybox, command: [sh, -c, "echo {name}"]}}]
"""


def test_apply_directory_get_yaml_selector_and_delete_by_file(cli: Cli, tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "a.yaml").write_text(POD.format(name="alpha", tier="front"))
    (manifests / "b.yml").write_text(POD.format(name="beta", tier="back"))
    (manifests / "notes.txt").write_text("not a manifest")
    out = cli("apply", "-f", str(manifests)).stdout.splitlines()
    assert out == ["pod/alpha created", "pod/beta created"]
    assert cli("apply", "-f", str(manifests)).stdout.splitlines() == ["pod/alpha unchanged", "pod/beta unchanged"]
    for name in ("alpha", "beta"):
        assert cli.wait(f"pod/{name}", "phase=Succeeded").returncode == 0
    doc = yaml.safe_load(cli("get", "pod", "alpha", "-o", "yaml").stdout)
    assert doc["kind"] == "Pod" and doc["status"]["phase"] == "Succeeded" and doc["metadata"]["uid"]
    names = [p["metadata"]["name"] for p in cli.json("pods", "-l", "tier=back")["items"]]
    assert names == ["beta"]
    assert cli("get", "pods", "-o", "name").stdout.split() == ["pod/alpha", "pod/beta"]
    deleted = cli("delete", "-f", str(manifests)).stdout.splitlines()
    assert deleted == ['pod "alpha" deleted', 'pod "beta" deleted']
    assert cli.json("pods")["items"] == []


def test_pod_spec_is_immutable_but_configmaps_update(cli: Cli) -> None:
    cli.apply(POD.format(name="fixed", tier="x"))
    changed = cli("apply", "-f", "-", input=POD.format(name="fixed", tier="x").replace("echo", "printf"),
                  check=False)
    assert changed.returncode == 2 and "spec.containers: field is immutable;" in changed.stderr
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: %s}\n"
    assert cli.apply(cm % "one").stdout.strip() == "configmap/c created"
    assert cli.apply(cm % "two").stdout.strip() == "configmap/c configured"
    assert cli.json("configmap", "c")["data"] == {"k": "two"}


def test_describe_job_and_missing_objects(cli: Cli) -> None:
    cli.apply("""apiVersion: batch/v1
kind: Job
metadata: {name: d}
spec:
  completions: 2
  completionMode: Indexed
  template: {spec: {restartPolicy: Never, containers: [{name: c, image: busybox, command: ["true"]}]}}
""")
    assert cli.wait("job/d", "condition=Complete").returncode == 0
    text = cli("describe", "job", "d").stdout
    assert "Completed Indexes:  0-1" in text and "SuccessfulCreate" in text and "Completed" in text
    missing = cli("describe", "pod", "nope", check=False)
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr
    bad_kind = cli("get", "deployments", check=False)
    assert bad_kind.returncode == 2 and "unknown resource type" in bad_kind.stderr


def test_controller_up_status_down(cli: Cli) -> None:
    assert "controller running" in cli("up").stdout
    assert "running (pid" in cli("status").stdout
    assert cli("down").stdout.strip() == "controller stopped"
    assert "stopped" in cli("status").stdout


def test_contexts(cli: Cli) -> None:
    assert cli("config", "current-context").stdout.strip() == "local"
    cli("config", "set-context", "hpc", "--backend", "slurm", "--partition", "debug", "--shared-dir", "/shared")
    table = cli("config", "get-contexts").stdout
    assert "hpc" in table and "slurm" in table
    cli("config", "set-context", "sing", "--runtime", "singularity")  # SPEC's name for the apptainer runtime
    assert next(line for line in cli("config", "get-contexts").stdout.splitlines()
                if line.split()[0] == "sing").split()[1:3] == ["local", "apptainer"]
    bad = cli("config", "set-context", "x", "--time-limit", "1;reboot", check=False)
    assert bad.returncode == 2 and "--time-limit" in bad.stderr
    broken = cli("config", "set-context", "x", "--shared-dir", "/shared\n#SBATCH --uid=0", check=False)
    assert broken.returncode == 2 and "--shared-dir" in broken.stderr and "'\\n'" in broken.stderr
    pattern = cli("config", "set-context", "x", "--shared-dir", "/shared/%j", check=False)
    assert pattern.returncode == 2 and "--shared-dir" in pattern.stderr and "'%'" in pattern.stderr
    assert cli("config", "use-context", "nope", check=False).returncode == 2
    for verb in (["get", "pods"], ["describe", "pods"], ["logs", "x"], ["delete", "pod", "x"]):
        typo = cli("--context", "nope", *verb, check=False)  # reads too (it was ignored: "No resources found")
        assert typo.returncode == 2 and 'context "nope" does not exist' in typo.stderr, (verb, typo.stderr)
        after = cli(*verb, "--context", "nope", check=False)  # after the verb, as kubectl takes it (helper-82)
        assert after.returncode == 2 and 'context "nope" does not exist' in after.stderr, (verb, after.stderr)
    cli("config", "set-context", "boxed", "--runtime", "bwrap")
    cli("config", "use-context", "boxed")
    unreachable = POD.format(name="boxed", tier="x").replace("image: busybox", "image: '127.0.0.1:1/none:1'")
    cli("apply", "-f", "-", input=unreachable)  # the context's runtime needs the image: nothing runs without it
    status = wait_for(lambda: (s := cli.json("pod", "boxed")["status"]) and "ImagePullBackOff" in str(s) and s,
                      timeout=30, interval=0.2)  # it waits for the registry, as kubelet does
    assert status["phase"] == "Pending" and "127.0.0.1:1/none:1" in str(status["containerStatuses"])
    cli("delete", "pod", "boxed")
    assert cli("--context", "local", "apply", "-f", "-", input=POD.format(name="p", tier="x")).returncode == 0
    again = cli("--context", "hpc", "apply", "-f", "-", input=POD.format(name="p", tier="x"))  # one store for all
    assert again.stdout == "pod/p unchanged\n" and again.stderr == \
        'warning: pod/p stays in context "local", where it was created (delete it to run it in "hpc")\n'  # helper-85


def test_n_reaches_manifests_without_a_namespace_and_refuses_another(cli: Cli, tmp_path: Path) -> None:
    """As kubectl: -n (before or after the verb) places a manifest that names no namespace, refuses one that
    names another (exit 2, nothing stored), and `delete -f` looks in that namespace too."""
    manifest = tmp_path / "p.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n")
    cli("apply", "-f", str(manifest))
    assert cli("-n", "team", "apply", "-f", str(manifest)).stdout.strip() == "configmap/c created"
    assert cli.json("configmap", "c", "-n", "team")["metadata"]["namespace"] == "team"
    other = tmp_path / "other.yaml"
    other.write_text(manifest.read_text().replace("{name: c}", "{name: d, namespace: ns2}"))
    refused = cli("apply", "-n", "team", "-f", str(other), check=False)
    assert refused.returncode == 2 and "does not match the namespace given with -n ('team')" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert cli("get", "configmaps", "-n", "ns2").stderr.startswith("No resources found")  # as kubectl, on stderr
    cli("delete", "-n", "team", "-f", str(manifest))
    assert cli("get", "configmap", "c", check=False).returncode == 0  # the one in default stays
    assert cli("get", "configmap", "c", "-n", "team", check=False).returncode == 1
    for bad in ("../x", "Team", ""):
        assert cli("get", "pods", "-n", bad, check=False).returncode == 2


def test_an_input_without_objects_is_an_error(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n---\n")
    done = cli("apply", "-f", str(empty), check=False)
    assert done.returncode == 2 and done.stderr.strip() == f"error: {empty}: no objects in the input"


def test_get_and_delete_several_by_name_selector_or_all_and_run_never_updates(cli: Cli) -> None:
    """kubectl's forms: `get pod a b`, `delete pod -l k=v`, `delete pods --all`; a missing name is reported
    (exit 1) after what exists was handled; `run` of a name that exists is AlreadyExists, not an update."""
    for name, tier in (("a1", "front"), ("b1", "back"), ("c1", "back")):
        cli.apply(POD.format(name=name, tier=tier))
    assert cli("get", "pods", "a1", "c1", "-o", "name").stdout.split() == ["pod/a1", "pod/c1"]
    both = cli.json("pod", "a1", "b1")
    assert both["kind"] == "List" and [p["metadata"]["name"] for p in both["items"]] == ["a1", "b1"]
    partly = cli("get", "pod", "a1", "nope", "-o", "name", check=False)
    assert partly.returncode == 1 and partly.stdout.split() == ["pod/a1"] and 'pods "nope" not found' in partly.stderr
    again = cli("run", "a1", "--image", "busybox", "--", "echo", "other", check=False)
    assert again.returncode == 1 and 'pods "a1" already exists' in again.stderr
    assert cli.json("pod", "a1")["spec"]["containers"][0]["command"] == ["sh", "-c", "echo a1"]
    refused = cli("delete", "pods", check=False)
    assert refused.returncode == 2 and cli("get", "pods", "-o", "name").stdout.split() == ["pod/a1", "pod/b1", "pod/c1"]
    assert cli("delete", "pods", "-l", "tier=back").stdout.splitlines() == ['pod "b1" deleted', 'pod "c1" deleted']
    assert cli("get", "pods", "-o", "name").stdout.split() == ["pod/a1"]
    assert cli("delete", "pods", "--all").stdout.splitlines() == ['pod "a1" deleted']
    assert cli("delete", "pods", "--all").stderr.strip() == "No resources found"


def test_get_all_namespaces_lists_every_namespace_with_its_name_first(cli: Cli) -> None:
    cli.apply(POD.format(name="here", tier="x"))
    cli("apply", "-n", "team", "-f", "-", input=POD.format(name="there", tier="x"))
    assert [line.split()[:2] for line in cli("get", "pods", "-A").stdout.splitlines()] == [
        ["NAMESPACE", "NAME"], ["default", "here"], ["team", "there"]]
    assert [p["metadata"]["namespace"] for p in cli.json("pods", "-A")["items"]] == ["default", "team"]
    assert cli("get", "pods", "-o", "name").stdout.split() == ["pod/here"]
    by_name = cli("get", "pod", "here", "-A", check=False)
    assert by_name.returncode == 2 and "across all namespaces" in by_name.stderr


def test_get_several_kinds_at_once(cli: Cli) -> None:
    cli.apply(POD.format(name="lone", tier="x"))
    cli.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {k: v}\n")
    assert cli("get", "pods,configmaps,jobs", "-o", "name").stdout.split() == ["pod/lone", "configmap/conf"]
    tables = cli("get", "pods,configmaps").stdout.split("\n\n")
    assert [t.split()[0] for t in tables] == ["NAME", "NAME"] and "lone" in tables[0] and "conf" in tables[1]
    items = cli.json("pods,configmaps")["items"]
    assert [(i["kind"], i["metadata"]["name"]) for i in items] == [("Pod", "lone"), ("ConfigMap", "conf")]
    assert cli("get", "jobs,workflows").stderr.strip() == "No resources found."
    bad = cli("get", "pods,gadgets", check=False)
    assert bad.returncode == 2 and "gadgets" in bad.stderr


def test_delete_takes_kubectls_wait_false(cli: Cli) -> None:
    cli("run", "sleeper", "--image", "busybox", "--", "sleep", "30")
    assert cli("delete", "pod", "sleeper", "--wait=false").stdout == 'pod "sleeper" deleted\n'
    assert cli("delete", "pod", "sleeper", "--wait=maybe", check=False).returncode == 2
    assert cli("delete", "pod", "sleeper", "--no-wait", "--ignore-not-found").returncode == 0


def test_describe_without_a_name_describes_each_object_of_the_kind(cli: Cli) -> None:
    for name, tier in (("d1", "a"), ("d2", "b")):
        cli.apply(POD.format(name=name, tier=tier))
    every = cli("describe", "pods").stdout
    assert [line.split()[1] for line in every.splitlines() if line.startswith("Name:")] == ["d1", "d2"]
    chosen = cli("describe", "pods", "-l", "tier=b").stdout
    assert [line.split()[1] for line in chosen.splitlines() if line.startswith("Name:")] == ["d2"]
    assert cli("describe", "jobs").stderr.strip() == "No resources found in default namespace."


def test_apply_and_delete_recursive_and_get_show_labels_as_kubectl(cli: Cli, tmp_path: Path) -> None:
    """-R reads subdirectories of -f directories (without it they are skipped, as kubectl does); --show-labels."""
    (tmp_path / "m" / "deeper").mkdir(parents=True)
    (tmp_path / "m" / "top.yaml").write_text(POD.format(name="top", tier="front"))
    (tmp_path / "m" / "deeper" / "low.yaml").write_text(POD.format(name="low", tier="back"))
    assert cli("apply", "-f", str(tmp_path / "m")).stdout.split() == ["pod/top", "created"]
    assert cli("apply", "-R", "-f", str(tmp_path / "m")).stdout.splitlines() == ["pod/low created", "pod/top unchanged"]
    table = cli("get", "pods", "--show-labels").stdout.splitlines()
    assert table[0].split()[-1] == "LABELS" and [line.split()[-1] for line in table[1:]] == ["tier=back", "tier=front"]
    assert cli("delete", "--recursive", "-f", str(tmp_path / "m")).stdout.splitlines() == \
        ['pod "low" deleted', 'pod "top" deleted']
