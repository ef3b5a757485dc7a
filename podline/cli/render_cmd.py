"""`podline render`: print what would be submitted (sbatch scripts, Kubernetes YAML), submit nothing."""

from __future__ import annotations

import sys
from typing import Any

import click
import yaml

from podline.cli.common import State, fail, namespace_option, pass_state, recursive_option

RENDER_UID = "00000000-0000-0000-0000-000000000000"  # real submissions use the object's uid


@click.command()
@namespace_option
@click.option("-f", "--filename", "files", multiple=True, required=True)
@recursive_option
@click.option("--target", type=click.Choice(["slurm", "kubernetes"]), default="slurm", show_default=True)
@pass_state
def render(state: State, files: tuple[str, ...], target: str) -> None:
    """Print the sbatch script(s) or Kubernetes YAML for manifests, without submitting anything."""
    from podline.api.batch import Job  # the models are built only by the commands that need them
    from podline.api.config import load_config, shared_dir
    from podline.api.core import Pod
    from podline.api.dataset import Dataset
    from podline.api.errors import ManifestError
    from podline.api.names import generated_name
    from podline.api.pipeline import Pipeline
    from podline.cli.apply_cmd import load_or_exit
    from podline.plan.kubernetes import pipeline_array_job, pipeline_job
    from podline.plan.slurm import Placement, render_indexed_job, render_pod

    loaded = load_or_exit(files, state)
    if target == "kubernetes":  # a Workflow is echoed as it is: Argo runs it natively
        docs = []
        for item in loaded:
            if isinstance(item.obj, Dataset):
                click.echo(f"warning: {item.describe()}: a Dataset has no Kubernetes form; skipped", err=True)
            elif isinstance(item.obj, Pipeline):
                if item.obj.spec.inputs or item.obj.spec.outputs:
                    click.echo(f"warning: {item.describe()}: inputs and outputs are not rendered (in Kubernetes, "
                               "mount the data as volumes)", err=True)
                for i, step in enumerate(item.obj.spec.steps):
                    if not step.image:  # podline runs it on the host; Kubernetes needs an image
                        click.echo(f"warning: {item.describe()}: spec.steps[{i}] ({step.name}) names no image: "
                                   "rendered with busybox, which may lack what it runs on the host here", err=True)
                docs.append(pipeline_job(item.obj.dump()))
            else:
                docs.append(_as_written(item))
        click.echo(yaml.safe_dump_all(docs, sort_keys=False).rstrip("\n"))
        return
    for item in loaded:
        if item.obj.kind == "Workflow":  # checked first, so nothing is printed for the other documents
            fail(f"{item.describe()}: render is not available for this kind (apply it; each step runs as its own "
                 "pod)", 2)
    try:
        cfg = load_config(state.home)
    except ManifestError as exc:
        fail(str(exc), 2)
    ctx = cfg.contexts.get(state.context or cfg.current_context)
    if ctx is None:
        fail(f'context "{state.context}" does not exist', 2)
    placement = Placement(ctx.partition, ctx.account, ctx.qos, ctx.time_limit, sys.executable)
    base = str(shared_dir(state.home, ctx))  # where submission puts the run directory (api.config)
    for item in loaded:
        obj, meta = item.obj, item.obj.metadata
        if meta.name is None and meta.generate_name:  # named as apply would name it
            meta.name = generated_name(meta.generate_name)
        rundir = f"{base}/pods/{meta.namespace}/{meta.name}/{RENDER_UID}"
        if isinstance(obj, Job) and obj.spec.completions == 0:  # valid: the Job completes at once, with no pods
            click.echo(f"warning: {item.describe()}: completions is 0: the Job completes at once and runs no pod; "
                       "no script", err=True)
            continue
        if isinstance(obj, Pod):
            script = render_pod(obj.dump(), RENDER_UID, rundir, placement)
        elif isinstance(obj, Job) and obj.spec.completion_mode == "Indexed":
            script = render_indexed_job(obj.dump(), RENDER_UID, rundir, placement)
        elif isinstance(obj, Pipeline):
            script = render_indexed_job(pipeline_array_job(obj.dump()), RENDER_UID, rundir, placement,
                                        pipeline=True)
        elif isinstance(obj, Job):  # its pods are batch jobs of their own, made one by one as Kubernetes does
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": obj.dump()["metadata"],
                   "spec": obj.dump()["spec"]["template"]["spec"]}
            until = f"{obj.spec.completions} completions" if obj.spec.completions is not None else "until one succeeds"
            script = render_pod(pod, RENDER_UID, rundir, placement, of=f"one such job per pod of the Job ({until}, "
                                f"{obj.spec.parallelism} at a time); this ")
        else:
            continue  # ConfigMaps, Secrets and Datasets travel in plans, not scripts
        click.echo(f"# ---- {item.describe()}")
        click.echo(script, nl=False)


def _as_written(item: Any) -> dict[str, Any]:
    """A Kubernetes or Argo object as the user wrote it (Kubernetes runs what podline ignores: securityContext,
    probes, tolerations, …), in the namespace apply would put it in."""
    if item.raw is None:
        return item.obj.dump()
    doc = dict(item.raw)
    doc["metadata"] = {**(doc.get("metadata") or {}), "namespace": item.obj.metadata.namespace}
    return doc
