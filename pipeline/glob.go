package pipeline

import (
	"errors"
	"fmt"
	"strings"
)

// Glob is a compiled event-name pattern with the semantics of Python's
// fnmatch.fnmatchcase (the worker library and Snakepit use the same): '*'
// matches any run of characters including '.', '?' one character, '[abc]' /
// '[a-z]' / '[!abc]' a class; everything else matches itself, case-sensitive.
// Matching works on bytes; event names are ASCII by catalog rule.
type Glob struct {
	pattern string
	// literal is set when the pattern has no metacharacters.
	literal bool
	// prefix is set for the common "a.b.*" shape (only a trailing '*').
	prefix   string
	isPrefix bool
}

// ErrBadGlob is returned by CompileGlob for malformed patterns.
var ErrBadGlob = errors.New("bad glob pattern")

// CompileGlob checks and compiles a pattern.
func CompileGlob(pattern string) (Glob, error) {
	if pattern == "" {
		return Glob{}, fmt.Errorf("%w: empty pattern", ErrBadGlob)
	}
	if len(pattern) > 256 {
		return Glob{}, fmt.Errorf("%w %q: longer than 256 bytes", ErrBadGlob, pattern[:32]+"...")
	}
	// Validate bracket expressions.
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '[' {
			end := classEnd(pattern, i)
			if end < 0 {
				return Glob{}, fmt.Errorf("%w %q: unterminated '[' at offset %d", ErrBadGlob, pattern, i)
			}
			i = end
		}
	}
	g := Glob{pattern: pattern}
	meta := strings.IndexAny(pattern, "*?[")
	switch {
	case meta < 0:
		g.literal = true
	case meta == len(pattern)-1 && pattern[meta] == '*':
		g.isPrefix = true
		g.prefix = pattern[:meta]
	}
	return g, nil
}

// MustGlob is CompileGlob for static patterns; it panics on error.
func MustGlob(pattern string) Glob {
	g, err := CompileGlob(pattern)
	if err != nil {
		panic(err)
	}
	return g
}

// String returns the source pattern.
func (g Glob) String() string { return g.pattern }

// Match reports whether name matches the pattern.
func (g Glob) Match(name string) bool {
	switch {
	case g.literal:
		return name == g.pattern
	case g.isPrefix:
		return strings.HasPrefix(name, g.prefix)
	}
	return globMatch(g.pattern, name)
}

// classEnd returns the index of the ']' closing the class opened at p[i],
// or -1. A ']' right after '[' or '[!' is a literal member, as in fnmatch.
func classEnd(p string, i int) int {
	j := i + 1
	if j < len(p) && p[j] == '!' {
		j++
	}
	if j < len(p) && p[j] == ']' {
		j++
	}
	for ; j < len(p); j++ {
		if p[j] == ']' {
			return j
		}
	}
	return -1
}

// matchClass matches c against the class p[i:end+1].
func matchClass(p string, i, end int, c byte) bool {
	j := i + 1
	negate := false
	if j < end && p[j] == '!' {
		negate = true
		j++
	}
	ok := false
	first := true
	for j < end {
		lo := p[j]
		if lo == ']' && !first {
			break
		}
		first = false
		if j+2 < end && p[j+1] == '-' {
			if lo <= c && c <= p[j+2] {
				ok = true
			}
			j += 3
			continue
		}
		if lo == c {
			ok = true
		}
		j++
	}
	return ok != negate
}

// globMatch is an iterative matcher with single-star backtracking, linear in
// practice and never exponential.
func globMatch(p, s string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				starP, starS = pi, si
				pi++
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				end := classEnd(p, pi)
				if end >= 0 {
					if matchClass(p, pi, end, s[si]) {
						pi = end + 1
						si++
						continue
					}
				} else if s[si] == '[' { // unreachable for compiled globs
					pi++
					si++
					continue
				}
			default:
				if c == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP >= 0 {
			starS++
			pi, si = starP+1, starS
			continue
		}
		return false
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// GlobSet is a list of globs; it matches when any member matches.
type GlobSet []Glob

// CompileGlobs compiles every pattern, reporting all errors at once.
func CompileGlobs(patterns []string) (GlobSet, error) {
	out := make(GlobSet, 0, len(patterns))
	var errs []error
	for i, p := range patterns {
		g, err := CompileGlob(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d]: %w", i, err))
			continue
		}
		out = append(out, g)
	}
	return out, errors.Join(errs...)
}

// Match reports whether any glob matches name.
func (s GlobSet) Match(name string) bool {
	for i := range s {
		if s[i].Match(name) {
			return true
		}
	}
	return false
}

// AllowDeny is the allow/deny filter shared by the worker protocol, the host
// filter stage and control policy: deny wins; an empty allow list allows all.
type AllowDeny struct {
	Allow GlobSet
	Deny  GlobSet
}

// Allowed reports whether name passes the filter.
func (f AllowDeny) Allowed(name string) bool {
	if f.Deny.Match(name) {
		return false
	}
	return len(f.Allow) == 0 || f.Allow.Match(name)
}
