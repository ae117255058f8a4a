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

// notifyHangup delivers SIGHUP on the returned channel until stop is
// called. While it does, SIGHUP reloads the config instead of ending the
// process.
func notifyHangup() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}
