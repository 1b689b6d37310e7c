package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/meshguard/meshguard/internal/engine"
)

// JUnit writes one test suite per file read, one failing test case per finding, and one passing
// case for a file without findings, so CI test views count the checked files too. Tests
// validate it against the Jenkins xunit plugin's JUnit schema, which requires errors on every
// suite.
type JUnit struct{}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// inventorySuite names the suite of findings that belong to no file.
const inventorySuite = "(inventory)"

// Output writes the report.
func (*JUnit) Output(w io.Writer, r *Report) error {
	// Errors stay 0: a file meshguard cannot read stops the run before any report (exit 2), and
	// what is wrong inside a file is an MG001 failure.
	out := junitSuites{Name: "meshguard", Time: fmt.Sprintf("%.3f", r.Duration.Seconds())}
	files, groups := byFile(r.Findings)
	seen := map[string]bool{}
	var order []string
	for _, f := range append(append([]string{}, r.Paths...), files...) {
		if !seen[f] {
			seen[f] = true
			order = append(order, f)
		}
	}
	for _, file := range order {
		name := file
		if name == "" {
			name = inventorySuite
		}
		s := junitSuite{Name: name}
		for _, f := range groups[file] {
			s.Cases = append(s.Cases, junitCase{
				Name:      fmt.Sprintf("%s %s %s", f.Rule, f.Object(), f.Path),
				Classname: name,
				Failure:   &junitFailure{Message: f.Message, Type: f.Severity.String(), Text: failureText(name, f)},
			})
			s.Failures++
		}
		if len(s.Cases) == 0 {
			s.Cases = []junitCase{{Name: "no findings", Classname: name}}
		}
		s.Tests = len(s.Cases)
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Suites = append(out.Suites, s)
	}
	if len(out.Suites) == 0 {
		// Nothing read from files (audit): one case still shows that the check ran.
		out.Suites = []junitSuite{{Name: "meshguard", Tests: 1, Cases: []junitCase{{Name: fmt.Sprintf("%d objects", r.Objects), Classname: "meshguard"}}}}
		out.Tests = 1
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func failureText(file string, f engine.Finding) string {
	loc := file
	if f.Line > 0 {
		loc += ":" + strconv.Itoa(f.Line)
	}
	var text strings.Builder
	fmt.Fprintf(&text, "%s\n%s %s\npath: %s\n", f.Message, f.Severity, loc, f.Path)
	if f.Hint != "" {
		fmt.Fprintf(&text, "fix: %s\n", f.Hint)
	}
	return text.String()
}
