// Package control holds snakepipe's runtime control: the policy in force per
// selector (all workers, a pool, one worker), the admin API, the live tap and
// the export of self-metrics. It reaches worker streams only through the
// small Sender interface it declares, which ingest satisfies.
package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/snakepipe/snakepipe/pipeline"
)

// SelectorKind says what a Selector targets.
type SelectorKind uint8

const (
	SelectAll SelectorKind = iota
	SelectPool
	SelectWorker
)

func (k SelectorKind) String() string {
	switch k {
	case SelectPool:
		return "pool"
	case SelectWorker:
		return "worker"
	default:
		return "all"
	}
}

// Selector targets all workers, one pool, or one worker id. Policy is
// layered: all < pool < worker, the most specific layer wins field by field.
type Selector struct {
	Kind  SelectorKind
	Value string
}

// All selects every worker.
var All = Selector{Kind: SelectAll}

// Pool selects the workers of one pool.
func Pool(name string) Selector { return Selector{Kind: SelectPool, Value: name} }

// Worker selects one worker id.
func Worker(id string) Selector { return Selector{Kind: SelectWorker, Value: id} }

// ErrBadSelector is returned by ParseSelector and Validate.
var ErrBadSelector = errors.New("bad selector")

// ParseSelector parses "all", "pool=NAME" or "worker=ID".
func ParseSelector(s string) (Selector, error) {
	if s == "all" || s == "" {
		return All, nil
	}
	kind, value, ok := strings.Cut(s, "=")
	var sel Selector
	switch {
	case ok && kind == "pool":
		sel = Pool(value)
	case ok && kind == "worker":
		sel = Worker(value)
	default:
		return Selector{}, fmt.Errorf("%w %q: want all, pool=NAME or worker=ID", ErrBadSelector, s)
	}
	return sel, sel.Validate()
}

// Validate checks the selector's value.
func (s Selector) Validate() error {
	if s.Kind != SelectAll && (s.Value == "" || len(s.Value) > 128) {
		return fmt.Errorf("%w: %s name must be 1 to 128 bytes", ErrBadSelector, s.Kind)
	}
	return nil
}

// String returns the ParseSelector form.
func (s Selector) String() string {
	if s.Kind == SelectAll {
		return "all"
	}
	return s.Kind.String() + "=" + s.Value
}

// Matches reports whether a worker with origin o is selected. An empty pool
// in the Hello counts as pool "default".
func (s Selector) Matches(o *pipeline.Origin) bool {
	switch s.Kind {
	case SelectPool:
		return o != nil && poolOf(o) == s.Value
	case SelectWorker:
		return o != nil && o.WorkerID == s.Value
	default:
		return true
	}
}

func poolOf(o *pipeline.Origin) string {
	if o.Pool == "" {
		return "default"
	}
	return o.Pool
}

// Patch changes some fields of a policy; nil fields are inherited.
type Patch struct {
	Enabled           *bool                    `json:"enabled,omitempty"`
	DefaultSampleRate *float64                 `json:"default_sample_rate,omitempty"`
	SamplingRules     *[]pipeline.SamplingRule `json:"sampling_rules,omitempty"`
	Allow             *[]string                `json:"allow,omitempty"`
	Deny              *[]string                `json:"deny,omitempty"`
}

// IsEmpty reports whether the patch changes nothing.
func (p Patch) IsEmpty() bool {
	return p.Enabled == nil && p.DefaultSampleRate == nil && p.SamplingRules == nil && p.Allow == nil && p.Deny == nil
}

// Merge returns p with q's set fields laid over it.
func (p Patch) Merge(q Patch) Patch {
	if q.Enabled != nil {
		p.Enabled = q.Enabled
	}
	if q.DefaultSampleRate != nil {
		p.DefaultSampleRate = q.DefaultSampleRate
	}
	if q.SamplingRules != nil {
		p.SamplingRules = q.SamplingRules
	}
	if q.Allow != nil {
		p.Allow = q.Allow
	}
	if q.Deny != nil {
		p.Deny = q.Deny
	}
	return p
}

// ApplyTo lays the patch over pol.
func (p Patch) ApplyTo(pol pipeline.Policy) pipeline.Policy {
	if p.Enabled != nil {
		pol.Enabled = *p.Enabled
	}
	if p.DefaultSampleRate != nil {
		pol.DefaultSampleRate = *p.DefaultSampleRate
	}
	if p.SamplingRules != nil {
		pol.SamplingRules = append([]pipeline.SamplingRule(nil), (*p.SamplingRules)...)
	}
	if p.Allow != nil {
		pol.Allow = append([]string(nil), (*p.Allow)...)
	}
	if p.Deny != nil {
		pol.Deny = append([]string(nil), (*p.Deny)...)
	}
	return pol
}

// Validate checks the patch on its own: rates in [0, 1], globs compile.
func (p Patch) Validate() error {
	// Validating the patch laid over a neutral policy checks exactly the
	// fields it sets, with the same messages as a whole policy.
	return p.ApplyTo(pipeline.DefaultPolicy()).Validate()
}

// Sender pushes policy to live worker streams. ingest.Server satisfies it.
// PushPolicy must not block: it queues the policy for every stream whose
// origin matches and returns how many streams it reached.
type Sender interface {
	PushPolicy(match func(*pipeline.Origin) bool, policyFor func(*pipeline.Origin) pipeline.Policy) int
}

// Store holds the policy per selector. It is the PolicySource ingest asks
// for every Welcome, and it pushes every change to matching streams.
// Safe for concurrent use.
type Store struct {
	mu      sync.RWMutex
	base    pipeline.Policy // from the config file
	all     Patch
	pools   map[string]Patch
	workers map[string]Patch
	version uint64
	sender  Sender
	state   string // state file path, "" = no persistence

	changed func(sel Selector) // metrics hook
}

// StoreOptions configures a Store.
type StoreOptions struct {
	// StateFile, when set, persists runtime changes (written atomically on
	// every change, loaded by NewStore) so they survive a restart.
	StateFile string
	// OnChange is called after every accepted change (for metrics and logs).
	OnChange func(sel Selector)
}

// NewStore starts from the configured policy base; base must be valid.
func NewStore(base pipeline.Policy, opts StoreOptions) (*Store, error) {
	if err := base.Validate(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	s := &Store{base: base, pools: map[string]Patch{}, workers: map[string]Patch{}, version: 1, state: opts.StateFile, changed: opts.OnChange}
	if s.state != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// SetSender connects the store to the streams (after ingest is built).
func (s *Store) SetSender(snd Sender) {
	s.mu.Lock()
	s.sender = snd
	s.mu.Unlock()
}

// PolicyFor returns the effective policy for a worker: base, then the all
// layer, then its pool's, then its own.
func (s *Store) PolicyFor(o *pipeline.Origin) pipeline.Policy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.policyForLocked(o)
}

func (s *Store) policyForLocked(o *pipeline.Origin) pipeline.Policy {
	p := s.all
	if o != nil {
		if pp, ok := s.pools[poolOf(o)]; ok {
			p = p.Merge(pp)
		}
		if wp, ok := s.workers[o.WorkerID]; ok {
			p = p.Merge(wp)
		}
	}
	pol := p.ApplyTo(s.base)
	pol.Version = s.version
	return pol
}

// Version increases with every change.
func (s *Store) Version() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// Effective returns the policy a worker matching sel would get (for a pool
// selector: a worker of that pool with no worker-level patch).
func (s *Store) Effective(sel Selector) pipeline.Policy {
	o := &pipeline.Origin{}
	switch sel.Kind {
	case SelectPool:
		o.Pool = sel.Value
		o.WorkerID = "\x00" // no worker layer
	case SelectWorker:
		o.WorkerID = sel.Value
		o.Pool = "\x00"
	default:
		o.WorkerID, o.Pool = "\x00", "\x00"
	}
	return s.PolicyFor(o)
}

// Get returns the patch held at sel and the effective policy there.
func (s *Store) Get(sel Selector) (Patch, pipeline.Policy) {
	s.mu.RLock()
	var p Patch
	switch sel.Kind {
	case SelectPool:
		p = s.pools[sel.Value]
	case SelectWorker:
		p = s.workers[sel.Value]
	default:
		p = s.all
	}
	s.mu.RUnlock()
	return p, s.Effective(sel)
}

// Set lays patch over what sel holds. The resulting policy is validated for
// every layer it affects before anything changes; an invalid patch changes
// nothing. It returns the number of streams notified.
func (s *Store) Set(sel Selector, patch Patch) (int, error) {
	if err := sel.Validate(); err != nil {
		return 0, err
	}
	if err := patch.Validate(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	switch sel.Kind {
	case SelectPool:
		s.pools[sel.Value] = s.pools[sel.Value].Merge(patch)
	case SelectWorker:
		s.workers[sel.Value] = s.workers[sel.Value].Merge(patch)
	default:
		s.all = s.all.Merge(patch)
	}
	return s.commitLocked(sel)
}

// Reset removes the runtime patch at sel.
func (s *Store) Reset(sel Selector) (int, error) {
	if err := sel.Validate(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	switch sel.Kind {
	case SelectPool:
		delete(s.pools, sel.Value)
	case SelectWorker:
		delete(s.workers, sel.Value)
	default:
		s.all = Patch{}
	}
	return s.commitLocked(sel)
}

// ResetAll removes every runtime patch.
func (s *Store) ResetAll() (int, error) {
	s.mu.Lock()
	s.all, s.pools, s.workers = Patch{}, map[string]Patch{}, map[string]Patch{}
	return s.commitLocked(All)
}

// SetBase replaces the configured policy (config reload). Runtime patches
// survive; every stream is told the new effective policy.
func (s *Store) SetBase(base pipeline.Policy) (int, error) {
	if err := base.Validate(); err != nil {
		return 0, fmt.Errorf("policy: %w", err)
	}
	s.mu.Lock()
	s.base = base
	return s.commitLocked(All)
}

// commitLocked bumps the version, persists, unlocks, then notifies streams
// matching sel (unlocking first so PolicyFor callbacks can take the lock).
func (s *Store) commitLocked(sel Selector) (int, error) {
	s.version++
	err := s.saveLocked()
	snd := s.sender
	s.mu.Unlock()
	if s.changed != nil {
		s.changed(sel)
	}
	n := 0
	if snd != nil {
		n = snd.PushPolicy(sel.Matches, s.PolicyFor)
	}
	return n, err
}

// Selectors lists every selector holding a patch, sorted.
func (s *Store) Selectors() []Selector {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Selector
	if !s.all.IsEmpty() {
		out = append(out, All)
	}
	for k := range s.pools {
		out = append(out, Pool(k))
	}
	for k := range s.workers {
		out = append(out, Worker(k))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Value < out[j].Value
	})
	return out
}

type stateFile struct {
	All     Patch            `json:"all"`
	Pools   map[string]Patch `json:"pools"`
	Workers map[string]Patch `json:"workers"`
}

// ErrBadStateFile is returned when the state file cannot be used.
var ErrBadStateFile = errors.New("bad policy state file")

func (s *Store) load() error {
	data, err := os.ReadFile(s.state)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadStateFile, err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%w %s: %w", ErrBadStateFile, s.state, err)
	}
	var errs []error
	check := func(name string, p Patch) {
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	check("all", st.All)
	for k, p := range st.Pools {
		check("pools."+k, p)
	}
	for k, p := range st.Workers {
		check("workers."+k, p)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w %s: %w", ErrBadStateFile, s.state, err)
	}
	s.all = st.All
	if st.Pools != nil {
		s.pools = st.Pools
	}
	if st.Workers != nil {
		s.workers = st.Workers
	}
	return nil
}

func (s *Store) saveLocked() error {
	if s.state == "" {
		return nil
	}
	data, err := json.MarshalIndent(stateFile{All: s.all, Pools: s.pools, Workers: s.workers}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.state), ".policy-*")
	if err != nil {
		return fmt.Errorf("policy state: %w", err)
	}
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	// Close even after a failed write: the descriptor must not leak.
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), s.state)
	}
	if err != nil {
		// The temporary file is only garbage now; the old state file stands.
		return errors.Join(fmt.Errorf("policy state: %w", err), removeIfExists(tmp.Name()))
	}
	return nil
}

// removeIfExists removes path; a file that is already gone is not an error.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
