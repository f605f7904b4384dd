"""Kubernel's code runner: the main process of a kernel container (docs/runner.md)."""
