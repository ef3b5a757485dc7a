"""Translate validated resources into execution plans (what exactly runs, with which env and volumes)."""
