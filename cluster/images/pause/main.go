// Command pause is the sandbox ("infra") container of the test bed's real node:
// it holds the Pod's namespaces, reaps orphaned children and exits 0 on SIGINT or
// SIGTERM, as Kubernetes' own pause does. Built static, it is the whole image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child: as PID 1 of the Pod, orphans are ours.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
