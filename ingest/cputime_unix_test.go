//go:build unix

package ingest

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system, all threads: the GC's
// background workers included) the test process has used. Benchmarks
// report it per event next to wall time because the shared 2-core test
// machine makes wall time swing several-fold with other processes' load,
// while the CPU an event costs moves much less.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
