"""P2: a 4-step pipeline (parse -> filter -> transform -> reduce) over >= 1 GiB through podline's shared-memory
workspace, side by side with the same steps handing data over through files on shared storage.

Shared storage is the sshfs mount of scripts/sshfs-up.sh (/mnt/podline-shared, served by an sshd on
127.0.0.1:2222): a real network filesystem where every open, write and read is an SFTP round trip, standing in
for Lustre. The input dataset (text lines of numbers, default 1 GiB, deterministic) lives there and is written
once, before any timing; both variants read it from there. The four steps are one stdlib Python script
(`step.py STEP IN OUT`) streaming 4 MiB chunks with cheap byte-level work, so hand-off I/O dominates: parse,
filter and transform each write about as much as they read, reduce writes a few lines of counts and a hash.
Every step fsyncs its output (a no-op on tmpfs).

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

Bytes written to shared storage are measured on the server side: the sum of `write_bytes` in
/proc/<pid>/io of every `sftp-server` process below the sshd whose pid is in /run/podline-sshd.pid (one per
sshfs connection; sshfs-up.sh configures sftp-server, not internal-sftp, for this). `write_bytes` counts the
bytes those processes sent to the server's filesystem (pages dirtied), so reads are not counted (`wchar` would
also count the data sent back to readers). Anything else using the mount during a run is counted too.
Goals: podline >= 10x faster; podline's shared-storage bytes = the final output (+ major checkpoints) only.

Usage: python bench/p2_pipeline.py [--mib 1024 | --quick] [--no-l2] [--shared /mnt/podline-shared] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
SSHD_PID_FILE = Path("/run/podline-sshd.pid")
PODLINE = Path(sys.executable).with_name("podline")
STEPS = (("parse", "in/data.txt", "parsed.tsv"), ("filter", "parsed.tsv", "filtered.tsv"),
         ("transform", "filtered.tsv", "transformed.tsv"), ("reduce", "transformed.tsv", "result.txt"))
GENERATOR_VERSION = 1
PAGE_SLACK = 64 * 1024  # page granularity and directory entries when comparing written bytes to file sizes

STEP_SCRIPT = r'''"""P2 pipeline step: python step.py parse|filter|transform|reduce IN OUT (streams 4 MiB chunks)."""
import hashlib
import os
import sys

CHUNK = 4 << 20
UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz0123456789", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ5678901234")
CATEGORIES = (b"\tALPHA\t", b"\tBRAVO\t")


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
    lines = block.split(b"\n")
    tail = lines.pop()
    kept = [line for line in lines if line[11:12] != b"9"]
    return b"\n".join(kept) + b"\n" + tail if kept else tail


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
    if not out:
        raise SystemExit("no sftp-server process below the podline sshd: is /mnt/podline-shared mounted? "
                         "(scripts/sshfs-up.sh)")
    return out


class SharedWrites:
    """Bytes written to shared storage between start() and stop(), from the server side."""

    def start(self) -> None:
        self.before = sftp_servers()

    def stop(self) -> int:
        after = sftp_servers()
        lost = set(self.before) - set(after)
        if lost:
            print(f"  warning: sftp-server(s) {sorted(lost)} ended during the run (sshfs reconnected?); "
                  "their writes after the start are not counted", file=sys.stderr)
        return sum(n - self.before.get(pid, 0) for pid, n in after.items())


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
def run_baseline(step_py: Path, input_file: Path, workdir: Path) -> tuple[float, Path]:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    paths = {"in/data.txt": input_file}
    started = time.perf_counter()
    for step, src, dst in STEPS:
        paths[dst] = workdir / dst
        subprocess.run([sys.executable, str(step_py), step, str(paths[src]), str(paths[dst])], check=True)
    return time.perf_counter() - started, paths["result.txt"]


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
                workspace_limit: str, timeout: int) -> tuple[float, Path, dict]:
    """One Pipeline through the CLI in a fresh PODLINE_HOME; returns (seconds, result file, status)."""
    home, scratch = tmp / f"home-{label}", tmp / f"scratch-{label}"
    out_dir, ctx_shared = shared_root / f"podline-{label}" / "out", shared_root / f"podline-{label}" / "shared"
    shutil.rmtree(shared_root / f"podline-{label}", ignore_errors=True)
    env = {**os.environ, "PODLINE_HOME": str(home), "PODLINE_SHM_DIR": os.environ.get("PODLINE_SHM_DIR", "/dev/shm")}
    podline(env, "config", "set-context", "local", "--backend", "local", "--shared-dir", str(ctx_shared),
            "--scratch-dir", str(scratch))
    podline(env, "config", "use-context", "local")
    name = f"p2-{label}"
    path = tmp / f"{name}.yaml"
    path.write_text(json.dumps(manifest(name, step_py, input_file, out_dir, node_local_every, workspace_limit)))
    shm_before = set(os.listdir(env["PODLINE_SHM_DIR"]))
    try:
        started = time.perf_counter()
        podline(env, "apply", "-f", str(path))
        waited = podline(env, "wait", f"pipeline/{name}", "--for=phase=Succeeded", f"--timeout={timeout}",
                         check=False)
        elapsed = time.perf_counter() - started
        if waited.returncode != 0:
            raise PodlineFailed(f"`podline wait pipeline/{name}` exited {waited.returncode}: "
                                f"{(waited.stderr or waited.stdout).strip()}\n{diagnose(env, name)}")
        status = json.loads(podline(env, "get", "pipeline", name, "-o", "json").stdout).get("status", {})
        result = out_dir / "result.txt"
        if not result.is_file():
            raise PodlineFailed(f"pipeline {name} succeeded but {result} is missing\n{diagnose(env, name)}")
        return elapsed, result, status
    finally:
        podline(env, "delete", "pipeline", name, check=False)
        podline(env, "down", check=False)
        for entry in set(os.listdir(env["PODLINE_SHM_DIR"])) - shm_before:  # what a failed shard left in RAM
            if entry.startswith("podline-"):
                shutil.rmtree(Path(env["PODLINE_SHM_DIR"]) / entry, ignore_errors=True)


# --- report -------------------------------------------------------------------------------------------------------
def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def timings(status: dict) -> str:
    t = status.get("timings") or {}
    names = {"stageIn": "stageIn", "compute": "compute (incl. checkpoints)", "checkpoint": "checkpoints",
             "stageOut": "stageOut"}
    return ", ".join(f"{label} {t[k]:.2f} s" for k, label in names.items() if isinstance(t.get(k), int | float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="input size in MiB (default 1024; the goal is >= 1024)")
    parser.add_argument("--quick", action="store_true", help="a 64 MiB smoke run (same as --mib 64)")
    parser.add_argument("--no-l2", action="store_true", help="skip the second podline run with nodeLocalEvery: 1")
    parser.add_argument("--shared", type=Path, default=Path("/mnt/podline-shared"), help="the sshfs mount")
    parser.add_argument("--keep", action="store_true", help="keep intermediate files and outputs on shared storage")
    parser.add_argument("--timeout", type=int, default=600, help="podline wait --timeout")
    args = parser.parse_args()
    mib = 64 if args.quick else args.mib
    check_mount(args.shared)
    root = args.shared / "p2"
    shm = Path(os.environ.get("PODLINE_SHM_DIR", "/dev/shm"))
    free = shutil.disk_usage(shm).free
    need = 4 * mib * MIB + 256 * MIB
    if free < need:
        raise SystemExit(f"{shm} has {human(free)} free; the workspace needs about {human(need)}")
    workspace_limit = f"{max(1, -(-need // (1 << 30)))}Gi"

    print(f"P2 4-step pipeline over {mib} MiB: RAM workspace (podline) vs hand-off through files on sshfs "
          f"({os.cpu_count()} cores, python {sys.version.split()[0]})", flush=True)
    input_file = root / "input" / "data.txt"
    input_size = make_input(input_file, mib)
    writes = SharedWrites()
    rows: list[tuple[str, float, int, str]] = []
    with tempfile.TemporaryDirectory(prefix="podline-p2-") as tmp_name:
        tmp = Path(tmp_name)
        step_py = tmp / "step.py"
        step_py.write_text(STEP_SCRIPT)
        try:
            print("  running the baseline (files on shared storage, fsync after each write) ...", flush=True)
            writes.start()
            t_base, base_result = run_baseline(step_py, input_file, root / "baseline")
            b_base = writes.stop()
            handoff = sum((root / "baseline" / dst).stat().st_size for _, _, dst in STEPS)
            rows.append(("baseline: files on sshfs", t_base, b_base, f"files written: {human(handoff)}"))
            expected = base_result.read_bytes()
            runs = [("ram", 0)] + ([] if args.no_l2 else [("ram-l2", 1)])
            results: dict[str, tuple[float, int, int]] = {}
            for label, every in runs:
                print(f"  running podline (checkpoint nodeLocalEvery: {every}, sharedEvery: 0) ...", flush=True)
                writes.start()
                try:
                    t_pod, result, status = run_podline(tmp, label, step_py, input_file, root, every,
                                                        workspace_limit, args.timeout)
                finally:
                    b_pod = writes.stop()
                got = result.read_bytes()
                if got != expected:
                    raise SystemExit(f"results differ: baseline {base_result} vs podline {result}:\n"
                                     f"{expected.decode()}\n---\n{got.decode()}")
                results[label] = (t_pod, b_pod, len(got))
                rows.append((f"podline Pipeline, L2 every {every or 'never'}", t_pod, b_pod, timings(status)))
        except PodlineFailed as exc:
            print(f"\nPODLINE FAILED: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        finally:
            if not args.keep:
                for sub in ("baseline", "podline-ram", "podline-ram-l2"):
                    shutil.rmtree(root / sub, ignore_errors=True)

    print()
    print(f"  input {human(input_size)} on {args.shared}; result ({len(expected)} bytes) identical in every run:")
    for line in expected.decode().splitlines():
        print(f"    {line}")
    print(f"  {'variant':32} {'wall time':>10}  {'written to shared storage':>26}")
    for label, seconds, written, note in rows:
        print(f"  {label:32} {seconds:8.2f} s  {human(written):>14} ({written:>11} B)   {note}")
    t_pod, b_pod, out_size = results["ram"]
    ratio = t_base / t_pod
    print(f"  podline vs files on shared storage: {ratio:.1f}x faster   (goal >= 10x: "
          f"{'MET' if ratio >= 10 else 'MISSED'})")
    if "ram-l2" in results:
        print(f"  with L2 copies after every step: {t_base / results['ram-l2'][0]:.1f}x faster "
              f"({results['ram-l2'][0] - t_pod:+.2f} s for the L2 copies)")
    only_output = b_pod <= out_size + PAGE_SLACK
    print(f"  podline wrote {human(b_pod)} to shared storage for a {out_size}-byte output, the baseline "
          f"{human(b_base)} ({b_base / max(b_pod, 1):.0f}x more)   (goal: final output only: "
          f"{'MET' if only_output else 'MISSED'})")


if __name__ == "__main__":
    main()
