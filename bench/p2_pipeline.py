"""P2: a 4-step pipeline (parse -> filter -> transform -> reduce) over >= 1 GiB through podline's shared-memory
workspace, side by side with the same steps handing data over through files on shared storage.

Shared storage is what scripts/sshfs-up.sh serves and mounts at /mnt/podline-shared: /srv/podline-shared through
an sshd on 127.0.0.1:2222 and sshfs, a real network filesystem where every open, write and read is an SFTP round
trip, standing in for Lustre. The benchmark mounts the same export once more for itself, with a connection of its
own (same server, key and sshfs defaults; --no-private-mount works in /mnt/podline-shared instead), so that its
byte count is not mixed with what tests write there at the same time. The input dataset (text lines of numbers,
default 1 GiB, deterministic) lives there and is written once, before any timing; both variants read it from
there. The four steps are one stdlib Python script (`step.py STEP IN OUT`) streaming 4 MiB chunks with cheap
byte-level work, so hand-off I/O dominates: parse, filter and transform each write about as much as they read,
reduce writes a few lines of counts and a hash. Every step fsyncs its output (a no-op on tmpfs).

  baseline  the 4 steps as sequential processes, each reading its input from and writing its output to
            <shared>/p2/baseline/ (the hand-off through files on shared storage, fsync after each write)
  podline   a `podline.io/v1alpha1 Pipeline` with the same 4 steps, run through the real CLI on the local
            backend in a fresh PODLINE_HOME (`podline apply`, `podline wait --for=phase=Succeeded`, timed
            together; `podline down` after): the input is staged from shared storage into the RAM workspace
            (PODLINE_SHM_DIR, default /dev/shm), the steps hand over in RAM, and only the result goes back to
            shared storage. The context's shared directory (L3 checkpoints) is on the sshfs mount too, and its
            scratch directory (L2) on local disk. Headline: checkpoint {nodeLocalEvery: 0, sharedEvery: 0};
            a second run with nodeLocalEvery: 1 shows what L2 copies after each step cost.
Both variants must produce byte-identical results (asserted).

Bytes written to shared storage are measured on the server side: `write_bytes` in /proc/<pid>/io of the
`sftp-server` process serving the benchmark's connection (a child of an sshd session below the listener whose
pid is in /run/podline-sshd.pid; sshfs-up.sh configures sftp-server, not internal-sftp, for this). It counts
the bytes that process wrote to the server's filesystem, in whole 4 KiB pages including the directory and
other metadata blocks it dirtied (tens of KiB per run), and no reads (`wchar` would also count the data sent
back to readers). With --no-private-mount, all sftp-servers of that sshd are summed, other users included.
Goals: podline >= 10x faster; podline's shared-storage bytes = the final output (+ major checkpoints) only.

Usage: python bench/p2_pipeline.py [--mib 1024 | --quick] [--trials N] [--no-l2] [--drop-caches] [--no-private-mount]
                                  [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from podline.runtime.files import parse_rfc3339

MIB = 1 << 20
SSHD_PID_FILE = Path("/run/podline-sshd.pid")  # all four as scripts/sshfs-up.sh sets them up
SSHD_PORT = 2222
SERVER = "root@127.0.0.1:/srv/podline-shared"
CLIENT_KEY = Path("/etc/podline-sshd/id_ed25519")
PODLINE = Path(sys.executable).with_name("podline")  # the venv's CLI (else the one on PATH)
if not PODLINE.exists():
    PODLINE = Path(shutil.which("podline") or "podline")
STEPS = (("parse", "in/data.txt", "parsed.tsv"), ("filter", "parsed.tsv", "filtered.tsv"),
         ("transform", "filtered.tsv", "transformed.tsv"), ("reduce", "transformed.tsv", "result.txt"))
GENERATOR_VERSION = 1
# write_bytes counts whole pages and the metadata blocks (directories, inodes) the sftp-server dirtied: 8-60 KiB
# per run here, against GiB of hand-off data.
METADATA_SLACK = 1 << 20

STEP_SCRIPT = r'''"""P2 pipeline step: python step.py parse|filter|transform|reduce IN OUT (streams 4 MiB chunks)."""
import hashlib
import os
import re
import sys

CHUNK = 4 << 20
UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz0123456789", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ5678901234")
CATEGORIES = (b"\tALPHA\t", b"\tBRAVO\t")
DROP = re.compile(rb"\n[0-9]{10}\t9[^\n]*")


def blocks(path):
    """The file in chunks of whole lines."""
    rest = b""
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            chunk = rest + chunk if rest else chunk
            cut = chunk.rfind(b"\n") + 1
            rest = chunk[cut:]
            if cut:
                yield chunk[:cut]
    if rest:
        yield rest


def keep(block):
    """Drop the lines whose value (second field, 6 digits after a 10-digit id) starts with 9."""
    return DROP.sub(b"", b"\n" + block)[1:]


def main(step, src, dst):
    with open(dst, "wb") as out:
        if step == "parse":
            for block in blocks(src):
                out.write(block.replace(b",", b"\t"))
        elif step == "filter":
            for block in blocks(src):
                out.write(keep(block))
        elif step == "transform":
            for block in blocks(src):
                out.write(block.translate(UPPER))
        elif step == "reduce":
            digest, size, lines, counts = hashlib.sha256(), 0, 0, [0] * len(CATEGORIES)
            for block in blocks(src):
                digest.update(block)
                size += len(block)
                lines += block.count(b"\n")
                for i, cat in enumerate(CATEGORIES):
                    counts[i] += block.count(cat)
            out.write(f"bytes {size}\nlines {lines}\nsha256 {digest.hexdigest()}\n".encode())
            for cat, n in zip(CATEGORIES, counts):
                out.write(b"count " + cat.strip() + f" {n}\n".encode())
        else:
            raise SystemExit(f"unknown step {step!r}")
        out.flush()
        os.fsync(out.fileno())


if __name__ == "__main__":
    main(*sys.argv[1:4])
'''


# --- shared storage and the server-side byte count -------------------------------------------------------------
def sftp_servers() -> dict[int, int]:
    """pid -> write_bytes of every sftp-server below the podline sshd (the processes serving the sshfs mount)."""
    try:
        listener = int(SSHD_PID_FILE.read_text().strip())
    except (OSError, ValueError):
        raise SystemExit(f"{SSHD_PID_FILE} is missing: run scripts/sshfs-up.sh first") from None
    parents: dict[int, int] = {}
    servers = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm == "sftp-server":
            servers.append(int(entry))
    out = {}
    for pid in servers:
        ancestor = parents.get(pid)
        while ancestor and ancestor != listener:
            ancestor = parents.get(ancestor)
        if ancestor != listener:
            continue
        try:
            fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        except OSError:
            continue
        out[pid] = int(fields["write_bytes"])
    return out


class SharedWrites:
    """Bytes written to shared storage between start() and stop(), from the server side: by the sftp-server
    `pid` (the benchmark's own connection), or by every sftp-server of the podline sshd when pid is None."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def _read(self) -> dict[int, int]:
        found = sftp_servers()
        if self.pid is None:
            return found
        if self.pid not in found:
            raise SystemExit(f"the benchmark's sftp-server (pid {self.pid}) is gone: did its sshfs connection drop?")
        return {self.pid: found[self.pid]}

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> int:
        after = self._read()
        lost = set(self.before) - set(after)
        if lost:
            print(f"  warning: sftp-server(s) {sorted(lost)} ended during the run (sshfs reconnected?); "
                  "their writes after the start are not counted", file=sys.stderr)
        return sum(n - self.before.get(pid, 0) for pid, n in after.items())


@contextlib.contextmanager
def private_mount() -> Iterator[tuple[Path, int]]:
    """A second sshfs connection to the server and export of scripts/sshfs-up.sh, used by this benchmark only.

    Yields its mount point and the pid of its sftp-server: the byte count then holds this benchmark's writes
    and nothing that other users of /mnt/podline-shared (tests, say) write at the same time. The mount point
    is an empty directory of its own (never inside a directory that is removed recursively afterwards).
    """
    where = Path(tempfile.mkdtemp(prefix="podline-p2-mnt-"))
    before = set(sftp_servers())
    options = (f"IdentityFile={CLIENT_KEY},IdentitiesOnly=yes,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,"
               f"port={SSHD_PORT},BatchMode=yes,LogLevel=ERROR")
    try:
        subprocess.run(["sshfs", SERVER, str(where), "-o", options], check=True)
        new = set(sftp_servers()) - before
        if len(new) != 1:
            raise SystemExit(f"cannot tell this benchmark's sftp-server apart (new ones: {sorted(new)})")
        yield where, new.pop()
    finally:
        fusermount = shutil.which("fusermount3") or "fusermount"
        if subprocess.run([fusermount, "-u", str(where)], capture_output=True).returncode != 0:
            subprocess.run([fusermount, "-uz", str(where)], capture_output=True)
        try:
            where.rmdir()  # only ever an empty mount point: fails, harmlessly, if it is still mounted
        except OSError as exc:
            print(f"  warning: {where}: {exc.strerror}", file=sys.stderr)


@dataclass
class Run:
    label: str
    seconds: float
    written: int  # bytes written to shared storage (server side)
    per_step: list[float]
    result: bytes
    note: str


DROP_CACHES = False  # --drop-caches


def settle() -> None:
    """Before a timed variant: flush dirty pages (what the previous variant, or deleting its files, left), so
    that writeback does not run during the next variant's timing; with --drop-caches also empty the page cache."""
    os.sync()
    if DROP_CACHES:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    deadline = time.time() + 60
    while time.time() < deadline:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        if int(info["Dirty"].split()[0]) + int(info["Writeback"].split()[0]) < 16 * 1024:  # kB
            break
        time.sleep(0.2)


def check_mount(shared: Path) -> None:
    if not os.path.ismount(shared):
        raise SystemExit(f"{shared} is not mounted: run `sudo bash scripts/sshfs-up.sh` first")


# --- data -------------------------------------------------------------------------------------------------------
def make_input(path: Path, mib: int) -> int:
    """Text lines `id,value,category,payload` (about 90 bytes), deterministic; written once, reused if the
    size and generator match. Returns its size."""
    meta_path = path.with_suffix(".meta.json")
    meta = {"version": GENERATOR_VERSION, "mib": mib}
    try:
        saved = json.loads(meta_path.read_text())
        if {k: saved.get(k) for k in meta} == meta and path.stat().st_size == saved["bytes"]:
            return int(saved["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rng = random.Random(20240601)
    categories = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "echo", "foxtrot", "golf", "hotel"]
    lines, size, i = [], 0, 0
    while size < 4 * MIB:
        line = (f"{i:010d},{rng.randrange(1_000_000):06d},{rng.choice(categories)},"
                f"{rng.getrandbits(192):048x}\n").encode()
        lines.append(line)
        size += len(line)
        i += 1
    template = b"".join(lines)
    digits = b"0123456789"
    blocks = -(-mib * MIB // len(template))
    print(f"  writing the {blocks * len(template) / MIB:.0f} MiB input to {path} (once) ...", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(path, "wb") as out:
        for b in range(blocks):  # every block different: digits rotated by the block number's digits
            table = bytes.maketrans(digits, digits[b % 10:] + digits[:b % 10])
            out.write(template.translate(table) if b % 10 else template)
        out.flush()
        os.fsync(out.fileno())
    total = path.stat().st_size
    meta_path.write_text(json.dumps({**meta, "bytes": total}))
    print(f"  input written in {time.perf_counter() - started:.1f} s", flush=True)
    return total


# --- the two variants ----------------------------------------------------------------------------------------------
def run_baseline(step_py: Path, input_file: Path, workdir: Path, writes: SharedWrites) -> Run:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    paths = {"in/data.txt": input_file}
    per_step = []
    settle()
    writes.start()
    started = time.perf_counter()
    for step, src, dst in STEPS:
        paths[dst] = workdir / dst
        began = time.perf_counter()
        subprocess.run([sys.executable, str(step_py), step, str(paths[src]), str(paths[dst])], check=True)
        per_step.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    written = writes.stop()
    handoff = sum((workdir / dst).stat().st_size for _, _, dst in STEPS)
    return Run("baseline: files on sshfs", elapsed, written, per_step, paths["result.txt"].read_bytes(),
               f"files written {human(handoff)}")


def manifest(name: str, step_py: Path, input_file: Path, destination: Path, node_local_every: int,
             workspace_limit: str) -> dict:
    steps = []
    previous = None
    for step, src, dst in STEPS:
        item = {"name": step, "image": "host", "command": [sys.executable, str(step_py), step, src, dst]}
        if previous:
            item["dependsOn"] = [previous]
        steps.append(item)
        previous = step
    return {"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": name},
            "spec": {"workspace": {"medium": "Memory", "sizeLimit": workspace_limit},
                     "inputs": [{"path": "in/data.txt", "source": str(input_file)}],
                     "outputs": [{"path": "result.txt", "destination": str(destination)}],
                     "checkpoint": {"nodeLocalEvery": node_local_every, "sharedEvery": 0},
                     "restartPolicy": "Never", "backoffLimit": 0,
                     "steps": steps}}


def podline(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(PODLINE), *args], env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise PodlineFailed(f"`podline {' '.join(args)}` exited {done.returncode}: "
                            f"{(done.stderr or done.stdout).strip()}")
    return done


class PodlineFailed(Exception):
    pass


def diagnose(env: dict[str, str], name: str) -> str:
    parts = [podline(env, "describe", "pipeline", name, check=False).stdout]
    for step, _, _ in STEPS:
        got = podline(env, "logs", f"pipeline/{name}", "-c", step, check=False)
        parts.append(f"--- logs of step {step} (exit {got.returncode}):\n{got.stdout}{got.stderr}")
    return "\n".join(parts)


def run_podline(tmp: Path, label: str, step_py: Path, input_file: Path, shared_root: Path, node_local_every: int,
                workspace_limit: str, timeout: int, writes: SharedWrites) -> Run:
    """One Pipeline through the CLI in a fresh PODLINE_HOME, timed from `apply` until `wait` returns."""
    home, scratch = tmp / f"home-{label}", tmp / f"scratch-{label}"
    out_dir, ctx_shared = shared_root / f"podline-{label}" / "out", shared_root / f"podline-{label}" / "shared"
    shutil.rmtree(shared_root / f"podline-{label}", ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    env = {**os.environ, "PODLINE_HOME": str(home), "PODLINE_SHM_DIR": os.environ.get("PODLINE_SHM_DIR", "/dev/shm")}
    podline(env, "config", "set-context", "local", "--backend", "local", "--shared-dir", str(ctx_shared),
            "--scratch-dir", str(scratch))
    podline(env, "config", "use-context", "local")
    name = f"p2-{label}"
    path = tmp / f"{name}.yaml"
    path.write_text(json.dumps(manifest(name, step_py, input_file, out_dir, node_local_every, workspace_limit)))
    shm_before = set(os.listdir(env["PODLINE_SHM_DIR"]))
    settle()
    writes.start()
    try:
        started = time.perf_counter()
        podline(env, "apply", "-f", str(path))
        waited = podline(env, "wait", f"pipeline/{name}", "--for=phase=Succeeded", f"--timeout={timeout}",
                         check=False)
        elapsed = time.perf_counter() - started
        written = writes.stop()
        if waited.returncode != 0:
            raise PodlineFailed(f"`podline wait pipeline/{name}` exited {waited.returncode}: "
                                f"{(waited.stderr or waited.stdout).strip()}\n{diagnose(env, name)}")
        status = json.loads(podline(env, "get", "pipeline", name, "-o", "json").stdout).get("status", {})
        result = out_dir / "result.txt"
        if not result.is_file():
            raise PodlineFailed(f"pipeline {name} succeeded but {result} is missing\n{diagnose(env, name)}")
        by_name = {s.get("name"): s for s in status.get("steps", [])}
        per_step = [_seconds(by_name.get(step, {})) for step, _, _ in STEPS]
        every = f"every {node_local_every} step" if node_local_every else "never"
        return Run(f"podline Pipeline, L2 {every}", elapsed, written, per_step, result.read_bytes(),
                   timings(status))
    finally:
        podline(env, "delete", "pipeline", name, check=False)
        podline(env, "down", check=False)
        for entry in set(os.listdir(env["PODLINE_SHM_DIR"])) - shm_before:  # what a failed shard left in RAM
            if entry.startswith("podline-"):
                shutil.rmtree(Path(env["PODLINE_SHM_DIR"]) / entry, ignore_errors=True)


def _seconds(step: dict) -> float:
    try:
        return parse_rfc3339(step["finishedAt"]) - parse_rfc3339(step["startedAt"])
    except (KeyError, TypeError, ValueError):
        return float("nan")


# --- report -------------------------------------------------------------------------------------------------------
def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def timings(status: dict) -> str:
    t = status.get("timings") or {}
    names = {"stageIn": "stageIn", "compute": "steps+checkpoints", "checkpoint": "checkpoints", "stageOut": "stageOut"}
    return ", ".join(f"{label} {t[k]:.2f} s" for k, label in names.items() if isinstance(t.get(k), int | float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="input size in MiB (default 1024; the goal is >= 1024)")
    parser.add_argument("--quick", action="store_true", help="a 64 MiB smoke run (same as --mib 64)")
    parser.add_argument("--trials", type=int, default=1, help="interleaved trials of every variant; medians")
    parser.add_argument("--no-l2", action="store_true", help="skip the podline run with nodeLocalEvery: 1")
    parser.add_argument("--shared", type=Path, default=Path("/mnt/podline-shared"), help="the sshfs mount")
    parser.add_argument("--no-private-mount", action="store_true",
                        help="work in --shared itself (the byte count then includes its other users' writes) "
                             "instead of a private sshfs connection to the same server and export")
    parser.add_argument("--drop-caches", action="store_true",
                        help="empty the page cache before every variant (root): on this VM, allocating memory "
                             "(tmpfs pages included) gets about 2x slower once GiB of page cache have piled up")
    parser.add_argument("--keep", action="store_true", help="keep intermediate files and outputs on shared storage")
    parser.add_argument("--timeout", type=int, default=600, help="podline wait --timeout, seconds")
    args = parser.parse_args()
    mib = 64 if args.quick else args.mib
    global DROP_CACHES
    DROP_CACHES = args.drop_caches
    check_mount(args.shared)
    shm = Path(os.environ.get("PODLINE_SHM_DIR", "/dev/shm"))
    free = shutil.disk_usage(shm).free
    need = 4 * mib * MIB + 256 * MIB
    if free < need:
        raise SystemExit(f"{shm} has {human(free)} free; the workspace needs about {human(need)}")
    workspace_limit = f"{max(1, -(-need // (1 << 30)))}Gi"
    variants = [("ram", 0)] + ([] if args.no_l2 else [("ram-l2", 1)])
    runs: dict[str, list[Run]] = {}

    print(f"P2 4-step pipeline over {mib} MiB: RAM workspace (podline) vs hand-off through files on sshfs "
          f"({os.cpu_count()} cores, python {sys.version.split()[0]}"
          f"{'; page cache dropped before every variant' if DROP_CACHES else ''})", flush=True)
    with tempfile.TemporaryDirectory(prefix="podline-p2-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        if args.no_private_mount:
            mount, writes = args.shared, SharedWrites(None)
            print(f"  shared storage: {mount} (bytes written by all its users count)")
        else:
            mount, pid = stack.enter_context(private_mount())
            writes = SharedWrites(pid)
            print(f"  shared storage: {mount}, a private sshfs connection to {SERVER} (what {args.shared} "
                  f"mounts), sftp-server pid {writes.pid}")
        root = mount / "p2"
        input_file = root / "input" / f"data-{mib}MiB.txt"
        input_size = make_input(input_file, mib)
        step_py = tmp / "step.py"
        step_py.write_text(STEP_SCRIPT)
        try:
            for trial in range(args.trials):
                print(f"  trial {trial + 1}/{args.trials}: baseline (files on sshfs, fsync after each write) ...",
                      flush=True)
                runs.setdefault("baseline", []).append(run_baseline(step_py, input_file, root / "baseline", writes))
                for label, every in variants:
                    print(f"  trial {trial + 1}/{args.trials}: podline (checkpoint nodeLocalEvery: {every}, "
                          "sharedEvery: 0) ...", flush=True)
                    runs.setdefault(label, []).append(run_podline(tmp, label, step_py, input_file, root, every,
                                                                  workspace_limit, args.timeout, writes))
        except PodlineFailed as exc:
            print(f"\nPODLINE FAILED: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        finally:
            if not args.keep:
                for sub in ("baseline", *(f"podline-{label}" for label, _ in variants)):
                    shutil.rmtree(root / sub, ignore_errors=True)

    expected = runs["baseline"][0].result
    for label, trials in runs.items():
        for run in trials:
            if run.result != expected:
                raise SystemExit(f"results differ: baseline vs {label}:\n{expected.decode()}\n---\n"
                                 f"{run.result.decode()}")
    print()
    print(f"  input {human(input_size)} at {SERVER}/p2/input/{input_file.name}; the result ({len(expected)} bytes) "
          f"is identical in every run:")
    for line in expected.decode().splitlines():
        print(f"    {line}")
    median = {label: statistics.median(r.seconds for r in trials) for label, trials in runs.items()}
    print(f"  {'variant':34} {'trial':>5} {'wall time':>10}  {'written to shared storage':>27}   "
          f"{' / '.join(s for s, _, _ in STEPS)} (s)")
    for trials in runs.values():
        for trial, run in enumerate(trials, 1):
            print(f"  {run.label:34} {trial:>5} {run.seconds:8.2f} s  {human(run.written):>12} ({run.written:>11} B)"
                  f"   {' / '.join(f'{t:.2f}' for t in run.per_step)}   {run.note}")
    if args.trials > 1:
        print(f"  medians of {args.trials}: " + ", ".join(f"{trials[0].label} {median[label]:.2f} s"
                                                        for label, trials in runs.items()))
    base, ram = median["baseline"], median["ram"]
    ratio = base / ram
    verdict = "MET" if ratio >= 10 else "MISSED"
    print(f"  podline vs files on shared storage: {ratio:.1f}x faster   (goal >= 10x: {verdict})")
    if "ram-l2" in median:
        print(f"  with an L2 copy after every step:   {base / median['ram-l2']:.1f}x faster   "
              f"(the L2 copies cost {median['ram-l2'] - ram:+.2f} s)")
    b_base, b_pod = runs["baseline"][-1].written, runs["ram"][-1].written
    only_output = all(r.written <= len(expected) + METADATA_SLACK for label, t in runs.items() if label != "baseline"
                      for r in t)
    print(f"  shared-storage bytes: podline {human(b_pod)} for a {len(expected)}-byte result, baseline "
          f"{human(b_base)}   (goal final output only, within "
          f"{human(METADATA_SLACK)} of metadata: {'MET' if only_output else 'MISSED'})")


if __name__ == "__main__":
    main()
