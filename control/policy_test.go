package control

import (
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

func ptr[T any](v T) *T { return &v }

// fakeSender records pushes against a fixed set of origins (a unit-test
// double; the integration tests use the real ingest server).
type fakeSender struct {
	mu      sync.Mutex
	origins []*pipeline.Origin
	got     map[string]pipeline.Policy
}

func (f *fakeSender) PushPolicy(match func(*pipeline.Origin) bool, policyFor func(*pipeline.Origin) pipeline.Policy) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, o := range f.origins {
		if match(o) {
			f.got[o.WorkerID] = policyFor(o)
			n++
		}
	}
	return n
}

func TestStoreLayering(t *testing.T) {
	base := pipeline.Policy{Enabled: true, DefaultSampleRate: 1, Deny: []string{"noise.*"}}
	s, err := NewStore(base, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snd := &fakeSender{got: map[string]pipeline.Policy{}, origins: []*pipeline.Origin{
		{WorkerID: "a1", Pool: "a"}, {WorkerID: "a2", Pool: "a"}, {WorkerID: "b1", Pool: "b"}, {WorkerID: "d1"},
	}}
	s.SetSender(snd)

	n, err := s.Set(All, Patch{SamplingRules: &[]pipeline.SamplingRule{{Pattern: "python.gc.*", Rate: 0.01}}})
	if err != nil || n != 4 {
		t.Fatalf("Set(all) = %d, %v; want 4 workers", n, err)
	}
	if n, _ := s.Set(Pool("a"), Patch{Enabled: ptr(false)}); n != 2 {
		t.Fatalf("Set(pool=a) notified %d, want 2", n)
	}
	if n, _ := s.Set(Worker("a2"), Patch{Enabled: ptr(true), DefaultSampleRate: ptr(0.5)}); n != 1 {
		t.Fatalf("Set(worker=a2) notified %d, want 1", n)
	}
	if n, _ := s.Set(Pool("default"), Patch{Allow: &[]string{"python.*"}}); n != 1 {
		t.Fatalf("Set(pool=default) notified %d, want 1 (the worker with no pool)", n)
	}

	tests := []struct {
		origin  pipeline.Origin
		enabled bool
		rate    float64
		allow   []string
	}{
		{pipeline.Origin{WorkerID: "a1", Pool: "a"}, false, 1, nil},
		{pipeline.Origin{WorkerID: "a2", Pool: "a"}, true, 0.5, nil},
		{pipeline.Origin{WorkerID: "b1", Pool: "b"}, true, 1, nil},
		{pipeline.Origin{WorkerID: "d1"}, true, 1, []string{"python.*"}},
	}
	for _, tt := range tests {
		t.Run(tt.origin.WorkerID, func(t *testing.T) {
			p := s.PolicyFor(&tt.origin)
			if p.Enabled != tt.enabled || p.DefaultSampleRate != tt.rate || !reflect.DeepEqual(p.Allow, tt.allow) {
				t.Fatalf("PolicyFor = %+v", p)
			}
			if len(p.SamplingRules) != 1 || p.SamplingRules[0].Rate != 0.01 {
				t.Fatalf("all-layer sampling rule not inherited: %+v", p.SamplingRules)
			}
			if !reflect.DeepEqual(p.Deny, []string{"noise.*"}) {
				t.Fatalf("base deny not inherited: %v", p.Deny)
			}
			if got := snd.got[tt.origin.WorkerID]; got.Version == 0 {
				t.Fatalf("worker never got a push")
			}
		})
	}
	if p := snd.got["a1"]; p.Enabled {
		t.Fatalf("a1 was last sent %+v, want disabled", p)
	}
}

func TestStoreRefusesInvalidAndKeepsState(t *testing.T) {
	s, _ := NewStore(pipeline.DefaultPolicy(), StoreOptions{})
	snd := &fakeSender{got: map[string]pipeline.Policy{}, origins: []*pipeline.Origin{{WorkerID: "w"}}}
	s.SetSender(snd)
	v := s.Version()
	for name, p := range map[string]Patch{
		"rate above 1": {DefaultSampleRate: ptr(1.5)},
		"negative":     {SamplingRules: &[]pipeline.SamplingRule{{Pattern: "a.*", Rate: -0.1}}},
		"bad glob":     {Deny: &[]string{"python.[abc"}},
	} {
		if _, err := s.Set(All, p); !errors.Is(err, pipeline.ErrBadPolicy) {
			t.Errorf("%s: Set error = %v, want ErrBadPolicy", name, err)
		}
	}
	if _, err := s.Set(Pool(""), Patch{Enabled: ptr(false)}); !errors.Is(err, ErrBadSelector) {
		t.Errorf("empty pool selector accepted: %v", err)
	}
	if s.Version() != v || len(snd.got) != 0 {
		t.Fatalf("refused changes must change nothing: version %d -> %d, pushes %d", v, s.Version(), len(snd.got))
	}
}

func TestStoreResetAndSetBase(t *testing.T) {
	s, _ := NewStore(pipeline.DefaultPolicy(), StoreOptions{})
	_, _ = s.Set(Pool("a"), Patch{Enabled: ptr(false)})
	o := &pipeline.Origin{WorkerID: "w", Pool: "a"}
	if s.PolicyFor(o).Enabled {
		t.Fatal("pool patch not applied")
	}
	// A config reload changes the base; the runtime patch survives.
	_, _ = s.SetBase(pipeline.Policy{Enabled: true, DefaultSampleRate: 0.5})
	if p := s.PolicyFor(o); p.Enabled || p.DefaultSampleRate != 0.5 {
		t.Fatalf("after SetBase: %+v", p)
	}
	_, _ = s.Reset(Pool("a"))
	if !s.PolicyFor(o).Enabled {
		t.Fatal("Reset did not remove the pool patch")
	}
	if _, err := s.SetBase(pipeline.Policy{DefaultSampleRate: 2}); err == nil {
		t.Fatal("invalid base accepted")
	}
}

func TestStorePersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	s, err := NewStore(pipeline.DefaultPolicy(), StoreOptions{StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Set(Worker("w1"), Patch{DefaultSampleRate: ptr(0.25)})
	_, _ = s.Set(Pool("p"), Patch{Deny: &[]string{"x.*"}})
	again, err := NewStore(pipeline.DefaultPolicy(), StoreOptions{StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if p := again.PolicyFor(&pipeline.Origin{WorkerID: "w1", Pool: "p"}); p.DefaultSampleRate != 0.25 || !reflect.DeepEqual(p.Deny, []string{"x.*"}) {
		t.Fatalf("restored policy %+v", p)
	}
	if got := again.Selectors(); len(got) != 2 || got[0] != Pool("p") || got[1] != Worker("w1") {
		t.Fatalf("Selectors = %v", got)
	}
}

func TestParseSelector(t *testing.T) {
	for in, want := range map[string]Selector{"all": All, "pool=gpu": Pool("gpu"), "worker=w-1": Worker("w-1")} {
		got, err := ParseSelector(in)
		if err != nil || got != want {
			t.Errorf("ParseSelector(%q) = %v, %v", in, got, err)
		}
		if got.String() != in {
			t.Errorf("String() = %q, want %q", got.String(), in)
		}
	}
	for _, in := range []string{"pool", "pool=", "host=x", "worker"} {
		if _, err := ParseSelector(in); !errors.Is(err, ErrBadSelector) {
			t.Errorf("ParseSelector(%q) = %v, want ErrBadSelector", in, err)
		}
	}
}
