package snk

import (
	"encoding/binary"
	"testing"
)

// TestDeclareFields: snk_fields answers 7 (every group) until the plugin
// declares, then exactly what it declared; the values are the contract's
// bits (docs/plugin-abi.md).
func TestDeclareFields(t *testing.T) {
	t.Cleanup(func() { fields = AllFields })
	if Measurements != 1 || Metadata != 2 || HostContext != 4 || AllFields != 7 {
		t.Fatalf("groups = %d %d %d %d, want 1 2 4 7", Measurements, Metadata, HostContext, AllFields)
	}
	if got := DeclaredFields(); got != AllFields {
		t.Fatalf("undeclared: snk_fields = %d, want %d", got, AllFields)
	}
	for _, g := range []FieldGroups{Measurements, Measurements | HostContext, Metadata, 0, AllFields} {
		DeclareFields(g)
		if got := DeclaredFields(); got != g {
			t.Errorf("DeclareFields(%d): snk_fields = %d", g, got)
		}
	}
}

// TestDeclareFieldsFromOnInit: a plugin may declare from its OnInit
// callback, by config; the host asks after snk_init, so it sees that.
func TestDeclareFieldsFromOnInit(t *testing.T) {
	t.Cleanup(func() { fields, onInit = AllFields, nil })
	OnInit(func(c Config) error {
		if v, _ := c.Get("match_on"); v == "pool" {
			DeclareFields(HostContext)
		} else {
			DeclareFields(Measurements)
		}
		return nil
	})
	for _, tc := range []struct {
		matchOn string
		want    FieldGroups
	}{{"pool", HostContext}, {"duration", Measurements}} {
		frame := binary.LittleEndian.AppendUint16(nil, 1)
		frame = append(frame, field(KindMetadata, "match_on", []byte(tc.matchOn))...)
		InBuf(uint32(len(frame)))
		copy(inBuf, frame)
		if r := Init(uint32(len(frame))); r != 0 {
			t.Fatalf("match_on=%s: snk_init = %d", tc.matchOn, r)
		}
		if got := DeclaredFields(); got != tc.want {
			t.Errorf("match_on=%s: snk_fields = %d, want %d", tc.matchOn, got, tc.want)
		}
	}
}
