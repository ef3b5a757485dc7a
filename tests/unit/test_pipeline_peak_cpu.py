"""What a local shard holds: about the most CPU its steps use at once (the runner starts steps within it)."""

from __future__ import annotations

import yaml

from podline.api.pipeline import Pipeline
from podline.plan.pipeline import peak_cpu_millis


def spec(*steps: str):
    text = "".join(f"  - {s}\n" for s in steps)
    doc = yaml.safe_load(f"apiVersion: podline.io/v1alpha1\nkind: Pipeline\nmetadata: {{name: p}}\nspec:\n"
                         f"  steps:\n{text}")
    return Pipeline.model_validate(doc).spec


def test_a_chain_holds_its_largest_step_and_a_fork_its_branches_together() -> None:
    assert peak_cpu_millis(spec("{name: a, command: [a]}", "{name: b, command: [b], dependsOn: [a],"
                                " resources: {requests: {cpu: 3}}}")) == 3000
    diamond = spec("{name: a, command: [a]}", "{name: b, command: [b], dependsOn: [a]}",
                   "{name: c, command: [c], dependsOn: [a], resources: {requests: {cpu: 1500m}}}",
                   "{name: d, command: [d], dependsOn: [b, c]}")
    assert peak_cpu_millis(diamond) == 3000  # b (1 core) beside c (1.5 → 2 cores, as the runner counts)
    assert peak_cpu_millis(spec("{name: x, command: [x]}", "{name: y, command: [y]}", "{name: z, command: [z]}")) \
        == 3000
