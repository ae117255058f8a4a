package plugins

import (
	"errors"

	"github.com/snakepipe/snakepipe/plugins/internal/wasmpatch"
)

// Export names the host adds to an untrusted module (docs/plugin-abi.md
// §8). A plugin must not export them itself; one that does still loads,
// but runs with wazero's slower deadline mechanism.
const (
	// InterruptGlobal is the exported mutable i32 global the loops of an
	// instrumented module check at every yield: the deadline timer sets it
	// to 1 and the guest traps.
	InterruptGlobal = "snk__interrupt"
	// StartExport is the former start function of an instrumented
	// module: the start section is removed and the host calls this export
	// right after instantiation, with the init deadline armed.
	StartExport = "snk__start"
)

// ErrUninstrumentable is wrapped by InstrumentForDeadline's errors: the
// module uses an instruction or a section layout the rewriter does not
// decode, or already exports a reserved name. The host then runs the
// original module with wazero's close-on-context-done mechanism.
var ErrUninstrumentable = wasmpatch.ErrUnsupported

// Instrumented is a module rewritten for the cheap deadline.
type Instrumented struct {
	// Binary is the rewritten module.
	Binary []byte
	// HasStart: the module had a start section; call the StartExport
	// function right after instantiation, before anything else.
	HasStart bool
	// Loops is the number of loops instrumented.
	Loops int
}

// InstrumentForDeadline rewrites bin as the host does for an untrusted
// plugin: it adds the InterruptGlobal export and, at the start of every
// loop body and every function entry, a fuel count that every 4096 iterations yields to Go and
// checks the global; and it turns a start section into the StartExport
// export. Run the result in a runtime without WithCloseOnContextDone; to
// stop the guest, set the global to 1 (api.MutableGlobal.Set, from another
// goroutine): the running call fails with an "unreachable" trap within
// 4096 iterations of its current loop. An error wraps ErrUninstrumentable.
func InstrumentForDeadline(bin []byte) (Instrumented, error) {
	res, err := wasmpatch.Instrument(bin, wasmpatch.Names{Interrupt: InterruptGlobal, Start: StartExport})
	if err != nil {
		return Instrumented{}, err
	}
	return Instrumented{Binary: res.Binary, HasStart: res.HasStart, Loops: res.Loops}, nil
}

// errInterrupted marks a guest call stopped through InterruptGlobal.
var errInterrupted = errors.New("stopped in a loop by the deadline")
