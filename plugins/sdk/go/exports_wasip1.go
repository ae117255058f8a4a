//go:build wasip1

package snk

import "unsafe"

//go:wasmexport snk_abi_version
func snkABIVersion() int32 { return ABIVersion }

//go:wasmexport snk_in_buf
func snkInBuf(min uint32) uint32 { return InBuf(min) }

//go:wasmexport snk_init
func snkInit(cfgLen uint32) int32 { return Init(cfgLen) }

//go:wasmexport snk_fields
func snkFields() int32 { return int32(DeclaredFields()) }

//go:wasmexport snk_close
func snkClose() { Close() }

//go:wasmimport snakepipe_v1 log
func hostLog(level int32, ptr unsafe.Pointer, n int32)

// Log sends msg to snakepipe's logger (rate-limited by the host).
func Log(level int32, msg string) {
	if len(msg) == 0 {
		return
	}
	hostLog(level, unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
}
