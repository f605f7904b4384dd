module kubernel.io/cluster/images/pause

go 1.24.0
