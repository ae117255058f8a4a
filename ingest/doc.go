// Package ingest is the gRPC server snakepipe workers connect to.
//
// Each worker process opens one snakepipe.v1.Ingest/Stream. The server
// checks the worker's Hello, answers with a Welcome carrying the policy in
// force, then decodes event batches straight from the wire bytes into
// pipeline.Events (strings alias one copy of the frame; no per-event
// allocation), checks and sanitizes each event with the catalog, adds host
// context and hands the accepted events to a pipeline.Consumer. A Consumer
// that blocks stops the stream's reader, so gRPC flow control pushes back to
// the worker. Control frames (policy changes, reject notices, GoAway) travel
// down the same stream from a single sending goroutine.
//
// Dial mode attaches to Snakepit workers, which serve
// snakepit.bridge.BridgeService/StreamTelemetry themselves: snakepipe dials
// them, sends TelemetryControl frames and decodes TelemetryEvent frames with
// the same decoder.
//
// docs/protocol.md is the normative description of the protocol.
package ingest
