"""podline: Kubernetes-style workloads on Slurm and on a laptop, data locality first."""

__version__ = "0.1.0"
