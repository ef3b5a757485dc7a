"""What runs where the work runs: the pod runner, container runtimes and volumes.

Only the standard library is used here: the same code runs on a laptop (forked by the local backend)
and inside a Slurm allocation (`python -m podline.runtime.pod RUNDIR`), where start-up time matters.
"""
