"""Extra sbatch options from annotations (HPK's `slurm.hpk.io/flags`, interLink's `slurm-job.vk.io/flags`).

The annotation is split like a command line (no shell involved) and each option is checked against an
allow-list with a value pattern; the result is a list of `--long=value` options that the renderer writes as
`#SBATCH` lines. Anything else — unknown or dangerous options (`--wrap`, `--output`, `--export`, …),
values with odd characters — is bad input, reported with the annotation's field path.
"""

from __future__ import annotations

import re
import shlex
import signal

FLAG_ANNOTATIONS = ("slurm.hpk.io/flags", "slurm-job.vk.io/flags")
MPI_ANNOTATION = "slurm-job.vk.io/mpi-flags"

_NAME = r"[A-Za-z0-9_.+-]{1,64}"
_NAMES = rf"{_NAME}(,{_NAME})*"
_INT = r"\d{1,9}"
_TIME = r"(\d+-)?\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE"
_MEM = r"\d{1,12}[KMGT]?"
_GRES = r"[A-Za-z0-9_.:-]{1,64}(,[A-Za-z0-9_.:-]{1,64})*"
_HOSTS = r"[A-Za-z0-9_.,\[\]-]{1,512}"

# long option -> (value pattern or None for a bare flag)
ALLOWED: dict[str, str | None] = {
    "partition": _NAMES, "account": _NAME, "qos": _NAME, "time": _TIME, "time-min": _TIME,
    "nodes": rf"{_INT}(-{_INT})?", "ntasks": _INT, "ntasks-per-node": _INT, "cpus-per-task": _INT,
    "mem": _MEM, "mem-per-cpu": _MEM, "mem-per-gpu": _MEM, "tmp": _MEM,
    "gres": _GRES, "gpus": _GRES, "gpus-per-node": _GRES, "gpus-per-task": _GRES, "cpus-per-gpu": _INT,
    "constraint": r"[A-Za-z0-9_.&|,\[\]*-]{1,256}", "reservation": _NAME, "nodelist": _HOSTS,
    "exclude": _HOSTS, "licenses": r"[A-Za-z0-9_.:,@-]{1,256}", "exclusive": None, "oversubscribe": None,
    "no-requeue": None, "hint": r"[a-z_]{1,32}", "nice": rf"-?{_INT}",
    "mail-type": r"[A-Z_,0-9]{1,128}", "mail-user": r"[A-Za-z0-9_.+@-]{1,128}",
    "begin": r"[A-Za-z0-9:+-]{1,32}", "deadline": r"[A-Za-z0-9:+-]{1,32}", "signal": r"(B:)?[A-Z0-9]{1,10}(@\d{1,6})?",
    "wckey": _NAME, "switches": r"\d{1,3}(@[0-9:-]{1,16})?", "threads-per-core": _INT, "cores-per-socket": _INT,
    "sockets-per-node": _INT, "distribution": r"[a-z:,*]{1,64}", "mincpus": _INT, "gpu-bind": r"[a-z_:,0-9]{1,64}",
}
SHORT = {"p": "partition", "A": "account", "q": "qos", "t": "time", "N": "nodes", "n": "ntasks",
         "c": "cpus-per-task", "C": "constraint", "w": "nodelist", "x": "exclude", "L": "licenses", "G": "gpus"}


# `--signal`: Slurm sends it to the batch shell (`B:`), which is the pod runner (the script `exec`s it), or else
# to the job steps, of which a pod has none (its containers run in the batch step): both forms become `B:`.
# The runner stops the pod on these (as on podline's own stop) ...
STOPPING_SIGNALS = ("TERM", "INT", "HUP")
# ... and forwards these to its containers' processes (a checkpoint request, say). Others cannot be honoured:
# KILL and STOP cannot be caught, CONT/TSTP/TTIN/TTOU are job control (Slurm suspends jobs itself).
FORWARDED_SIGNALS = ("USR1", "USR2", "ALRM", "URG", "XCPU", "QUIT", "ABRT")
# Slurm refuses these together: one of each group at most.
EXCLUSIVE_GROUPS = (("--mem", "--mem-per-cpu", "--mem-per-gpu"), ("--cpus-per-task", "--cpus-per-gpu"))


class FlagError(ValueError):
    pass


def signal_option(value: str) -> str:
    """`USR1@120`, `B:SIGUSR1@120` or `B:10@120` → `B:USR1@120` (see FORWARDED_SIGNALS)."""
    sig, at, seconds = value.removeprefix("B:").partition("@")
    name = sig.removeprefix("SIG")
    if name.isdigit():
        try:
            name = signal.Signals(int(name)).name.removeprefix("SIG")
        except ValueError:
            name = "?"
    if name not in STOPPING_SIGNALS + FORWARDED_SIGNALS:
        raise FlagError(f"sbatch option --signal={value}: podline's pod runner cannot honour signal {sig} (it "
                        f"forwards {', '.join(FORWARDED_SIGNALS)} to the containers and stops the pod on "
                        f"{', '.join(STOPPING_SIGNALS)})")
    return f"B:{name}{at}{seconds}"


def _take_value(option: str, inline: str | None, tokens: list[str], i: int) -> tuple[str | None, int]:
    pattern = ALLOWED[option]
    if pattern is None:
        if inline is not None:
            raise FlagError(f"sbatch option --{option} takes no value")
        return None, i
    if inline is None:
        if i >= len(tokens):
            raise FlagError(f"sbatch option --{option} needs a value")
        inline, i = tokens[i], i + 1
    if not re.fullmatch(pattern, inline, re.ASCII):  # `\d` is ASCII digits only: sbatch reads no other
        raise FlagError(f"invalid value {inline!r} for sbatch option --{option}")
    return inline, i


def parse_flags(text: str) -> list[str]:
    """`--exclusive -p gpu --time=10` → ['--exclusive', '--partition=gpu', '--time=10']."""
    try:
        tokens = shlex.split(text, comments=False, posix=True)
    except ValueError as exc:
        raise FlagError(f"cannot split flags: {exc}") from None
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token.startswith("--"):
            option, sep, inline = token[2:].partition("=")
            value_inline = inline if sep else None
        elif token.startswith("-") and len(token) >= 2 and token[1] in SHORT:
            option, value_inline = SHORT[token[1]], (token[2:] or None)
        else:
            raise FlagError(f"unexpected argument {token!r} (only sbatch options are accepted)")
        if option == "requeue":  # the runner never reruns an attempt that started: a requeued job would idle
            raise FlagError("sbatch option '--requeue' is not allowed: podline retries a job lost with its node "
                            "itself (backoffLimit), resuming from checkpoints")
        if option not in ALLOWED:
            raise FlagError(f"sbatch option {token.split('=')[0]!r} is not allowed")
        value, i = _take_value(option, value_inline, tokens, i)
        if option == "signal" and value is not None:
            value = signal_option(value)
        out.append(f"--{option}" if value is None else f"--{option}={value}")
    names = {option.split("=", 1)[0] for option in out}
    for group in EXCLUSIVE_GROUPS:  # one of them replaces podline's own (merge_options); two are a conflict
        if len(names.intersection(group)) > 1:
            raise FlagError(f"sbatch options {', '.join(sorted(names.intersection(group)))} are mutually exclusive")
    return out


def flags_from_annotations(annotations: dict[str, str]) -> list[str]:
    """All extra sbatch options the annotations ask for (both conventions), in annotation order (a later one
    replaces an earlier one of the same name or exclusive group when rendered)."""
    out: list[str] = []
    for key in FLAG_ANNOTATIONS:
        if key in annotations:
            out.extend(parse_flags(annotations[key]))
    return out
