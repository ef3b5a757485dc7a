"""The kubectl-like command line: parse arguments, talk to the store, print tables; no execution here."""
