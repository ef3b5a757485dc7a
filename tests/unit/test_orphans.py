"""What deleted pipelines left on a node (RAM workspaces, L2 copies) is removed by the next shard that starts
there; nothing is removed while its owner exists, nor when the shared directory itself is not there."""

from __future__ import annotations

from pathlib import Path

from podline.runtime import orphans
from podline.runtime.engine import Engine
from podline.runtime.pod_workspace import PodWorkspace
from podline.runtime.workspace import Workspace


def workspace(tmp_path: Path, uid: str, owner: Path) -> Workspace:
    plan = {"pod": {"uid": uid}, "owner": str(owner),
            "dirs": {"scratch": str(tmp_path / "scratch"), "shared": str(tmp_path / "shared")},
            "workspace": {"medium": "Disk", "sizeLimit": None}, "checkpoint": {"nodeLocalEvery": 1, "sharedEvery": 0}}
    return Workspace(plan, 0, [].append, background_l2=False)


def test_leftovers_of_deleted_pipelines_go_and_the_rest_stays(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    live_run, gone_run = shared / "pods" / "default" / "live" / "a1", shared / "pods" / "default" / "gone" / "a2"
    live_run.mkdir(parents=True)
    gone_run.mkdir(parents=True)
    old = workspace(tmp_path, "gone-uid", gone_run)
    old.restore()
    (old.path / "data").write_text("failed shard's L1")
    old.checkpoint(["a"], False)  # an L2 copy too
    left = [old.root, old.levels["L2"].parent]
    unmounted = tmp_path / "scratch" / "workspaces" / "podline-other-0"
    orphans.claim(unmounted, str(tmp_path / "not-mounted"), str(tmp_path / "not-mounted" / "run"))
    foreign = tmp_path / "scratch" / "workspaces" / "podline-nomark-0"
    foreign.mkdir(parents=True)
    gone_run.rmdir()  # the pipeline was deleted: its run directory went with it

    new = workspace(tmp_path, "live-uid", live_run)
    new.restore()
    assert not any(path.exists() for path in left)
    assert unmounted.exists() and foreign.exists() and new.root.exists()
    assert (new.root / orphans.OWNER).read_text() == f"{shared}\n{live_run}\n"


def test_a_retry_claims_its_shards_leftovers_before_looking_for_orphans(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    first, second = shared / "pods" / "default" / "p" / "a1", shared / "pods" / "default" / "p" / "a2"
    first.mkdir(parents=True)
    ws = workspace(tmp_path, "uid", first)
    ws.restore()
    (ws.path / "data").write_text("x")
    ws.checkpoint(["a"], False)
    second.mkdir()
    first.rmdir()  # (attempt directories stay until the pipeline is deleted; even if one went, the retry keeps it)
    retry = workspace(tmp_path, "uid", second)
    snap, level = retry.restore()
    assert level == "L1" and snap is not None and (retry.path / "data").read_text() == "x"


def test_the_steps_dev_shm_names_its_owner_out_of_their_sight_and_goes_with_it(tmp_path: Path) -> None:
    """bwrap and apptainer give a shard's steps a /dev/shm in RAM beside its workspace; a runner killed on a
    Slurm node cannot remove it, so it names its owner like the workspace does."""
    shared, holder = tmp_path / "shared", tmp_path / "shm" / "podline-uid-0.shm"
    run = shared / "pods" / "default" / "p" / "a1"
    run.mkdir(parents=True)
    engine = Engine({"runtime": "bwrap"}, {"name": "p-0"}, {}, tmp_path / "logs", holder / "dev",
                    (holder, str(shared), str(run)))
    engine.make_shm()
    assert (holder / "dev").is_dir() and (holder / "dev").stat().st_mode & 0o7777 == 0o1777
    assert (holder / orphans.OWNER).read_text() == f"{shared}\n{run}\n" and not list((holder / "dev").iterdir())
    assert orphans.collect([holder.parent], [].append) == []  # its owner is there
    run.rmdir()  # the pipeline was deleted
    assert orphans.collect([holder.parent], [].append) == [holder]
    engine.make_shm()
    engine.remove_shm()
    assert not holder.exists()


def test_a_job_index_workspace_is_owned_by_its_checkpoints_directory(tmp_path: Path) -> None:
    """A pod in pipeline form of an Indexed Job: its RAM outlives the pod (the index's next pod resumes from
    it); once the Job is over its checkpoints' directory goes, and with it what a killed runner left."""
    shared, scratch = tmp_path / "shared", tmp_path / "scratch"
    shared.mkdir()
    plan = {"terminationGracePeriodSeconds": 1,
            "workspace": {"volume": "work", "key": "job-uid-{index}", "resumable": True, "medium": "Disk",
                          "sizeLimit": None, "checkpoint": {"nodeLocalEvery": 1, "sharedEvery": 0},
                          "dirs": {"shared": str(shared), "scratch": str(scratch)}}}
    pod = PodWorkspace(plan, 3, [].append)
    pod.restore()
    (pod.path / "data").write_text("an init container's output")
    pod.checkpoint(["init"])
    owner = shared / "checkpoints" / "job-uid-3"
    root, l2 = pod.workspace.root, pod.workspace.levels["L2"].parent
    assert owner.is_dir() and (root / orphans.OWNER).read_text() == f"{shared}\n{owner}\n"
    assert orphans.collect([root.parent, l2.parent], [].append) == []  # the Job still runs
    owner.rmdir()  # the Job is over (controller.jobs.forget_checkpoints), its runner was killed
    assert sorted(orphans.collect([root.parent, l2.parent], [].append)) == sorted([root, l2])
