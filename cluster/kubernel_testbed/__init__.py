"""The local Kubernetes test bed: etcd, kube-apiserver, kube-scheduler,
kube-controller-manager and KWOK simulated nodes on loopback."""
