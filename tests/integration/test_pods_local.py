"""Pods on the real local backend, driven through the CLI: apply → wait → logs → get -o json."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from tests.conftest import Cli, wait_for


def pod(name: str, body: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{body}"


def test_pod_runs_and_reports_exit_code(cli: Cli) -> None:
    cli.apply(pod("hello", """
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: [sh, -c, "echo hello from $HOSTNAME; exit 3"]}
"""))
    assert cli.wait("pod/hello", "phase=Failed").returncode == 0
    assert cli("logs", "hello").stdout == "hello from hello\n"
    status = cli.json("pod", "hello")["status"]
    assert status["phase"] == "Failed"
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    # waiting for a phase the pod can no longer reach exits 1 at once
    assert cli.wait("pod/hello", "phase=Succeeded", timeout=30).returncode == 1


def test_init_containers_run_in_order_and_share_memory_emptydir(cli: Cli, tmp_path: Path) -> None:
    cli.apply(pod("chain", """
  restartPolicy: Never
  volumes: [{name: ws, emptyDir: {medium: Memory}}]
  initContainers:
  - {name: one, image: busybox, command: [sh, -c, "sleep 0.2; echo one >> /ws/order"],
     volumeMounts: [{name: ws, mountPath: /ws}]}
  - {name: two, image: busybox, command: [sh, -c, "echo two >> /ws/order"],
     volumeMounts: [{name: ws, mountPath: /ws}]}
  containers:
  - {name: main, image: busybox, command: [sh, -c, "echo main >> /ws/order; cat /ws/order; echo $PODLINE_MOUNT_WS"],
     volumeMounts: [{name: ws, mountPath: /ws}]}
"""))
    assert cli.wait("pod/chain", "phase=Succeeded").returncode == 0
    out = cli("logs", "chain", "-c", "main").stdout.splitlines()
    assert out[:3] == ["one", "two", "main"]
    uid = cli.json("pod", "chain")["metadata"]["uid"]
    assert out[3] == str(tmp_path / "shm" / f"podline-{uid}" / "ws")  # RAM-backed directory
    assert not (tmp_path / "shm" / f"podline-{uid}").exists()  # released when the pod ended
    inits = cli.json("pod", "chain")["status"]["initContainerStatuses"]
    one, two = (c["state"]["terminated"] for c in inits)
    assert one["finishedAt"] <= two["startedAt"]


def test_a_workspace_file_a_step_maps_does_not_count_against_its_memory_limit(cli: Cli) -> None:
    """tmpfs pages (the RAM workspace) are the emptyDir's, as the cgroup charges them to their writer, not to a
    reader that maps them: helper-76 saw numpy-style mmap of a 150 MiB workspace file OOMKilled under 64Mi."""
    cli.apply("""apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {name: mapped}
spec:
  restartPolicy: Never
  backoffLimit: 0
  workspace: {medium: Memory, sizeLimit: 300Mi}
  steps:
  - name: write
    image: busybox
    command: [sh, -c, 'dd if=/dev/zero of=big bs=1M count=150 2>/dev/null']
  - name: map
    image: busybox
    dependsOn: [write]
    resources: {limits: {memory: 64Mi}}
    command:
    - python3
    - -c
    - |
      import mmap, time
      with open("big", "r+b") as f:
          m = mmap.mmap(f.fileno(), 0)
          print(sum(m[i] for i in range(0, len(m), 4096)), len(m))
          time.sleep(1)
""")
    assert cli.wait("pipeline/mapped", "phase=Succeeded", timeout=60).returncode == 0, \
        cli("describe", "pipeline", "mapped").stdout
    assert cli("logs", "pipeline/mapped", "-c", "map").stdout == f"0 {150 << 20}\n"


def test_restarts_column_leaves_out_a_done_init_containers_restarts_as_kubectl(cli: Cli, tmp_path: Path) -> None:
    cli.apply(pod("setup-retries", f"""
  restartPolicy: OnFailure
  volumes: [{{name: state, hostPath: {{path: {tmp_path}}}}}]
  initContainers:
  - {{name: setup, image: busybox, command: [sh, -c, "echo x >> /state/n; [ $(wc -l < /state/n) -ge 3 ]"],
     volumeMounts: [{{name: state, mountPath: /state}}]}}
  containers:
  - {{name: main, image: busybox, command: ["true"]}}
"""))
    assert cli.wait("pod/setup-retries", "phase=Succeeded").returncode == 0
    assert cli.json("pod", "setup-retries")["status"]["initContainerStatuses"][0]["restartCount"] == 2
    assert cli("get", "pod", "setup-retries").stdout.splitlines()[1].split()[3] == "0"


def test_restarts_column_counts_init_containers_while_initializing_as_kubectl(cli: Cli) -> None:
    """kubectl's printer: an init container's restarts count while the pod waits on it (it showed 0), and no longer
    once the pod is initialized (helper-72, helper-73)."""
    cli.apply(pod("setup-fails", """
  restartPolicy: OnFailure
  initContainers:
  - {name: setup, image: busybox, command: [sh, -c, "exit 1"]}
  containers:
  - {name: main, image: busybox, command: ["true"]}
"""))

    def shown() -> tuple[str, int] | None:
        row = cli("get", "pod", "setup-fails").stdout.splitlines()[1].split()
        return (row[2], int(row[3])) if int(row[3]) >= 2 else None

    status, restarts = wait_for(shown, timeout=30)
    assert status.startswith("Init:") and restarts >= 2
    cli("delete", "pod", "setup-fails")


def test_a_container_over_its_memory_limit_is_oom_killed(cli: Cli) -> None:
    """limits.memory as Kubernetes enforces it: the container ends OOMKilled (137); one within its limit runs on
    (helper-72: a container allocating 400 MiB under a 64Mi limit succeeded). A child's memory counts too."""
    hog = "import time; x = b'x' * (200 << 20); time.sleep(30)"
    cli.apply(pod("hog", f"""
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command:
    - sh
    - -c
    - python3 -c "{hog}"; echo survived
    resources: {{limits: {{memory: 64Mi}}}}
"""))
    cli.apply(pod("fits", """
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [python3, -c, "x = b'x' * (20 << 20); print(len(x))"]
    resources: {limits: {memory: 256Mi}}
"""))
    assert cli.wait("pod/hog", "phase=Failed", timeout=20).returncode == 0
    state = cli.json("pod", "hog")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (state["reason"], state["exitCode"]) == ("OOMKilled", 137), state
    assert "64Mi" in state["message"] and "survived" not in cli("logs", "hog").stdout
    assert cli.wait("pod/fits", "phase=Succeeded").returncode == 0 and cli("logs", "fits").stdout == "20971520\n"


def test_forked_workers_sharing_memory_count_it_once_against_the_limit(cli: Cli) -> None:
    """Four forks of a process holding 40 MiB share its pages: 50-60 MiB in all (PSS), as a cgroup counts them,
    not 250 MiB (the sum of their resident sizes, which killed them; helper-73)."""
    cli.apply(pod("forks", """
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command:
    - python3
    - -c
    - |
      import os, time
      x = b"x" * (40 << 20)
      kids = []
      for _ in range(4):
          kid = os.fork()
          if kid == 0:
              time.sleep(2)
              os._exit(0)
          kids.append(kid)
      for kid in kids:
          os.waitpid(kid, 0)
      print("ok")
    resources: {limits: {memory: 120Mi}}
"""))
    assert cli.wait("pod/forks", "phase=Succeeded", timeout=30).returncode == 0, cli.json("pod", "forks")["status"]
    assert cli("logs", "forks").stdout == "ok\n"


def test_env_configmap_secret_and_downward_api(cli: Cli) -> None:
    cli.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast, greeting: "hi there"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: s3cr3t-VALUE}
---
apiVersion: v1
kind: Pod
metadata: {name: envy, labels: {team: data}}
spec:
  restartPolicy: Never
  volumes:
  - {name: cfg, configMap: {name: settings}}
  - {name: sec, secret: {secretName: creds}}
  - name: info
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  containers:
  - name: main
    image: busybox
    env:
    - {name: BASE, value: /opt}
    - {name: DERIVED, value: "$(BASE)/bin:$$(BASE)"}
    - {name: MODE, valueFrom: {configMapKeyRef: {name: settings, key: mode}}}
    - {name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}
    - {name: ME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    envFrom: [{configMapRef: {name: settings}, prefix: CM_}]
    command: [sh, -c]
    args:
    - >-
      echo "$DERIVED|$MODE|$ME|$CM_greeting|$(MODE)";
      echo "token ${#TOKEN}";
      cat /etc/cfg/mode; echo; cat /etc/info/labels; echo;
      stat -c %a /etc/sec/token; test "$(cat /etc/sec/token)" = "$TOKEN" && echo file-ok
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    - {name: info, mountPath: /etc/info}
""")
    assert cli.wait("pod/envy", "phase=Succeeded").returncode == 0, cli("describe", "pod", "envy").stdout
    lines = cli("logs", "envy").stdout.splitlines()
    assert lines == ["/opt/bin:$(BASE)|fast|envy|hi there|fast", "token 12", "fast", 'team="data"', "600",
                     "file-ok"]
    described = cli("describe", "pod", "envy").stdout + cli("describe", "secret", "creds").stdout
    assert "s3cr3t-VALUE" not in described
    shown = cli("get", "secret", "creds", "-o", "yaml").stdout  # stringData went into data, as the API server does
    assert "s3cr3t-VALUE" not in shown and "stringData" not in shown
    assert cli.json("secret", "creds")["data"] == {"token": "czNjcjN0LVZBTFVF"}


def test_missing_configmap_keeps_pod_pending_until_it_exists(cli: Cli) -> None:
    cli.apply(pod("waits", """
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "echo $V"]
    env: [{name: V, valueFrom: {configMapKeyRef: {name: later, key: v}}}]
"""))
    wait_for(lambda: "not found" in cli("describe", "pod", "waits").stdout)
    assert cli.json("pod", "waits")["status"]["phase"] == "Pending"
    early = cli("logs", "waits", check=False)  # as kubectl: exit 1, not an empty success
    assert early.returncode == 1 and 'container "main" in pod "waits" is waiting to start' in early.stderr, early
    cli.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {v: arrived}\n")
    assert cli.wait("pod/waits", "phase=Succeeded").returncode == 0
    assert cli("logs", "waits").stdout == "arrived\n"


def test_restart_policy_on_failure_restarts_with_backoff(cli: Cli, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    cli.apply(pod("flaky", f"""
  restartPolicy: OnFailure
  volumes: [{{name: state, hostPath: {{path: {tmp_path}}}}}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "echo x >> /state/count; test $(wc -l < /state/count) -ge 3"]
    volumeMounts: [{{name: state, mountPath: /state}}]
"""))
    assert cli.wait("pod/flaky", "phase=Succeeded").returncode == 0
    status = cli.json("pod", "flaky")["status"]["containerStatuses"][0]
    assert status["restartCount"] == 2
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert counter.read_text().count("x") == 3
    assert "BackOff" in cli("describe", "pod", "flaky").stdout


def test_logs_show_the_current_run_and_previous_the_one_before_as_kubectl(cli: Cli, tmp_path: Path) -> None:
    cli.apply(pod("runs", f"""
  restartPolicy: OnFailure
  volumes: [{{name: state, hostPath: {{path: {tmp_path}}}}}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'echo x >> /state/n; n=$(wc -l < /state/n); echo a $n; echo b $n; [ $n -lt 3 ] && exit 1; exit 0']
    volumeMounts: [{{name: state, mountPath: /state}}]
"""))
    assert cli.wait("pod/runs", "phase=Succeeded").returncode == 0
    assert cli("logs", "runs").stdout == "a 3\nb 3\n"
    assert cli("logs", "runs", "--previous").stdout == "a 2\nb 2\n"
    assert cli("logs", "runs", "--tail", "1").stdout == "b 3\n"
    assert cli("logs", "runs", "-p", "--tail=1").stdout == "b 2\n"
    assert cli("logs", "runs", "--tail", "0").stdout == ""
    cli("run", "once", "--image", "busybox", "--", "echo", "only")
    assert cli.wait("pod/once", "phase=Succeeded").returncode == 0
    none = cli("logs", "once", "--previous", check=False)
    assert none.returncode == 1 and 'previous terminated container "once" in pod "once" not found' in none.stderr


def test_restart_policy_always_keeps_restarting(cli: Cli) -> None:
    cli.apply(pod("forever", """
  containers:
  - {name: main, image: busybox, command: [sh, -c, "sleep 0.1"]}
"""))
    wait_for(lambda: cli.json("pod", "forever")["status"].get("containerStatuses", [{}])[0]
             .get("restartCount", 0) >= 2)
    assert cli.json("pod", "forever")["status"]["phase"] == "Running"
    cli("delete", "pod", "forever")
    assert cli("get", "pods", "-o", "json").stdout.count('"name": "forever"') == 0


def test_active_deadline_fails_the_pod(cli: Cli) -> None:
    start = time.time()
    cli.apply(pod("late", """
  restartPolicy: Never
  activeDeadlineSeconds: 1
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: busybox, command: [sleep, "60"]}
"""))
    assert cli.wait("pod/late", "phase=Failed").returncode == 0
    assert time.time() - start < 20
    status = cli.json("pod", "late")["status"]
    assert status["reason"] == "DeadlineExceeded"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143  # SIGTERM


def test_delete_terminates_running_processes(cli: Cli) -> None:
    cli.apply(pod("sleeper", """
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: [sh, -c, "echo $$$$ > pid; exec sleep 300"]}
"""))
    assert cli.wait("pod/sleeper", "phase=Running").returncode == 0
    pid_file = wait_for(lambda: next(iter(cli.home.glob("pods/default/sleeper/*/cwd/pid")), None))
    pid = int(wait_for(lambda: pid_file.read_text().strip()))
    os.kill(pid, 0)  # alive
    out = cli("delete", "pod", "sleeper")
    assert out.stdout.strip() == 'pod "sleeper" deleted'
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=10)
    assert cli("get", "pod", "sleeper", check=False).returncode == 1
    assert not pid_file.exists()  # run directory removed with the pod


def test_emptydir_size_limit_evicts(cli: Cli) -> None:
    cli.apply(pod("hog", """
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes: [{name: scratch, emptyDir: {sizeLimit: 1Mi}}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "head -c 3000000 /dev/zero > /scratch/big; sleep 60"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
"""))
    assert cli.wait("pod/hog", "phase=Failed").returncode == 0
    status = cli.json("pod", "hog")["status"]
    assert status["reason"] == "Evicted" and "scratch" in status["message"]
    assert status["message"].startswith('Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".')  # kubelet's


def test_resource_requests_queue_pods_when_the_machine_is_full(cli: Cli) -> None:
    cli.env["PODLINE_CPU_MILLIS"] = "1000"
    cli("up")
    for name, seconds in (("first", 3), ("second", 0)):
        cli.apply(pod(name, f"""
  restartPolicy: Never
  containers:
  - {{name: main, image: busybox, command: [sleep, "{seconds}"], resources: {{requests: {{cpu: 800m}}}}}}
"""))
    second = wait_for(lambda: cli.json("pod", "second")["status"].get("conditions") and
                      cli.json("pod", "second")["status"])
    assert second["phase"] == "Pending"
    assert second["conditions"][0]["reason"] == "Unschedulable"
    assert "Insufficient cpu" in cli("describe", "pod", "second").stdout
    assert "s so far (not started)" in cli("describe", "pod", "second").stdout
    assert cli.wait("pod/second", "phase=Succeeded").returncode == 0
    queued = next(line for line in cli("describe", "pod", "second").stdout.splitlines() if line.startswith("Queued:"))
    # it waited out `first`
    assert queued.endswith("(created → started)") and float(queued.split()[1].rstrip("s")) >= 2.0
    first = cli.json("pod", "first")["status"]["containerStatuses"][0]["state"]["terminated"]
    second_run = cli.json("pod", "second")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert first["finishedAt"] <= second_run["startedAt"]


def test_a_pod_is_scheduled_before_its_config_map_is_looked_up(cli: Cli) -> None:
    """As in Kubernetes: a pod that does not fit is Unschedulable whatever else it lacks; once it fits, it is
    scheduled and waits for its ConfigMap."""
    cli.env["PODLINE_CPU_MILLIS"] = "1000"
    cli.apply(pod("big", """
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["true"]
    resources: {requests: {cpu: "2"}}
    env: [{name: X, valueFrom: {configMapKeyRef: {name: absent, key: x}}}]
"""))
    status = wait_for(lambda: cli.json("pod", "big")["status"].get("conditions") and cli.json("pod", "big")["status"])
    assert status["conditions"][0] == {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                       "message": "0/1 nodes are available: Insufficient cpu."}


def test_logs_follow_streams_until_the_pod_ends(cli: Cli) -> None:
    cli.apply(pod("ticker", """
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: [sh, -c, "for i in 1 2 3; do echo tick $i; sleep 0.3; done"]}
"""))
    out = cli("logs", "ticker", "-f", timeout=60)
    assert out.stdout.splitlines() == ["tick 1", "tick 2", "tick 3"]


def test_run_takes_kubectls_words_and_refuses_unknown_flags(cli: Cli) -> None:
    """As kubectl run: the words after -- are the container's args (the image's ENTRYPOINT stays), with
    --command its command; -l sets the labels; an unknown flag is exit 2 and creates nothing (it used to become
    part of the command)."""
    bad = cli("run", "r0", "--image", "busybox", "--labels=a=b", "--bogus", "--", "echo", "hi", check=False)
    assert bad.returncode == 2 and "No such option '--bogus'" in bad.stderr
    assert cli.json("pods")["items"] == []
    cli("run", "r1", "--image", "busybox", "-l", "app=x,tier=y", "--", "echo", "hi")
    cli("run", "r2", "--image", "busybox", "--command", "--", "sh", "-c", "echo $0", "there")
    first, second = (cli.json("pod", name) for name in ("r1", "r2"))
    assert first["metadata"]["labels"] == {"app": "x", "tier": "y"}
    assert (first["spec"]["containers"][0]["command"], first["spec"]["containers"][0]["args"]) == ([], ["echo", "hi"])
    assert second["metadata"]["labels"] == {"run": "r2"}
    assert second["spec"]["containers"][0]["command"] == ["sh", "-c", "echo $0", "there"]
    assert cli.wait("pod/r2", "phase=Succeeded").returncode == 0 and cli("logs", "r2").stdout == "there\n"


def test_run_one_off_pod_and_get_table(cli: Cli) -> None:
    cli("run", "once", "--image", "busybox", "--", "sh", "-c", "echo ran $0", "arg0;$(rm -rf /)")
    assert cli.wait("pod/once", "phase=Succeeded").returncode == 0
    assert cli("logs", "once").stdout == "ran arg0;$(rm -rf /)\n"
    table = cli("get", "pods").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == ["once", "0/1", "Completed", "0"]
    secret_mode = stat.S_IMODE((cli.home / "state.db").stat().st_mode)
    assert secret_mode == 0o600


def test_a_missing_working_dir_is_named_as_the_reason(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    cli.apply(pod("nowhere", f"""
  restartPolicy: Never
  containers:
  - {{name: main, image: busybox, workingDir: {missing}, command: [sh, -c, "true"]}}
"""))
    assert cli.wait("pod/nowhere", "phase=Failed").returncode == 0
    term = cli.json("pod", "nowhere")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "StartError" and term["message"] == f"workingDir {missing}: no such directory"
