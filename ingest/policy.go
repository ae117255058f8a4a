package ingest

import (
	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
	bridge "github.com/snakepipe/snakepipe/proto/snakepit/bridge"
)

// PolicySource says which policy applies to a worker. The server asks it
// for the Welcome of every new stream, after the stream is registered, so a
// change published through PushPolicy after that point is never missed.
// PolicyFor is called concurrently and must not block.
type PolicySource interface {
	PolicyFor(o *pipeline.Origin) pipeline.Policy
}

// PolicySourceFunc adapts a function to a PolicySource.
type PolicySourceFunc func(o *pipeline.Origin) pipeline.Policy

// PolicyFor calls f.
func (f PolicySourceFunc) PolicyFor(o *pipeline.Origin) pipeline.Policy { return f(o) }

// StaticPolicy is a PolicySource that gives every worker the same policy
// (the `policy` section of the config file).
type StaticPolicy pipeline.Policy

// PolicyFor returns p.
func (p StaticPolicy) PolicyFor(*pipeline.Origin) pipeline.Policy { return pipeline.Policy(p) }

// policyToProto and policyFromProto are the one place pipeline.Policy and
// the wire Policy are converted.
func policyToProto(p pipeline.Policy) *pb.Policy {
	out := &pb.Policy{
		Enabled:           p.Enabled,
		DefaultSampleRate: p.DefaultSampleRate,
		Allow:             append([]string(nil), p.Allow...),
		Deny:              append([]string(nil), p.Deny...),
		Version:           p.Version,
	}
	for _, r := range p.SamplingRules {
		out.SamplingRules = append(out.SamplingRules, &pb.SamplingRule{Pattern: r.Pattern, Rate: r.Rate})
	}
	return out
}

func policyFromProto(p *pb.Policy) pipeline.Policy {
	out := pipeline.Policy{
		Enabled:           p.GetEnabled(),
		DefaultSampleRate: p.GetDefaultSampleRate(),
		Allow:             append([]string(nil), p.GetAllow()...),
		Deny:              append([]string(nil), p.GetDeny()...),
		Version:           p.GetVersion(),
	}
	for _, r := range p.GetSamplingRules() {
		out.SamplingRules = append(out.SamplingRules, pipeline.SamplingRule{Pattern: r.GetPattern(), Rate: r.GetRate()})
	}
	return out
}

// policyToSnakepit expresses a policy as Snakepit TelemetryControl frames:
// toggle, then the default sampling rate (without patterns: Snakepit workers
// ignore patterns and would apply a per-pattern rate to every event), then
// the filter. Per-pattern sampling rules cannot be expressed to a Snakepit
// worker; a host sample stage can apply them instead.
func policyToSnakepit(p pipeline.Policy) []*bridge.TelemetryControl {
	return []*bridge.TelemetryControl{
		{Control: &bridge.TelemetryControl_Toggle{Toggle: &bridge.TelemetryToggle{Enabled: p.Enabled}}},
		{Control: &bridge.TelemetryControl_Sampling{Sampling: &bridge.TelemetrySamplingUpdate{SamplingRate: p.DefaultSampleRate}}},
		{Control: &bridge.TelemetryControl_Filter{Filter: &bridge.TelemetryEventFilter{
			Allow: append([]string(nil), p.Allow...),
			Deny:  append([]string(nil), p.Deny...),
		}}},
	}
}
