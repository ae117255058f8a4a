package main

import (
	"os"
	"os/signal"
	"syscall"
)

// notifySignals delivers SIGINT and SIGTERM on the returned channel until
// stop is called.
func notifySignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch, func() { signal.Stop(ch) }
}
