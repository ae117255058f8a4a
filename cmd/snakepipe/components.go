package main

import (
	"io"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/pipeline/stages/filterstage"
	"github.com/snakepipe/snakepipe/pipeline/stages/metadatastage"
	"github.com/snakepipe/snakepipe/pipeline/stages/ratelimitstage"
	"github.com/snakepipe/snakepipe/pipeline/stages/samplestage"
	"github.com/snakepipe/snakepipe/pipeline/stages/thresholdstage"
	"github.com/snakepipe/snakepipe/sinks/filesink"
	"github.com/snakepipe/snakepipe/sinks/statsdsink"
	"github.com/snakepipe/snakepipe/sinks/stderrsink"
)

// builtinFactories lists every stage and sink type snakepipe knows, by
// hand: no init-time registration. stderr is the SyncWriter the logger
// shares with the stderr sink.
func builtinFactories(stderr io.Writer) pipeline.Factories {
	f, err := pipeline.MakeFactories(
		[]pipeline.StageFactory{
			samplestage.NewFactory(),
			filterstage.NewFactory(),
			thresholdstage.NewFactory(),
			metadatastage.NewFactory(),
			ratelimitstage.NewFactory(),
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
