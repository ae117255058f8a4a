package pipeline

import "context"

// Consumer accepts batches into the pipeline. Consume may block until there
// is room (backpressure) or ctx is done; it returns ErrQueueFull when the
// input is configured to drop rather than block and the batch was dropped
// (the drop is already counted). After Consume returns nil, the batch belongs
// to the pipeline: the caller must not touch it again.
type Consumer interface {
	Consume(ctx context.Context, b *Batch) error
}

// ConsumerFunc adapts a function to a Consumer.
type ConsumerFunc func(ctx context.Context, b *Batch) error

// Consume calls f.
func (f ConsumerFunc) Consume(ctx context.Context, b *Batch) error { return f(ctx, b) }
