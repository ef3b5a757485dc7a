"""P3: stage-in of 20,000 small files from the shared storage, podline against `cp -r`, cold and warm.

Shared storage is the sshfs export of scripts/sshfs-up.sh (/srv/podline-shared through an sshd on 127.0.0.1),
a real network filesystem where every open, read and stat is a round trip. The dataset (default 20,000 files
of 4 KiB in 100 directories, deterministic) is written on the server side once, untimed.

Each variant gets a fresh sshfs connection of its own (bench/p2_pipeline.py's private mount: sshfs's own
caches start empty) and, for cold runs, an emptied page cache (root: drop_caches):
  cp cold       `cp -r <mount>/dataset <RAM dir>` (the RAM dir on /dev/shm, where a Memory workspace lives)
  cp warm       the same copy again right away, on the same connection (kernel and sshfs caches warm)
  podline cold  a Dataset on the mount and a one-step Pipeline using it, through the real CLI on the local
                backend in a fresh PODLINE_HOME and an empty node cache: the time is the runner's own
                status.timings.stageIn (listing, fetching with 8 threads, filling the node-local cache)
  podline warm  a second Pipeline on the same Dataset and node: the files come from the node-local cache
                (the listing and its size/mtime check still go to the shared storage)
The wall time of the podline runs (apply to wait, with the CLI and the step) is printed too. The step
checksums its input, and every variant's copy must match the source (asserted).

Usage: python bench/p3_stage_in.py [--files 20000] [--size 4096] [--trials 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from p2_pipeline import PODLINE, private_mount  # the same sshfs setup as P2

EXPORT = Path("/srv/podline-shared")
DIRS = 100
STEP = ("export LC_ALL=C; mkdir -p out && cd in && find . -type f | sort | xargs cat | md5sum | cut -d' ' -f1 "
        "> ../out/sum")


def make_dataset(files: int, size: int) -> str:
    """The dataset below the export (written on the server side, once); its path relative to the export."""
    rel = f"p3/data-{files}x{size}"
    root = EXPORT / rel
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        for i in range(files):
            d = root / f"d{i % DIRS:03}"
            d.mkdir(parents=True, exist_ok=True)
            seed = hashlib.sha256(str(i).encode()).digest()
            (d / f"f{i:06}.dat").write_bytes((seed * (size // len(seed) + 1))[:size])
            os.utime(d / f"f{i:06}.dat", (1.7e9, 1.7e9))  # a dataset written long ago (fresh files: not cached)
        done.touch()
    return rel


def tree_sum(root: Path) -> str:
    """md5 of the files' bytes in `find . -type f | sort` order (C locale), as the pipeline's step computes it."""
    paths = sorted(f"./{p.relative_to(root)}" for p in root.rglob("*") if p.is_file() and p.name != ".complete")
    digest = hashlib.md5()  # noqa: S324 - a checksum for equality, as md5sum computes it
    for rel in paths:
        digest.update((root / rel).read_bytes())
    return digest.hexdigest()


def drop_caches() -> None:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        print("  warning: cannot drop the page cache (not root): 'cold' runs may be warm", file=sys.stderr)


def run_cp(source: Path, expected: str) -> tuple[float, float]:
    target = Path(tempfile.mkdtemp(prefix="podline-p3-cp-", dir="/dev/shm"))
    try:
        times = []
        for cold in (True, False):
            shutil.rmtree(target / "data", ignore_errors=True)
            if cold:
                drop_caches()
            started = time.perf_counter()
            subprocess.run(["cp", "-r", str(source), str(target / "data")], check=True)
            times.append(time.perf_counter() - started)
            (target / "data" / ".complete").unlink(missing_ok=True)
            assert tree_sum(target / "data") == expected, "cp -r copied something else"
        return times[0], times[1]
    finally:
        shutil.rmtree(target, ignore_errors=True)


def podline(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(PODLINE), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"`podline {' '.join(args)}` exited {done.returncode}: {done.stderr or done.stdout}")
    return done.stdout


def run_podline(source: Path, expected: str, tmp: Path) -> list[dict[str, float]]:
    """A cold and a warm pipeline over the same Dataset in one fresh PODLINE_HOME; per run: stageIn, wall."""
    home, scratch, out = tmp / "home", tmp / "scratch", tmp / "out"
    for d in (home, scratch, out):
        shutil.rmtree(d, ignore_errors=True)
    env = {**os.environ, "PODLINE_HOME": str(home)}
    podline(env, "config", "set-context", "local", "--backend", "local", "--scratch-dir", str(scratch))
    podline(env, "config", "use-context", "local")
    dataset = {"apiVersion": "podline.io/v1alpha1", "kind": "Dataset", "metadata": {"name": "p3"},
               "spec": {"source": str(source), "exclude": [".complete"]}}
    (tmp / "dataset.json").write_text(json.dumps(dataset))
    podline(env, "apply", "-f", str(tmp / "dataset.json"))
    runs = []
    try:
        for name in ("p3-cold", "p3-warm"):
            doc = {"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": name},
                   "spec": {"inputs": [{"dataset": "p3", "path": "in"}],
                            "outputs": [{"path": "out", "destination": str(out / name)}],
                            "checkpoint": {"nodeLocalEvery": 0, "sharedEvery": 0}, "restartPolicy": "Never",
                            "steps": [{"name": "sum", "image": "host", "command": ["sh", "-c", STEP]}]}}
            (tmp / f"{name}.json").write_text(json.dumps(doc))
            if name == "p3-cold":
                drop_caches()
            started = time.perf_counter()
            podline(env, "apply", "-f", str(tmp / f"{name}.json"))
            podline(env, "wait", f"pipeline/{name}", "--for=phase=Succeeded", "--timeout=600")
            wall = time.perf_counter() - started
            status = json.loads(podline(env, "get", "pipeline", name, "-o", "json"))["status"]
            got = (out / name / "sum").read_text().strip()
            assert got == expected, f"{name}: the staged files differ from the source ({got} != {expected})"
            shard = status["shards"][0]
            runs.append({"stageIn": status["timings"]["stageIn"], "wall": wall, **shard["staging"]})
        return runs
    finally:
        subprocess.run([str(PODLINE), "down"], env=env, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=4096, help="bytes per file")
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    rel = make_dataset(args.files, args.size)
    expected = tree_sum(EXPORT / rel)
    print(f"P3: {args.files} files of {args.size} B ({args.files * args.size / 2**20:.1f} MiB) in {DIRS} "
          f"directories on sshfs; {args.trials} trial(s)")
    results: dict[str, list[float]] = {k: [] for k in ("cp cold", "cp warm", "podline cold", "podline warm",
                                                       "podline cold wall", "podline warm wall")}
    with tempfile.TemporaryDirectory(prefix="podline-p3-") as tmp_name:
        tmp = Path(tmp_name)
        for trial in range(1, args.trials + 1):
            with private_mount() as (mount, _):
                cold, warm = run_cp(mount / rel, expected)
            results["cp cold"].append(cold)
            results["cp warm"].append(warm)
            with private_mount() as (mount, _):
                runs = run_podline(mount / rel, expected, tmp)
            for label, run in zip(("podline cold", "podline warm"), runs, strict=True):
                results[label].append(run["stageIn"])
                results[f"{label} wall"].append(run["wall"])
            print(f"  trial {trial}: cp -r {cold:.2f} s cold, {warm:.2f} s warm; podline stage-in "
                  f"{runs[0]['stageIn']:.2f} s cold ({runs[0]['filesCopied']} files fetched), "
                  f"{runs[1]['stageIn']:.2f} s warm ({runs[1]['filesReused']} from the node cache, "
                  f"{runs[1]['filesCopied']} fetched); wall {runs[0]['wall']:.2f} / {runs[1]['wall']:.2f} s")
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\n  median of {args.trials}        cp -r     podline stage-in   ratio   (podline wall, apply to done)")
    for kind in ("cold", "warm"):
        print(f"  {kind:<18} {med[f'cp {kind}']:8.2f} s {med[f'podline {kind}']:10.2f} s "
              f"{med[f'cp {kind}'] / med[f'podline {kind}']:9.1f}x   ({med[f'podline {kind} wall']:.2f} s)")


if __name__ == "__main__":
    main()
