package catalog

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"go.yaml.in/yaml/v3"
)

//go:embed builtin.yaml
var builtinYAML []byte

// LayerUser is the Layer of events declared in the config file.
const LayerUser = "user"

// LayerHost is the Layer of snakepipe's own events (snakepipe.*): only the
// host emits them, so Check rejects them from workers (ReasonHostEvent).
const LayerHost = "snakepipe"

// Layer is one group of built-in events (docs/catalog.md has one table per
// layer).
type Layer struct {
	ID          string
	Title       string
	Description string
}

type builtinFile struct {
	Layers []builtinLayer `yaml:"layers"`
}

type builtinLayer struct {
	ID          string         `yaml:"id"`
	Title       string         `yaml:"title"`
	Description string         `yaml:"description"`
	Events      []builtinEvent `yaml:"events"`
}

type builtinEvent struct {
	Name         string                        `yaml:"name"`
	Description  string                        `yaml:"description"`
	Measurements map[string]builtinMeasurement `yaml:"measurements"`
	Metadata     []string                      `yaml:"metadata"`
}

type builtinMeasurement struct {
	Type string `yaml:"type"`
	Unit string `yaml:"unit"`
}

// builtinData is the parsed and validated embedded catalog.
type builtinData struct {
	layers      []Layer
	events      []EventConfig // in file order
	layerOf     []string      // layer id per event
	byName      map[string]int
	longestName int
}

// builtin parses the embedded catalog once. It fails only if builtin.yaml is
// broken, which TestBuiltin catches.
var builtin = sync.OnceValues(func() (*builtinData, error) {
	return parseBuiltin(builtinYAML)
})

func parseBuiltin(data []byte) (*builtinData, error) {
	var f builtinFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("catalog: builtin.yaml: %w", err)
	}
	b := &builtinData{byName: map[string]int{}}
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("catalog: builtin.yaml: %s: %s", path, fmt.Sprintf(format, args...)))
	}
	lim := Limits{
		MaxNameBytes:    HardMaxNameBytes,
		MaxKeyBytes:     DefaultMaxKeyBytes,
		MaxMeasurements: DefaultMaxMeasurements,
	}
	layerIDs := map[string]bool{LayerUser: true}
	for i, l := range f.Layers {
		lpath := "layers[" + strconv.Itoa(i) + "]"
		if l.ID == "" || !validIdent(l.ID) || layerIDs[l.ID] {
			add(lpath+".id", "%q must be a new [a-z0-9_]+ id", l.ID)
		}
		layerIDs[l.ID] = true
		b.layers = append(b.layers, Layer{ID: l.ID, Title: l.Title, Description: l.Description})
		for j, e := range l.Events {
			path := lpath + ".events[" + strconv.Itoa(j) + "]"
			ev := EventConfig{Name: e.Name, Description: e.Description, Metadata: e.Metadata}
			if len(e.Measurements) > 0 {
				ev.Measurements = make(map[string]MeasurementConfig, len(e.Measurements))
				for k, m := range e.Measurements {
					ev.Measurements[k] = MeasurementConfig(m)
				}
			}
			validateEvent(path, ev, lim, add)
			if _, dup := b.byName[e.Name]; dup {
				add(path+".name", "%q is defined twice", e.Name)
				continue
			}
			b.byName[e.Name] = len(b.events)
			b.events = append(b.events, ev)
			b.layerOf = append(b.layerOf, l.ID)
			b.longestName = max(b.longestName, len(e.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b, nil
}
