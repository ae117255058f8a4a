package pipeline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func batchOf(n int, tag int64) *Batch {
	b := &Batch{Events: make([]Event, n)}
	for i := range b.Events {
		b.Events[i] = Event{Name: "t", TimestampNs: tag}
	}
	return b
}

func TestQueueFIFOAndClose(t *testing.T) {
	q := NewQueue(QueueConfig{MaxEvents: 100, MaxBytes: 1 << 20, FullPolicy: "block"}, nil)
	ctx := context.Background()
	for i := int64(0); i < 5; i++ {
		if err := q.Put(ctx, batchOf(2, i)); err != nil {
			t.Fatal(err)
		}
	}
	if b, ev, _ := q.Len(); b != 5 || ev != 10 {
		t.Fatalf("Len = %d batches %d events, want 5, 10", b, ev)
	}
	q.Close()
	if err := q.Put(ctx, batchOf(1, 9)); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("Put after Close = %v, want ErrQueueClosed", err)
	}
	for i := int64(0); i < 5; i++ {
		b, err := q.Get(ctx)
		if err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
		if b.Events[0].TimestampNs != i {
			t.Fatalf("Get %d returned batch %d: not FIFO", i, b.Events[0].TimestampNs)
		}
	}
	if _, err := q.Get(ctx); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("Get on drained closed queue = %v, want ErrQueueClosed", err)
	}
	if _, ev, by := q.Len(); ev != 0 || by != 0 {
		t.Fatalf("drained queue reports %d events %d bytes", ev, by)
	}
}

func TestQueueFullPolicies(t *testing.T) {
	ctx := context.Background()
	t.Run("drop_newest", func(t *testing.T) {
		var dropped []string
		q := NewQueue(QueueConfig{MaxEvents: 4, MaxBytes: 1 << 20, FullPolicy: "drop_newest"}, func(r string, n int) {
			dropped = append(dropped, r)
		})
		_ = q.Put(ctx, batchOf(3, 1))
		if err := q.Put(ctx, batchOf(2, 2)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Put = %v, want ErrQueueFull", err)
		}
		if len(dropped) != 1 || dropped[0] != DropReasonQueueFull {
			t.Fatalf("dropped = %v", dropped)
		}
		if b, _ := q.Get(ctx); b.Events[0].TimestampNs != 1 {
			t.Fatal("oldest batch must survive drop_newest")
		}
	})
	t.Run("drop_oldest", func(t *testing.T) {
		evicted := 0
		q := NewQueue(QueueConfig{MaxEvents: 4, MaxBytes: 1 << 20, FullPolicy: "drop_oldest"}, func(r string, n int) {
			if r != DropReasonEvictedOldest {
				t.Errorf("reason %q", r)
			}
			evicted += n
		})
		_ = q.Put(ctx, batchOf(2, 1))
		_ = q.Put(ctx, batchOf(2, 2))
		if err := q.Put(ctx, batchOf(2, 3)); err != nil {
			t.Fatal(err)
		}
		if evicted != 2 {
			t.Fatalf("evicted %d events, want 2", evicted)
		}
		if b, _ := q.Get(ctx); b.Events[0].TimestampNs != 2 {
			t.Fatalf("oldest remaining = %d, want 2", b.Events[0].TimestampNs)
		}
	})
	t.Run("bytes bound", func(t *testing.T) {
		q := NewQueue(QueueConfig{MaxEvents: 1000, MaxBytes: 500, FullPolicy: "drop_newest"}, nil)
		if err := q.Put(ctx, batchOf(2, 1)); err != nil { // ~320 bytes
			t.Fatal(err)
		}
		if err := q.Put(ctx, batchOf(2, 2)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("second batch over the byte bound: %v, want ErrQueueFull", err)
		}
	})
	t.Run("oversized batch into empty queue", func(t *testing.T) {
		q := NewQueue(QueueConfig{MaxEvents: 2, MaxBytes: 1 << 20, FullPolicy: "drop_newest"}, nil)
		if err := q.Put(ctx, batchOf(10, 1)); err != nil {
			t.Fatalf("oversized batch into empty queue: %v", err)
		}
	})
	t.Run("block until room or ctx", func(t *testing.T) {
		q := NewQueue(QueueConfig{MaxEvents: 2, MaxBytes: 1 << 20, FullPolicy: "block"}, nil)
		_ = q.Put(ctx, batchOf(2, 1))
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if err := q.Put(cctx, batchOf(1, 2)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("blocked Put = %v, want DeadlineExceeded", err)
		}
		done := make(chan error)
		go func() { done <- q.Put(ctx, batchOf(1, 3)) }()
		if _, err := q.Get(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Put after room: %v", err)
		}
	})
}

// TestQueueHammer releases many producers and consumers together and checks
// every event comes out exactly once.
func TestQueueHammer(t *testing.T) {
	q := NewQueue(QueueConfig{MaxEvents: 64, MaxBytes: 1 << 20, FullPolicy: "block"}, nil)
	ctx := context.Background()
	const producers, perProducer = 8, 500
	start := make(chan struct{})
	var pw sync.WaitGroup
	for p := 0; p < producers; p++ {
		pw.Add(1)
		go func(p int) {
			defer pw.Done()
			<-start
			for i := 0; i < perProducer; i++ {
				if err := q.Put(ctx, batchOf(1, int64(p*perProducer+i))); err != nil {
					t.Error(err)
					return
				}
			}
		}(p)
	}
	seen := make([]int, producers*perProducer)
	var mu sync.Mutex
	var cw sync.WaitGroup
	for c := 0; c < 4; c++ {
		cw.Add(1)
		go func() {
			defer cw.Done()
			<-start
			for {
				b, err := q.Get(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				seen[b.Events[0].TimestampNs]++
				mu.Unlock()
			}
		}()
	}
	close(start)
	pw.Wait()
	q.Close()
	cw.Wait()
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("event %d seen %d times", i, n)
		}
	}
}

func TestQueueConfigValidate(t *testing.T) {
	if err := DefaultQueueConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	err := QueueConfig{MaxEvents: 0, MaxBytes: -1, FullPolicy: "sometimes"}.Validate()
	for _, want := range []string{"max_events", "max_bytes", "full_policy"} {
		if err == nil || !contains(err.Error(), want) {
			t.Errorf("Validate error %v does not name %s", err, want)
		}
	}
}

func contains(s, sub string) bool { return len(sub) == 0 || indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func BenchmarkQueuePutGet(b *testing.B) {
	q := NewQueue(DefaultQueueConfig(), nil)
	ctx := context.Background()
	batch := batchOf(64, 1)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = q.Put(ctx, batch)
		_, _ = q.Get(ctx)
	}
}
