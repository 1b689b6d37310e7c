// Package report writes findings in the formats CI systems read: text for people, JSON, SARIF
// 2.1.0, JUnit XML and GitHub workflow annotations. Every format takes the same Report and an
// io.Writer and never changes the report.
package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/meshguard/meshguard/internal/engine"
)

const (
	// InformationURI is the project's home, named by the formats that link to a tool.
	InformationURI = "https://github.com/meshguard/meshguard"
	// RulesDocURL is the generated rule reference; each built-in rule has an anchor there.
	RulesDocURL = InformationURI + "/blob/main/docs/rules.md"
)

// RuleDocsURL links to a built-in rule's section of docs/rules.md; custom rules have none.
func RuleDocsURL(r *engine.Rule) string {
	if r == nil || r.Source != "builtin" {
		return ""
	}
	return RulesDocURL + "#" + strings.ToLower(r.ID)
}

// Report is the result of one run.
type Report struct {
	Findings []engine.Finding
	// Rules describes every rule that may appear in Findings (SARIF and JUnit list them).
	Rules []*engine.Rule
	// Files is how many files were read; Objects how many Istio objects were checked.
	Files   int
	Objects int
	// Paths are the files read, in order: a clean one is a passing JUnit case, and the first
	// locates inventory findings in SARIF.
	Paths []string
	// BaseDir is the absolute directory SARIF URIs are made relative to (the working
	// directory); empty leaves file names as they are.
	BaseDir string
	// ToolVersion is the meshguard build that wrote the report.
	ToolVersion string
	// ExitCode is the status the run exits with.
	ExitCode int
	// Duration is how long the run took.
	Duration time.Duration
	// Time is when the run started (PolicyReport timestamps).
	Time time.Time
}

// Summary counts findings by severity.
type Summary struct {
	Files    int `json:"files"`
	Objects  int `json:"objects"`
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	Infos    int `json:"infos"`
}

// Summary counts the report's findings.
func (r *Report) Summary() Summary {
	s := Summary{Files: r.Files, Objects: r.Objects}
	for _, f := range r.Findings {
		switch f.Severity {
		case engine.SeverityError:
			s.Errors++
		case engine.SeverityWarning:
			s.Warnings++
		default:
			s.Infos++
		}
	}
	return s
}

// Outputter writes a report in one format.
type Outputter interface {
	Output(w io.Writer, r *Report) error
}

// Options tunes outputs.
type Options struct {
	// Color turns on ANSI colour in the text format.
	Color bool
	// Context is how many source lines around a finding's line the text format prints.
	Context int
	// Source reads a finding's file for Context; nil prints no source.
	Source func(file string) ([]byte, error)
	// Summary, when set, receives a Markdown summary from the github format (the file
	// $GITHUB_STEP_SUMMARY names).
	Summary io.Writer
}

// Formats lists the output format names.
func Formats() []string {
	return []string{"text", "json", "sarif", "junit", "github", "policyreport"}
}

// Get returns the Outputter for a format name, or an error naming the valid ones.
func Get(format string, opts Options) (Outputter, error) {
	switch format {
	case "text", "":
		return &Text{Color: opts.Color, Context: opts.Context, Source: opts.Source}, nil
	case "json":
		return &JSON{}, nil
	case "sarif":
		return &SARIF{}, nil
	case "junit":
		return &JUnit{}, nil
	case "github":
		return &GitHub{Summary: opts.Summary}, nil
	case "policyreport":
		return &PolicyReport{}, nil
	}
	return nil, UnknownFormat(format, Formats()...)
}

// UnknownFormat is the one wording of a bad --output, for every command.
func UnknownFormat(format string, valid ...string) error {
	return fmt.Errorf("unknown output format %q (want %s)", format, strings.Join(valid, ", "))
}

// byFile groups findings by file, files sorted, findings in report order.
func byFile(fs []engine.Finding) ([]string, map[string][]engine.Finding) {
	groups := map[string][]engine.Finding{}
	for _, f := range fs {
		groups[f.File] = append(groups[f.File], f)
	}
	files := make([]string, 0, len(groups))
	for f := range groups {
		files = append(files, f)
	}
	sort.Strings(files)
	return files, groups
}
