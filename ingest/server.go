package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/snakepipe/snakepipe/pipeline"
	// The generated package registers snakepipe/v1/ingest.proto, which
	// reflection serves for the hand-written service below.
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// ProtocolVersion is the version of the snakepipe.v1 protocol this host
// speaks (docs/protocol.md).
const ProtocolVersion = 1

// Deps are the parts a Server hands events to and asks about them.
type Deps struct {
	// Consumer receives every accepted batch and the host's own
	// worker connected/disconnected events. It may block (backpressure).
	Consumer pipeline.Consumer
	// Checker validates and sanitizes events (*catalog.Catalog).
	Checker Checker
	// Policy gives the policy for a worker's Welcome; nil means
	// pipeline.DefaultPolicy for everyone.
	Policy PolicySource
}

// Server is the ingest gRPC server. Create it with New, then Start; stop it
// with Shutdown.
type Server struct {
	cfg    Config
	deps   Deps
	log    hclog.Logger
	m      *metrics
	hostID string
	gs     *grpc.Server
	reg    registry

	lis     net.Listener
	started atomic.Bool
	active  atomic.Int64 // live streams, for max_streams

	shutdownOnce sync.Once
	shutdownCh   chan struct{} // closed when Shutdown starts

	// consumeCtx is what batches are handed to the Consumer with. It
	// outlives streams (a received batch is delivered even if its stream
	// ends) and is cancelled only when Shutdown's deadline expires.
	consumeCtx    context.Context
	consumeCancel context.CancelFunc

	// dialCtx ends dial-mode connections.
	dialCtx    context.Context
	dialCancel context.CancelFunc

	wg sync.WaitGroup // Serve, receive goroutines, dialers

	countFix func(kind string, n int) // s.addFix, bound once
}

// New validates cfg and builds a Server. Nothing is bound until Start.
func New(set pipeline.Settings, cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Consumer == nil {
		return nil, errors.New("ingest: Deps.Consumer is required")
	}
	if deps.Checker == nil {
		return nil, errors.New("ingest: Deps.Checker is required")
	}
	if deps.Policy == nil {
		deps.Policy = StaticPolicy(pipeline.DefaultPolicy())
	}
	log := set.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	s := &Server{
		cfg:        cfg,
		deps:       deps,
		log:        log,
		m:          newMetrics(set.Metrics),
		hostID:     fmt.Sprintf("snakepipe@%s/%d", host, os.Getpid()),
		reg:        registry{conns: map[string]*conn{}},
		shutdownCh: make(chan struct{}),
	}
	s.countFix = s.addFix
	s.consumeCtx, s.consumeCancel = context.WithCancel(context.Background())
	s.dialCtx, s.dialCancel = context.WithCancel(context.Background())
	s.gs = grpc.NewServer(
		grpc.ForceServerCodecV2(newFrameCodec()),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		// Fixed windows bound what waits in gRPC for a stream whose
		// pipeline applies backpressure (ingest.stream_window_bytes).
		grpc.InitialWindowSize(int32(cfg.StreamWindowBytes)),
		grpc.InitialConnWindowSize(int32(cfg.StreamWindowBytes)),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.Keepalive.Time, Timeout: cfg.Keepalive.Timeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.Keepalive.MinClientInterval, PermitWithoutStream: true}),
		// Stop and GracefulStop return only after every handler has.
		grpc.WaitForHandlers(true),
	)
	s.gs.RegisterService(&ingestServiceDesc, s)
	if cfg.Reflection {
		reflection.Register(s.gs)
	}
	return s, nil
}

// ingestServiceDesc registers snakepipe.v1.Ingest/Stream with a handler
// that receives raw frames (see codec.go) instead of generated messages.
var ingestServiceDesc = grpc.ServiceDesc{
	ServiceName: "snakepipe.v1.Ingest",
	HandlerType: (*streamHandler)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		Handler:       func(srv any, ss grpc.ServerStream) error { return srv.(streamHandler).handleStream(ss) },
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "snakepipe/v1/ingest.proto",
}

type streamHandler interface {
	handleStream(ss grpc.ServerStream) error
}

// the generated descriptor must describe the same method we serve.
var _ = pb.Ingest_Stream_FullMethodName

// Start binds the listen address and serves in the background, then starts
// dial-mode connections.
func (s *Server) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("ingest: already started")
	}
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("ingest: listen %s: %w", s.cfg.Listen, listenCause(err))
	}
	s.lis = lis
	s.wg.Go(func() {
		if err := s.gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("ingest server stopped", "error", err)
		}
	})
	for _, t := range s.cfg.Dial {
		s.wg.Go(func() { s.dialLoop(t) })
	}
	s.log.Info("ingest listening", "addr", lis.Addr().String(), "dial_targets", len(s.cfg.Dial))
	return nil
}

// listenCause strips net's "listen tcp ADDR: bind:" prefixes, keeping the
// cause (errors.Is(err, syscall.EADDRINUSE) still works).
func listenCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		err = op.Err
	}
	var sys *os.SyscallError
	if errors.As(err, &sys) {
		err = sys.Err
	}
	return err
}

// Addr returns the bound address (nil before Start).
func (s *Server) Addr() net.Addr {
	if s.lis == nil {
		return nil
	}
	return s.lis.Addr()
}

// Shutdown stops accepting streams, sends GoAway{shutdown} on every stream,
// keeps receiving until each worker half-closes or drain_timeout passes,
// hands everything received to the Consumer, and ends the streams with
// Unavailable. If ctx ends first, remaining streams are cut, Consume calls
// are cancelled, and ctx's error is returned. Safe to call twice.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { close(s.shutdownCh) })
	s.dialCancel()
	stopped := make(chan struct{})
	go func() {
		s.gs.GracefulStop()
		close(stopped)
	}()
	var err error
	select {
	case <-stopped:
	case <-ctx.Done():
		err = ctx.Err()
		s.gs.Stop()
		s.consumeCancel()
		<-stopped
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.consumeCancel()
		<-done
	}
	s.consumeCancel()
	return err
}

// shuttingDown reports whether Shutdown has started.
func (s *Server) shuttingDown() bool {
	select {
	case <-s.shutdownCh:
		return true
	default:
		return false
	}
}
