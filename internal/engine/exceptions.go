package engine

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/meshguard/meshguard/internal/manifest"
)

// ExceptionPrefix starts the annotation that excepts an object from one rule:
// exceptions.meshguard.io/MG301: "reason=migration of legacy clients; expires=2026-12-31".
const ExceptionPrefix = "exceptions.meshguard.io/"

// Exception is one parsed exception annotation.
type Exception struct {
	Rule    string
	Reason  string
	Expires time.Time // zero when open-ended
	Path    string    // the annotation's field path
	Problem string    // why the annotation is malformed, if it is
}

// ParseException reads one annotation value.
func ParseException(rule, value string) Exception {
	e := Exception{Rule: rule, Path: manifest.JoinField("metadata.annotations", ExceptionPrefix+rule)}
	for _, part := range strings.Split(value, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			e.Problem = fmt.Sprintf("%q is not key=value", part)
			return e
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "reason":
			e.Reason = v
		case "expires":
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				e.Problem = fmt.Sprintf("expires %q is not a date (YYYY-MM-DD)", v)
				return e
			}
			e.Expires = t
		default:
			e.Problem = fmt.Sprintf("unknown key %q (want reason and expires)", k)
			return e
		}
	}
	if e.Reason == "" {
		e.Problem = "reason is required: " + `"reason=<why>; expires=YYYY-MM-DD"`
	}
	return e
}

// Expired tells whether the exception no longer holds on day now; it holds through its expiry date.
func (e Exception) Expired(now time.Time) bool {
	if e.Expires.IsZero() {
		return false
	}
	y, m, d := now.Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return today.After(e.Expires)
}

// exceptionsOf parses the object's exception annotations in a stable order.
func exceptionsOf(o *manifest.Object) []Exception {
	var out []Exception
	for k, v := range o.Annotations {
		if rule, ok := strings.CutPrefix(k, ExceptionPrefix); ok {
			out = append(out, ParseException(rule, v))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rule < out[j].Rule })
	return out
}
