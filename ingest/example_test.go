package ingest_test

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/snakepipe/snakepipe/catalog"
	"github.com/snakepipe/snakepipe/ingest"
	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// A worker connects, says Hello, gets its Welcome and sends one batch; the
// Consumer receives the event with the worker's host context.
func Example() {
	got := make(chan pipeline.Event, 1)
	consumer := pipeline.ConsumerFunc(func(_ context.Context, b *pipeline.Batch) error {
		for _, e := range b.Events {
			if !strings.HasPrefix(e.Name, "snakepipe.") { // skip host events
				got <- e
			}
		}
		return nil
	})
	cfg := ingest.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cat, err := catalog.New(catalog.DefaultConfig()) // the built-in events
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := ingest.New(pipeline.Settings{}, cfg, ingest.Deps{Consumer: consumer, Checker: cat})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = srv.Shutdown(context.Background()) }() // an example: nothing to report to

	cc, err := grpc.NewClient(srv.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := pb.NewIngestClient(cc).Stream(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = stream.Send(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.Hello{
		WorkerId: "pool-a/worker-1", Pool: "pool-a", ProtocolVersion: 1,
	}}})
	welcome, err := stream.Recv()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("welcome, protocol", welcome.GetWelcome().GetProtocolVersion())
	_ = stream.Send(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Batch{Batch: &pb.EventBatch{Events: []*pb.Event{{
		Name:         "python.call.stop",
		Measurements: []*pb.MeasurementEntry{{Key: "duration", Value: &pb.Value{Value: &pb.Value_IntValue{IntValue: 1200}}}},
	}}}}})
	e := <-got
	d, _ := e.Measurement("duration")
	fmt.Println(e.Name, d, e.Origin.WorkerID, e.Origin.Pool)
	_ = stream.CloseSend()
	// Output:
	// welcome, protocol 1
	// python.call.stop 1200 pool-a/worker-1 pool-a
}
