package ingest

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// rawFrame is a message the codec does not decode: Unmarshal copies the
// frame's bytes into buf (one allocation, owned by the frame's events from
// then on) and Marshal sends buf as is. The hot path decodes buf with
// protowire (decode.go); everything else uses generated code.
type rawFrame struct {
	buf []byte
}

// frameCodec passes *rawFrame through and delegates every other message to
// grpc's registered proto codec. It is installed on snakepipe's own server
// (grpc.ForceServerCodecV2) and on dial-mode calls (grpc.ForceCodecV2), never
// registered globally, so other services on the server (reflection) and any
// other gRPC code in the process are unaffected.
type frameCodec struct {
	proto encoding.CodecV2
}

func newFrameCodec() frameCodec {
	c := encoding.GetCodecV2(proto.Name)
	return frameCodec{proto: c}
}

// Marshal implements encoding.CodecV2.
func (c frameCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*rawFrame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f.buf)}, nil
	}
	return c.proto.Marshal(v)
}

// Unmarshal implements encoding.CodecV2. For a *rawFrame it copies data once
// into a fresh slice: gRPC recycles data's buffers after Unmarshal returns,
// while decoded strings alias the copy for as long as events live.
func (c frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*rawFrame); ok {
		f.buf = data.Materialize()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// Name implements encoding.CodecV2. It is "proto": on the wire the frames
// are ordinary protobuf messages.
func (frameCodec) Name() string { return proto.Name }
