//go:build !wasip1

package snk

// LogHook receives Log calls when the SDK runs outside Wasm (tests).
var LogHook func(level int32, msg string)

// Log sends msg to snakepipe's logger; outside Wasm it goes to LogHook.
func Log(level int32, msg string) {
	if LogHook != nil {
		LogHook(level, msg)
	}
}
