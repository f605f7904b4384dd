module kubernel.dev/bench/sseload

go 1.22
