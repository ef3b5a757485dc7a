"""Sidecars on the local backend: an init container with restartPolicy Always runs beside the containers (the
next init container starts once it runs), is restarted when it ends meanwhile, and is stopped once they are
done, without its exit code counting. A Job whose pods have one completes (a plain init container that never
ends would hold every pod in Init for ever)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli

SERVER = ('echo "up $(date +%s%N)" >> /w/starts; '
          "while true; do echo ok > /w/tick.t; mv /w/tick.t /w/tick; sleep 0.05; done")
SERVED = """
  volumes: [{name: w, emptyDir: {}}]
  initContainers:
  - name: server
    image: busybox
    restartPolicy: Always
    command: [sh, -c, 'SERVER']
    volumeMounts: [{name: w, mountPath: /w}]
  - name: after
    image: busybox
    command: [sh, -c, 'while [ ! -e /w/tick ]; do sleep 0.02; done; echo "after saw $(cat /w/tick)"']
    volumeMounts: [{name: w, mountPath: /w}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'CMD']
    volumeMounts: [{name: w, mountPath: /w}]
"""


def _pod(name: str, command: str, policy: str = "Never") -> str:
    return (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: {policy}\n"
            + SERVED.replace("SERVER", SERVER).replace("CMD", command))


def test_a_sidecar_serves_the_containers_and_is_stopped_after_them(cli: Cli) -> None:
    cli.apply(_pod("served", "cat /w/tick; sleep 0.3; cat /w/tick"))
    assert cli.wait("pod/served", "phase=Succeeded").returncode == 0
    assert cli("logs", "served", "-c", "after").stdout == "after saw ok\n"
    assert cli("logs", "served", "-c", "main").stdout == "ok\nok\n"
    status = cli.json("pod", "served")["status"]
    server = status["initContainerStatuses"][0]
    assert server["name"] == "server" and server["restartCount"] == 0
    assert server["state"]["terminated"]["exitCode"] in (0, 143)  # SIGTERM once main was done
    main = status["containerStatuses"][0]["state"]["terminated"]
    assert server["state"]["terminated"]["finishedAt"] >= main["finishedAt"]
    events = cli("describe", "pod", "served").stdout
    assert "Stopping container server" in events and "Container server exited" not in events, events


def test_a_sidecar_that_ends_is_restarted_while_the_containers_run(cli: Cli) -> None:
    cli.apply(_pod("restarted", "while [ $(wc -l < /w/starts) -lt 2 ]; do sleep 0.05; done; wc -l < /w/starts")
              .replace("sleep 0.05; done']", "sleep 0.05; exit 3; done']", 1))
    assert cli.wait("pod/restarted", "phase=Succeeded").returncode == 0
    server = cli.json("pod", "restarted")["status"]["initContainerStatuses"][0]
    assert server["restartCount"] >= 1 and server["lastState"]["terminated"]["exitCode"] == 3


def test_a_sidecar_retired_in_its_back_off_ends_as_it_last_ended_with_the_restarts_that_ran(cli: Cli,
                                                                                         tmp_path: Path) -> None:
    """It used to end `waiting: CrashLoopBackOff` with one restart more than ran (helper-71)."""
    cli.apply(f"""apiVersion: v1
kind: Pod
metadata: {{name: crashing}}
spec:
  restartPolicy: Never
  volumes: [{{name: t, hostPath: {{path: {tmp_path}}}}}]
  initContainers:
  - {{name: sc, image: busybox, restartPolicy: Always, command: [sh, -c, 'echo sc >> /t/starts; sleep 0.5; exit 5'],
     volumeMounts: [{{name: t, mountPath: /t}}]}}
  containers:
  - {{name: main, image: busybox, command: [sh, -c, 'sleep 2.5']}}
""")
    assert cli.wait("pod/crashing", "phase=Succeeded").returncode == 0
    starts = (tmp_path / "starts").read_text().count("sc")
    sidecar = cli.json("pod", "crashing")["status"]["initContainerStatuses"][0]
    assert starts >= 2 and sidecar["restartCount"] == starts - 1, (starts, sidecar)
    assert sidecar["state"]["terminated"]["exitCode"] in (5, 143), sidecar


def test_a_failing_container_fails_the_pod_and_still_stops_the_sidecar(cli: Cli) -> None:
    cli.apply(_pod("broken", "exit 7"))
    assert cli.wait("pod/broken", "phase=Failed").returncode == 0
    status = cli.json("pod", "broken")["status"]
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 7
    assert "terminated" in status["initContainerStatuses"][0]["state"]


def test_a_job_whose_pods_have_a_sidecar_completes(cli: Cli) -> None:
    template = SERVED.replace("SERVER", SERVER).replace("CMD", "cat /w/tick").replace("\n  ", "\n      ")
    cli.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: withproxy}}
spec:
  completions: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never{template}""")
    assert cli.wait("job/withproxy", "condition=Complete", timeout=60).returncode == 0
    assert cli.json("job", "withproxy")["status"]["succeeded"] == 2


def test_an_argo_step_talks_to_its_sidecar_which_is_stopped_when_main_is_done(cli: Cli, tmp_path: Path) -> None:
    """Argo's `sidecars`: beside main, with main's mounts when mirrorVolumeMounts says so; the step's result is
    main's, and it ends when main does (a sidecar that never exits does not hold it)."""
    cli.apply(f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: side}}
spec:
  entrypoint: main
  volumes: [{{name: box, hostPath: {{path: {tmp_path}}}}}]
  templates:
  - name: main
    container:
      image: busybox
      command: [sh, -c, 'while [ ! -e /box/ready ]; do sleep 0.02; done; cat /box/ready']
      volumeMounts: [{{name: box, mountPath: /box}}]
    sidecars:
    - name: db
      image: busybox
      mirrorVolumeMounts: true
      command: [sh, -c, 'echo "db up" > /box/ready; sleep 3600']
""")
    assert cli.wait("workflow/side", "phase=Succeeded", timeout=60).returncode == 0
    node = next(n for n in cli.json("workflow", "side")["status"]["nodes"].values() if n["type"] == "Pod")
    assert node["outputs"]["result"] == "db up"
    pod = cli.json("pods")["items"][0]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["db"]
    assert pod["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    assert "terminated" in pod["status"]["initContainerStatuses"][0]["state"]


def test_a_sidecar_that_exits_at_once_still_lets_the_next_init_container_start(cli: Cli) -> None:
    """It started (then ended, and waits out its back-off to restart): as the kubelet, the next one starts."""
    cli.apply("""
apiVersion: v1
kind: Pod
metadata: {name: blink}
spec:
  restartPolicy: Never
  initContainers:
  - {name: quick, image: busybox, restartPolicy: Always, command: ["true"]}
  - {name: next, image: busybox, command: [echo, next]}
  containers:
  - {name: main, image: busybox, command: [echo, main]}
""")
    assert cli.wait("pod/blink", "phase=Succeeded", timeout=30).returncode == 0
    assert cli("logs", "blink", "-c", "next").stdout == "next\n"


def test_out_of_time_while_a_sidecar_cannot_start_fails_uninitialized(cli: Cli) -> None:
    cli.apply("""
apiVersion: v1
kind: Pod
metadata: {name: nostart}
spec:
  restartPolicy: Never
  activeDeadlineSeconds: 2
  initContainers:
  - {name: proxy, image: busybox, restartPolicy: Always, command: [/no/such/program]}
  containers:
  - {name: main, image: busybox, command: [echo, never]}
""")
    assert cli.wait("pod/nostart", "phase=Failed", timeout=30).returncode == 0
    status = cli.json("pod", "nostart")["status"]
    assert status["reason"] == "DeadlineExceeded"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Initialized"] == "False"
    assert "waiting" in status["containerStatuses"][0]["state"]  # main never ran
