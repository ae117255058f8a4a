package pipeline

import (
	"errors"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"python.call.stop", "python.call.stop", true},
		{"python.call.stop", "python.call.start", false},
		{"python.*", "python.call.start", true},
		{"python.*", "PYTHON.call.start", false},
		{"python.*", "tool.execution.start", false},
		{"*", "", true},
		{"*", "anything.at.all", true},
		{"*.stop", "python.call.stop", true},
		{"*.stop", "python.call.stopped", false},
		{"python.*.stop", "python.call.stop", true},
		{"python.*.stop", "python.a.b.stop", true},
		{"python.?all.stop", "python.call.stop", true},
		{"python.[cx]all.stop", "python.call.stop", true},
		{"python.[!c]all.stop", "python.call.stop", false},
		{"python.[a-d]all.*", "python.ball.x", true},
		{"python.[]]x", "python.]x", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.name, func(t *testing.T) {
			g, err := CompileGlob(tt.pattern)
			if err != nil {
				t.Fatalf("CompileGlob(%q): %v", tt.pattern, err)
			}
			if got := g.Match(tt.name); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
			}
		})
	}
}

func TestCompileGlobErrors(t *testing.T) {
	for _, p := range []string{"", "python.[abc", "[!"} {
		if _, err := CompileGlob(p); !errors.Is(err, ErrBadGlob) {
			t.Errorf("CompileGlob(%q) error = %v, want ErrBadGlob", p, err)
		}
	}
}

func TestAllowDeny(t *testing.T) {
	f := AllowDeny{Allow: GlobSet{MustGlob("python.*")}, Deny: GlobSet{MustGlob("python.memory.*")}}
	for name, want := range map[string]bool{
		"python.call.start":     true,
		"python.memory.sampled": false,
		"tool.execution.start":  false,
		"PYTHON.call.start":     false,
	} {
		if got := f.Allowed(name); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", name, got, want)
		}
	}
	if !(AllowDeny{}).Allowed("x") {
		t.Error("empty filter must allow everything")
	}
}

func FuzzGlob(f *testing.F) {
	f.Add("python.*", "python.call.stop")
	f.Add("[a-z]*?", "q.x")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		g, err := CompileGlob(pattern)
		if err != nil {
			return
		}
		_ = g.Match(name)
		if g.literal && g.Match(name) != (pattern == name) {
			t.Fatalf("literal mismatch")
		}
	})
}
