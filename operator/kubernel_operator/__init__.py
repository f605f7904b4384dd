"""The Kubernel operator: runs KernelSessions as Pods (kopf)."""
