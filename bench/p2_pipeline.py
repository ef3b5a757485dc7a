"""P2: a 4-step pipeline (parse -> filter -> transform -> reduce) over >= 1 GiB through podline's shared-memory
workspace, side by side with the same steps handing data over through files on shared storage.

Shared storage is what scripts/sshfs-up.sh serves and mounts at /mnt/podline-shared: /srv/podline-shared through
an sshd on 127.0.0.1:2222 and sshfs, a real network filesystem where every open, write and read is an SFTP round
trip, standing in for Lustre. The benchmark mounts the same export once more for itself, with a connection of its
own (same server, key and sshfs defaults, plus --sshfs-options if given; --no-private-mount works in
/mnt/podline-shared instead), so that its byte count is not mixed with what tests write there at the same time.
The input dataset (text lines `id,value,category,payload`, default 1 GiB, deterministic) is written there once,
before any timing.

The four steps are cheap native tools that stream at hundreds of MB/s, so that what the benchmark measures is the
hand-off (the issue's service-to-service case), not the steps' CPU. Both variants run the very same commands
(`bash step.sh STEP IN OUT`, LC_ALL=C); every step fsyncs its output with `sync FILE` (a no-op on tmpfs):
  parse      tr , '\t'                                  writes as much as it reads
  filter     grep -v -F -e hotel -e golf                drops 2 of the 8 categories (~25 % of the lines)
  transform  tr 'a-z0-9' 'A-Z5-90-4'                    writes as much as it reads
  reduce     tee >(cksum) | awk (lines per category)    one read; writes a few lines (cksum, counts)
On 1 GiB in /dev/shm they take about 1.2 / 1.2 / 0.9 / 1.5 s here. tr and grep write through stdio in 4 KiB
blocks (sshfs reports st_blksize 4096); `stdbuf -o1M` makes that 1 MiB writes: sshfs, unlike Lustre or NFS, does not
gather small writes in the client's page cache, so with 4 KiB writes every write is an SFTP round trip and the
baseline's hand-off costs about 1.6x more (13-14 s instead of 8 s per GiB copied sshfs -> sshfs; local -> sshfs
4 KiB writes also sometimes collapse to ~1 MB/s for minutes, once sftp-server's input queue is full). Large
writes keep the baseline honest.

Variants, interleaved in every trial; each ratio compares a podline run with the baseline that reads its input
from the same place:
  baseline cold  the 4 steps as sequential processes, each reading its input from and writing its output to
                 <shared>/p2/baseline/ (the hand-off through files on shared storage, fsync after each write);
                 parse reads the input dataset from shared storage
  podline cold   a `podline.io/v1alpha1 Pipeline` with the same 4 steps, run through the real CLI on the local
                 backend in a fresh PODLINE_HOME (`podline apply`, `podline wait --for=phase=Succeeded`, timed
                 together; `podline down` after). Its input is a `Dataset` whose source is the input file on
                 shared storage; with an empty scratch directory (so an empty node cache of datasets) it is read
                 from shared storage once, into the RAM workspace (PODLINE_SHM_DIR, default /dev/shm) and the
                 node cache together; the steps hand over in RAM, and only the result goes back to shared
                 storage. The context's shared directory (L3 checkpoints) is on the sshfs mount too, and its
                 scratch directory (L2, the dataset cache) on local disk; checkpoint {nodeLocalEvery: 0,
                 sharedEvery: 0}
  baseline warm  as baseline cold, but parse reads the input dataset from a node-local copy (--node-cache,
                 default a temporary directory on local disk; copied there once, untimed); the hand-offs still go
                 through shared storage
  podline warm   as podline cold, but the node cache of datasets already holds the input (filled once, untimed,
                 as an earlier run on the node would have): stage-in checks the shared file's size and mtime,
                 then copies (and verifies) the cached copy into RAM
  podline cold + L2  (unless --no-l2) podline cold with nodeLocalEvery: 1: what an L2 copy after every step costs
                 (written in the background while the next steps run; the shard waits for the last one)
Every variant must produce a byte-identical result (asserted).

Use --drop-caches for figures (root): on this VM, right after a baseline run (GiB through sshfs and the page
cache), podline's steps and stage-in in the RAM workspace run about 2x slower (tmpfs page allocation); emptying
the page cache before every variant removes that, and costs the baseline nothing measurable.

Bytes written to shared storage are measured on the server side: `write_bytes` in /proc/<pid>/io of the
`sftp-server` process serving the benchmark's connection (a child of an sshd session below the listener whose
pid is in /run/podline-sshd.pid; sshfs-up.sh configures sftp-server, not internal-sftp, for this). It counts
the bytes that process wrote to the server's filesystem, in whole 4 KiB pages including the directory and
other metadata blocks it dirtied (tens of KiB per run), and no reads (`wchar` would also count the data sent
back to readers). With --no-private-mount, all sftp-servers of that sshd are summed, other users included.
Goals: podline >= 10x faster; podline's shared-storage bytes = the final output (+ major checkpoints) only.

`--steps copy` replaces the four tools by steps that only copy their input (reduce: `cksum`): what is left is
the hand-off itself, the part podline changes; the tools' own CPU time is the same on both sides and caps the
ratio of the default run.

At the end, bench/p2_media.py measures one GiB written and read back through the RAM workspace and through the
benchmark's sshfs connection, with no step in between: the ratio of those costs bounds what any steps can reach.

Usage: python bench/p2_pipeline.py [--mib 1024 | --quick] [--trials N] [--no-l2] [--node-cache DIR] [--steps copy]
                                  [--sshfs-options OPTS] [--drop-caches] [--no-private-mount] [--keep]
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

import yaml
from p2_media import Media, measure

from podline.runtime.files import parse_rfc3339
from podline.runtime.staging import stage_dataset

MIB = 1 << 20
SSHD_PID_FILE = Path("/run/podline-sshd.pid")  # all four as scripts/sshfs-up.sh sets them up
SSHD_PORT = 2222
SERVER = "root@127.0.0.1:/srv/podline-shared"
CLIENT_KEY = Path("/etc/podline-sshd/id_ed25519")
PODLINE = Path(sys.executable).with_name("podline")  # the venv's CLI (else the one on PATH)
if not PODLINE.exists():
    PODLINE = Path(shutil.which("podline") or "podline")
DATASET = "p2-input"
STEPS = (("parse", "in/data.txt", "parsed.tsv"), ("filter", "parsed.tsv", "filtered.tsv"),
         ("transform", "filtered.tsv", "transformed.tsv"), ("reduce", "transformed.tsv", "result.txt"))
GENERATOR_VERSION = 1
# write_bytes counts whole pages and the metadata blocks (directories, inodes) the sftp-server dirtied: 8-60 KiB
# per run here, against GiB of hand-off data.
METADATA_SLACK = 1 << 20

COPY_STEP_SCRIPT = r"""# P2 with --steps copy: the hand-off alone (each step copies its input; reduce checksums it)
set -euo pipefail
step=$1 src=$2 dst=$3
case $step in
    parse|filter|transform) cat -- "$src" > "$dst" ;;
    reduce) cksum < "$src" > "$dst" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
esac
sync -- "$dst"
"""
STEP_SCRIPT = r"""# P2 pipeline step: bash step.sh parse|filter|transform|reduce IN OUT (native tools, streaming)
set -euo pipefail
export LC_ALL=C
step=$1 src=$2 dst=$3
case $step in
    parse) stdbuf -o1M tr , '\t' < "$src" > "$dst" ;;
    filter) stdbuf -o1M grep -v -F -e hotel -e golf -- "$src" > "$dst" ;;
    transform) stdbuf -o1M tr 'a-z0-9' 'A-Z5-90-4' < "$src" > "$dst" ;;
    reduce)  # one read of the input: a CRC and byte count (cksum) and the lines per category (awk), sorted
        { tee >(cksum | sed 's/^/cksum /' >&3) < "$src" \
            | awk -F '\t' '{ n[$3]++ } END { for (k in n) print "count", k, n[k]; print "lines", NR }'; } 3>&1 \
            | sort > "$dst" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
esac
sync -- "$dst"
"""


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
def private_mount(extra: str = "") -> Iterator[tuple[Path, int]]:
    """A second sshfs connection to the server and export of scripts/sshfs-up.sh, used by this benchmark only.

    Yields its mount point and the pid of its sftp-server: the byte count then holds this benchmark's writes
    and nothing that other users of /mnt/podline-shared (tests, say) write at the same time. The mount point
    is an empty directory of its own (never inside a directory that is removed recursively afterwards).
    `extra`: more sshfs/ssh options for this mount only (--sshfs-options), e.g. Ciphers=aes128-gcm@openssh.com.
    """
    where = Path(tempfile.mkdtemp(prefix="podline-p2-mnt-"))
    before = set(sftp_servers())
    options = (f"IdentityFile={CLIENT_KEY},IdentitiesOnly=yes,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,"
               f"port={SSHD_PORT},BatchMode=yes,LogLevel=ERROR" + (f",{extra}" if extra else ""))
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
    phases: dict | None = None  # podline: status.timings


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


def prime_node_cache(input_file: Path, scratch: Path) -> None:
    """Fill the node-local dataset cache below `scratch` with the input, as an earlier run on this node would
    have (untimed): the warm podline variant's context uses this scratch directory."""
    print(f"  filling the node cache of datasets in {scratch} (once, untimed) ...", flush=True)
    target = Path(tempfile.mkdtemp(prefix="podline-p2-prime-", dir=os.environ.get("PODLINE_SHM_DIR", "/dev/shm")))
    try:
        stage_dataset({"source": str(input_file)}, target, 0, 1, scratch / "datasets")
    finally:
        shutil.rmtree(target, ignore_errors=True)


def node_copy(source: Path, cache: Path) -> Path:
    """The input dataset as the warm variants find it: already on the node, in a node-local cache directory
    (copied there once, untimed, like the shared input; reused while its size matches)."""
    target = cache / source.name
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    print(f"  copying the input to the node-local cache {target} (once, untimed) ...", flush=True)
    shutil.copyfile(source, target)
    return target


# --- the variants ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    key: str
    label: str  # in the tables
    engine: str  # "baseline" | "podline"
    warm: bool  # the input dataset is already on the node (else it is read from shared storage)
    node_local_every: int = 0  # podline: checkpoint.nodeLocalEvery (L2)


VARIANTS = (
    Variant("baseline-cold", "baseline, input on sshfs", "baseline", False),
    Variant("podline-cold", "podline cold (stage-in from sshfs)", "podline", False),
    Variant("baseline-warm", "baseline, input node-local", "baseline", True),
    Variant("podline-warm", "podline warm (input in the node cache)", "podline", True),
    Variant("podline-cold-l2", "podline cold + L2 every step", "podline", False, 1),
)
BASELINE_OF = {"podline-cold": "baseline-cold", "podline-warm": "baseline-warm", "podline-cold-l2": "baseline-cold"}


def step_command(step_sh: Path, step: str, src: str, dst: str) -> list[str]:
    return ["bash", str(step_sh), step, src, dst]


def run_baseline(variant: Variant, step_sh: Path, input_file: Path, workdir: Path, writes: SharedWrites) -> Run:
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
        subprocess.run(step_command(step_sh, step, str(paths[src]), str(paths[dst])), check=True)
        per_step.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    written = writes.stop()
    handoff = sum((workdir / dst).stat().st_size for _, _, dst in STEPS)
    return Run(variant.label, elapsed, written, per_step, paths["result.txt"].read_bytes(),
               f"input read from {input_file.parent}; files written to sshfs {human(handoff)}")


def manifests(name: str, step_sh: Path, input_file: Path, destination: Path, node_local_every: int,
              workspace_limit: str) -> list[dict]:
    """A Dataset whose source is the shared input file, and the Pipeline staging it (at in/<file name>)."""
    dataset = {"apiVersion": "podline.io/v1alpha1", "kind": "Dataset", "metadata": {"name": DATASET},
               "spec": {"source": str(input_file)}}
    steps = []
    previous = None
    for step, src, dst in STEPS:
        src = f"in/{input_file.name}" if src == "in/data.txt" else src
        item = {"name": step, "image": "host", "command": step_command(step_sh, step, src, dst)}
        if previous:
            item["dependsOn"] = [previous]
        steps.append(item)
        previous = step
    return [dataset, {"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": name},
            "spec": {"workspace": {"medium": "Memory", "sizeLimit": workspace_limit},
                     "inputs": [{"path": "in", "dataset": DATASET}],
                     "outputs": [{"path": "result.txt", "destination": str(destination)}],
                     "checkpoint": {"nodeLocalEvery": node_local_every, "sharedEvery": 0},
                     "restartPolicy": "Never", "backoffLimit": 0,
                     "steps": steps}}]


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


def run_podline(variant: Variant, tmp: Path, step_sh: Path, input_file: Path, shared_root: Path,
                workspace_limit: str, timeout: int, writes: SharedWrites, warm_scratch: Path) -> Run:
    """One Pipeline through the CLI in a fresh PODLINE_HOME, timed from `apply` until `wait` returns. A cold
    run starts with an empty scratch directory (so an empty node cache of datasets); a warm one uses
    `warm_scratch`, whose cache already holds the input (see prime_node_cache)."""
    label = variant.key
    home = tmp / f"home-{label}"
    scratch = warm_scratch if variant.warm else tmp / f"scratch-{label}"
    out_dir, ctx_shared = shared_root / label / "out", shared_root / label / "shared"
    shutil.rmtree(shared_root / label, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    if not variant.warm:
        shutil.rmtree(scratch, ignore_errors=True)
    for leftover in ("checkpoints", "workspaces"):  # a warm scratch keeps its datasets/ cache, nothing else
        shutil.rmtree(scratch / leftover, ignore_errors=True)
    env = {**os.environ, "PODLINE_HOME": str(home), "PODLINE_SHM_DIR": os.environ.get("PODLINE_SHM_DIR", "/dev/shm")}
    podline(env, "config", "set-context", "local", "--backend", "local", "--shared-dir", str(ctx_shared),
            "--scratch-dir", str(scratch))
    podline(env, "config", "use-context", "local")
    name = f"p2-{label}"
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(manifests(name, step_sh, input_file, out_dir, variant.node_local_every,
                                                  workspace_limit)))
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
        return Run(variant.label, elapsed, written, per_step, result.read_bytes(), timings(status, elapsed),
                   status.get("timings") or {})
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


def timings(status: dict, elapsed: float) -> str:
    """The engine's own phases, and the rest of the wall time (CLI, runner start-up, `wait` polling)."""
    t = status.get("timings") or {}
    names = {"stageIn": "stageIn", "compute": "steps+checkpoints", "checkpoint": "checkpoints (foreground)",
             "checkpointWait": "waiting for background L2", "stageOut": "stageOut"}
    parts = [f"{label} {t[k]:.2f} s" for k, label in names.items() if isinstance(t.get(k), int | float)]
    phases = sum(t.get(k, 0) for k in ("stageIn", "compute", "stageOut") if isinstance(t.get(k), int | float))
    return ", ".join(parts + [f"other {elapsed - phases:.2f} s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="input size in MiB (default 1024; the goal is >= 1024)")
    parser.add_argument("--quick", action="store_true", help="a 64 MiB smoke run (same as --mib 64)")
    parser.add_argument("--trials", type=int, default=1, help="interleaved trials of every variant; medians")
    parser.add_argument("--no-l2", action="store_true", help="skip the podline cold run with nodeLocalEvery: 1")
    parser.add_argument("--steps", choices=("tools", "copy"), default="tools",
                        help="tools: the 4 native-tool steps (default); copy: steps that only copy their input "
                             "(reduce: cksum), to measure the hand-off alone")
    parser.add_argument("--node-cache", type=Path,
                        help="node-local directory holding the warm variants' input dataset (default: a temporary "
                             "directory on local disk, next to the contexts' scratch directories); /dev/shm/... "
                             "puts it in RAM")
    parser.add_argument("--shared", type=Path, default=Path("/mnt/podline-shared"), help="the sshfs mount")
    parser.add_argument("--sshfs-options", default="",
                        help="more -o options for the private sshfs mount only, e.g. Ciphers=aes128-gcm@openssh.com "
                             "(faster shared storage for every variant; max_conns is refused: one sftp-server is "
                             "counted)")
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
    if "max_conns" in args.sshfs_options:
        parser.error("--sshfs-options: max_conns opens more sftp-servers than the byte count follows")
    if args.sshfs_options and args.no_private_mount:
        parser.error("--sshfs-options applies to the private mount only")
    global DROP_CACHES
    DROP_CACHES = args.drop_caches
    check_mount(args.shared)
    shm = Path(os.environ.get("PODLINE_SHM_DIR", "/dev/shm"))
    free = shutil.disk_usage(shm).free
    need = 4 * mib * MIB + 256 * MIB
    if free < need:
        raise SystemExit(f"{shm} has {human(free)} free; the workspace needs about {human(need)}")
    workspace_limit = f"{max(1, -(-need // (1 << 30)))}Gi"
    variants = [v for v in VARIANTS if not (args.no_l2 and v.node_local_every)]
    runs: dict[str, list[Run]] = {}
    load_before = os.getloadavg()

    kind = "native tools" if args.steps == "tools" else "copy steps (the hand-off only)"
    print(f"P2 4-step pipeline over {mib} MiB, {kind}: RAM workspace (podline) vs hand-off through files on "
          f"sshfs ({os.cpu_count()} cores, load average {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}{'; page cache dropped before every variant' if DROP_CACHES else ''})", flush=True)
    with tempfile.TemporaryDirectory(prefix="podline-p2-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        if args.no_private_mount:
            mount, writes = args.shared, SharedWrites(None)
            print(f"  shared storage: {mount} (bytes written by all its users count)")
        else:
            mount, pid = stack.enter_context(private_mount(args.sshfs_options))
            writes = SharedWrites(pid)
            print(f"  shared storage: {mount}, a private sshfs connection to {SERVER} (what {args.shared} "
                  f"mounts{'; extra options ' + args.sshfs_options if args.sshfs_options else ''}), "
                  f"sftp-server pid {writes.pid}")
        root = mount / "p2"
        input_file = root / "input" / f"data-{mib}MiB.txt"
        input_size = make_input(input_file, mib)
        node_input = node_copy(input_file, args.node_cache or tmp / "node-cache")
        warm_scratch = tmp / "scratch-warm"
        if any(v.warm and v.engine == "podline" for v in variants):
            prime_node_cache(input_file, warm_scratch)
        print(f"  input dataset: cold variants read {input_file} (shared storage); warm ones: the baseline "
              f"{node_input} (node-local), podline a Dataset of that shared file found in its node cache",
              flush=True)
        step_sh = tmp / "step.sh"
        step_sh.write_text(STEP_SCRIPT if args.steps == "tools" else COPY_STEP_SCRIPT)
        try:
            for trial in range(args.trials):
                for v in variants:
                    print(f"  trial {trial + 1}/{args.trials}: {v.label} ...", flush=True)
                    source = node_input if v.warm else input_file
                    if v.engine == "baseline":
                        run = run_baseline(v, step_sh, source, root / "baseline", writes)
                    else:
                        run = run_podline(v, tmp, step_sh, input_file, root, workspace_limit, args.timeout, writes,
                                          warm_scratch)
                    runs.setdefault(v.key, []).append(run)
        except PodlineFailed as exc:
            print(f"\nPODLINE FAILED: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        finally:
            if not args.keep:
                for sub in ("baseline", *(v.key for v in variants)):
                    shutil.rmtree(root / sub, ignore_errors=True)
            if args.node_cache is None:
                shutil.rmtree(tmp / "node-cache", ignore_errors=True)
        print("  measuring the media (RAM workspace, sshfs) ...", flush=True)
        media = measure(mib, shm, mount)
    report(runs, variants, input_size, input_file, args.trials, load_before, media)


def report(runs: dict[str, list[Run]], variants: list[Variant], input_size: int, input_file: Path, trials: int,
           load_before: tuple[float, float, float], media: Media) -> None:
    expected = runs["baseline-cold"][0].result
    for key, got in runs.items():
        for run in got:
            if run.result != expected:
                raise SystemExit(f"results differ: baseline vs {key}:\n{expected.decode()}\n---\n"
                                 f"{run.result.decode()}")
    load = os.getloadavg()
    print()
    print(f"  input {human(input_size)} ({SERVER}/p2/input/{input_file.name}); the result ({len(expected)} bytes) "
          f"is identical in every run:")
    for line in expected.decode().splitlines():
        print(f"    {line}")
    print(f"  load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
    print(f"\n  every trial:\n  {'variant':36} {'trial':>5} {'wall time':>10}  {'written to shared storage':>27}   "
          f"{' / '.join(s for s, _, _ in STEPS)} (s)")
    for v in variants:
        for trial, run in enumerate(runs[v.key], 1):
            print(f"  {run.label:36} {trial:>5} {run.seconds:8.2f} s  {human(run.written):>12} ({run.written:>11} B)"
                  f"   {' / '.join(f'{t:.2f}' for t in run.per_step)}   {run.note}")

    median = {key: statistics.median(r.seconds for r in got) for key, got in runs.items()}
    written = {key: statistics.median(r.written for r in got) for key, got in runs.items()}
    print(f"\n  {'median of ' + str(trials) + ' trial(s)':36} {'wall time':>10}  {'vs its baseline':>15}  "
          f"{'written to shared storage':>26}")
    for v in variants:
        base = BASELINE_OF.get(v.key)
        ratio = f"{median[base] / median[v.key]:.1f}x" if base else "-"
        print(f"  {v.label:36} {median[v.key]:8.2f} s  {ratio:>15}  {human(written[v.key]):>26}")
    print("  cold: the input dataset is on shared storage (podline stages it into the RAM workspace through sshfs; "
          "the baseline's parse reads it through sshfs)\n"
          "  warm: the input dataset is already on the node (podline: in its node cache of datasets, checked "
          "against the shared file's size and mtime; the baseline's parse reads a node-local copy); the "
          "baseline's hand-offs still go through sshfs")

    for key in ("podline-cold", "podline-warm"):
        phases = [r.phases or {} for r in runs[key]]
        stage_in = statistics.median(p.get("stageIn", 0.0) for p in phases)
        compute = statistics.median(p.get("compute", 0.0) for p in phases)
        stage_out = statistics.median(p.get("stageOut", 0.0) for p in phases)
        other = median[key] - stage_in - compute - stage_out
        base = median[BASELINE_OF[key]]
        print(f"  {key}: stageIn {stage_in:.2f} s + steps {compute:.2f} s + stageOut {stage_out:.2f} s + other "
              f"(CLI, runner start, wait polling) {other:.2f} s; the ratio could at most be "
              f"{base / max(median[key] - compute, 1e-9):.1f}x with free steps, "
              f"{base / max(median[key] - stage_in, 1e-9):.1f}x with a free stage-in")
    for key in ("podline-cold", "podline-warm"):
        ratio = median[BASELINE_OF[key]] / median[key]
        print(f"  {key} vs {BASELINE_OF[key]}: {ratio:.1f}x faster   (goal >= 10x: "
              f"{'MET' if ratio >= 10 else 'MISSED'})")
    if "podline-cold-l2" in median:
        print(f"  with an L2 copy after every step (cold): {median['baseline-cold'] / median['podline-cold-l2']:.1f}x "
              f"faster   (the L2 copies cost {median['podline-cold-l2'] - median['podline-cold']:+.2f} s)")
    pod_written = {key: [r.written for r in got] for key, got in runs.items() if key.startswith("podline")}
    only_output = all(n <= len(expected) + METADATA_SLACK for got in pod_written.values() for n in got)
    print(f"  shared-storage bytes: podline {', '.join(f'{k} {human(max(n))}' for k, n in pod_written.items())} "
          f"for a {len(expected)}-byte result; baseline {human(written['baseline-cold'])} (cold), "
          f"{human(written['baseline-warm'])} (warm)   (goal final output only, within {human(METADATA_SLACK)} of "
          f"metadata: {'MET' if only_output else 'MISSED'})")
    print("\n".join(media.lines()))


if __name__ == "__main__":
    main()
