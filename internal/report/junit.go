package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// JUnit writes one test suite per file and one failing test case per finding, which CI systems
// render as test failures. Files without findings are one passing case, so the count of checked
// files shows too.
type JUnit struct{}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
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

// Output writes the report.
func (*JUnit) Output(w io.Writer, r *Report) error {
	out := junitSuites{Name: "meshguard"}
	files, groups := byFile(r.Findings)
	for _, file := range files {
		name := file
		if name == "" {
			name = "(inventory)"
		}
		s := junitSuite{Name: name}
		for _, f := range groups[file] {
			loc := name
			if f.Line > 0 {
				loc += ":" + strconv.Itoa(f.Line)
			}
			var text strings.Builder
			fmt.Fprintf(&text, "%s\n%s %s\npath: %s\n", f.Message, f.Severity, loc, f.Path)
			if f.Hint != "" {
				fmt.Fprintf(&text, "fix: %s\n", f.Hint)
			}
			s.Cases = append(s.Cases, junitCase{
				Name:      fmt.Sprintf("%s %s %s", f.Rule, f.Object(), f.Path),
				Classname: name,
				Failure:   &junitFailure{Message: f.Message, Type: f.Severity.String(), Text: text.String()},
			})
			s.Failures++
		}
		s.Tests = len(s.Cases)
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Suites = append(out.Suites, s)
	}
	if len(out.Suites) == 0 {
		out.Suites = append(out.Suites, junitSuite{Name: "meshguard", Tests: 1, Cases: []junitCase{{Name: fmt.Sprintf("%d objects in %d files", r.Objects, r.Files), Classname: "meshguard"}}})
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
