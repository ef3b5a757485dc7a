"""The reconciling controller: desired state from the store, actual state from the backend, converge."""
