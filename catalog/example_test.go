package catalog_test

import (
	"errors"
	"fmt"

	"github.com/snakepipe/snakepipe/catalog"
	"github.com/snakepipe/snakepipe/pipeline"
)

func Example() {
	cfg := catalog.DefaultConfig()
	cfg.Events = []catalog.EventConfig{{
		Name:         "inference.batch.done",
		Measurements: map[string]catalog.MeasurementConfig{"duration": {Type: "int", Unit: "ns"}},
	}}
	c, err := catalog.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Snakepit workers send the name as parts; resolve without allocating.
	name, _ := c.LookupParts([]string{"python", "call", "stop"})

	ev := pipeline.Event{
		Name:         name,
		Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(1200)}},
		Metadata: []pipeline.Label{
			{Key: "command", Value: "predict\n"},
			{Key: "worker_id", Value: "spoofed"}, // host context wins
		},
	}
	fixes, err := c.Check(&ev)
	fmt.Println(err, ev.Metadata, fixes)

	ev = pipeline.Event{Name: "inference.batch.done", Measurements: []pipeline.Measurement{
		{Key: "duration", Value: pipeline.FloatValue(1.5)},
	}}
	_, err = c.Check(&ev)
	var re *catalog.RejectError
	fmt.Println(errors.As(err, &re), re.Reason, errors.Is(err, catalog.ErrBadValue))

	ev = pipeline.Event{Name: "inference.batch.dnoe"}
	_, err = c.Check(&ev)
	fmt.Println(err)
	// Output:
	// <nil> [{command predict }] control_chars=1 reserved_key=1
	// true bad_value_type true
	// catalog: unknown_event: event "inference.batch.dnoe": unknown event
}
