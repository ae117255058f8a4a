package catalog

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
)

const (
	docPath     = "../docs/catalog.md"
	beginMarker = "<!-- BEGIN GENERATED: go test ./catalog -run TestCatalogDoc -update -->\n"
	endMarker   = "<!-- END GENERATED -->\n"
)

// genEventTables renders the built-in events, one table per layer, in
// builtin.yaml order.
func genEventTables(t *testing.T) string {
	b, err := builtin()
	if err != nil {
		t.Fatal(err)
	}
	c := MustNew(DefaultConfig())
	var sb strings.Builder
	for _, l := range b.layers {
		var names []string
		for i, ev := range b.events {
			if b.layerOf[i] == l.ID {
				names = append(names, ev.Name)
			}
		}
		sb.WriteString("### " + l.Title + "\n\n")
		if l.Description != "" {
			sb.WriteString(l.Description + "\n\n")
		}
		sb.WriteString("| # | event | measurements (type, unit) | documented metadata | description |\n")
		sb.WriteString("|---|---|---|---|---|\n")
		for i, name := range names {
			d, _ := c.Lookup(name)
			var ms []string
			for _, m := range d.Measurements {
				s := "`" + m.Key + "` " + m.Type.String()
				if m.Unit != "" {
					s += " " + m.Unit
				}
				ms = append(ms, s)
			}
			var md []string
			for _, k := range d.Metadata {
				md = append(md, "`"+k+"`")
			}
			cell := func(xs []string) string {
				if len(xs) == 0 {
					return "—"
				}
				return strings.Join(xs, ", ")
			}
			sb.WriteString("| " + strconv.Itoa(i+1) + " | `" + name + "` | " + cell(ms) + " | " + cell(md) + " | " +
				strings.ReplaceAll(d.Description, "|", "\\|") + " |\n")
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// TestCatalogDoc fails when docs/catalog.md's generated section differs
// from the embedded catalog; -update rewrites it. It also checks that every
// reject reason and fix label is documented there.
func TestCatalogDoc(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(doc, []byte(beginMarker))
	j := bytes.Index(doc, []byte(endMarker))
	if i < 0 || j < i {
		t.Fatalf("%s: generated-section markers missing", docPath)
	}
	gen := genEventTables(t)
	cur := string(doc[i+len(beginMarker) : j])
	if *update {
		if cur != gen {
			out := string(doc[:i+len(beginMarker)]) + gen + string(doc[j:])
			if err := os.WriteFile(docPath, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	} else if cur != gen {
		t.Errorf("%s is stale: run `go test ./catalog -run TestCatalogDoc -update` and commit it", docPath)
	}
	text := string(doc)
	for _, r := range Reasons() {
		if !strings.Contains(text, "`"+r.String()+"`") {
			t.Errorf("%s does not document reason `%s`", docPath, r)
		}
	}
	for _, f := range AllFixes() {
		if !strings.Contains(text, "`"+f.String()+"`") {
			t.Errorf("%s does not document fix `%s`", docPath, f)
		}
	}
}
