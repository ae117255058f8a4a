package main

import (
	"io"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/pipeline/stages/filterstage"
	"github.com/snakepipe/snakepipe/pipeline/stages/metadatastage"
	"github.com/snakepipe/snakepipe/pipeline/stages/ratelimitstage"
	"github.com/snakepipe/snakepipe/pipeline/stages/samplestage"
	"github.com/snakepipe/snakepipe/pipeline/stages/thresholdstage"
	"github.com/snakepipe/snakepipe/plugins"
	"github.com/snakepipe/snakepipe/sinks/filesink"
	"github.com/snakepipe/snakepipe/sinks/statsdsink"
	"github.com/snakepipe/snakepipe/sinks/stderrsink"
)

// builtinFactories lists every stage and sink type snakepipe knows, by
// hand: no init-time registration. stderr is the SyncWriter the logger
// shares with the stderr sink. host runs wasm stages; it may be nil when
// the factories only decode and validate configs (nothing is created).
func builtinFactories(stderr io.Writer, host *plugins.Host, wasm ...plugins.Option) pipeline.Factories {
	f, err := pipeline.MakeFactories(
		[]pipeline.StageFactory{
			samplestage.NewFactory(),
			filterstage.NewFactory(),
			thresholdstage.NewFactory(),
			metadatastage.NewFactory(),
			ratelimitstage.NewFactory(),
			plugins.NewFactory(host, wasm...),
		},
		[]pipeline.SinkFactory{
			stderrsink.NewFactoryWithWriter(stderr),
			filesink.NewFactory(),
			statsdsink.NewFactory(),
		},
	)
	if err != nil {
		panic(err) // a duplicate type in the list above: a programming error
	}
	return f
}
