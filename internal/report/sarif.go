package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/meshguard/meshguard/internal/engine"
)

// SARIF writes a SARIF 2.1.0 log: one run, every rule with its help text and documentation link,
// each finding with a physical location (a relative, percent-encoded URI and a line), its field
// path as a logical location and a fingerprint that survives line moves, and one invocation with
// the exit code. Tests validate it against the OASIS schema.
type SARIF struct{}

const (
	sarifSchema = "https://json.schemastore.org/sarif-2.1.0.json"
	// srcRoot is the uriBaseId relative URIs are resolved against (GitHub code scanning resolves
	// it to the repository's checkout).
	srcRoot = "%SRCROOT%"
	// fingerprintKey versions the fingerprint so a change of what it hashes does not collide
	// with alerts uploaded earlier.
	fingerprintKey = "meshguardFinding/v1"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool               sarifTool                `json:"tool"`
	Invocations        []sarifInvocation        `json:"invocations"`
	OriginalURIBaseIDs map[string]sarifArtifact `json:"originalUriBaseIds,omitempty"`
	Results            []sarifResult            `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool `json:"executionSuccessful"`
	ExitCode            int  `json:"exitCode"`
}

type sarifRule struct {
	ID                   string          `json:"id"`
	Name                 string          `json:"name,omitempty"`
	ShortDescription     sarifText       `json:"shortDescription"`
	FullDescription      sarifText       `json:"fullDescription"`
	Help                 sarifText       `json:"help"`
	HelpURI              string          `json:"helpUri,omitempty"`
	DefaultConfiguration sarifRuleConfig `json:"defaultConfiguration"`
}

type sarifRuleConfig struct {
	Level string `json:"level"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

func sarifLevel(s engine.Severity) string {
	switch s {
	case engine.SeverityError:
		return "error"
	case engine.SeverityWarning:
		return "warning"
	}
	return "note"
}

// Output writes the report.
func (*SARIF) Output(w io.Writer, r *Report) error {
	driver := sarifDriver{Name: "meshguard", Version: r.ToolVersion, InformationURI: InformationURI, Rules: []sarifRule{}}
	index := map[string]int{}
	addRule := func(id string, rule *engine.Rule) int {
		if i, ok := index[id]; ok {
			return i
		}
		sr := sarifRule{ID: id, ShortDescription: sarifText{id}, FullDescription: sarifText{id}, Help: sarifText{id}, DefaultConfiguration: sarifRuleConfig{"error"}}
		if rule != nil {
			sr.Name = rule.Title
			sr.ShortDescription = sarifText{rule.Title}
			sr.FullDescription = sarifText{strings.TrimSpace(rule.Description)}
			sr.Help = sarifText{rule.Remediation}
			sr.HelpURI = RuleDocsURL(rule)
			sr.DefaultConfiguration = sarifRuleConfig{sarifLevel(rule.DefaultSeverity)}
		}
		index[id] = len(driver.Rules)
		driver.Rules = append(driver.Rules, sr)
		return index[id]
	}
	for _, rule := range r.Rules {
		addRule(rule.ID, rule)
	}
	run := sarifRun{
		// A report is written only when the run itself worked: exit codes 0 and 1 say whether
		// findings crossed --fail-on, not whether meshguard failed.
		Invocations: []sarifInvocation{{ExecutionSuccessful: true, ExitCode: r.ExitCode}},
		Results:     []sarifResult{},
	}
	if r.BaseDir != "" {
		run.OriginalURIBaseIDs = map[string]sarifArtifact{srcRoot: {URI: fileURI(r.BaseDir) + "/"}}
	}
	for _, f := range r.Findings {
		res := sarifResult{
			RuleID: f.Rule, RuleIndex: addRule(f.Rule, nil), Level: sarifLevel(f.Severity), Message: sarifText{f.Message},
			PartialFingerprints: map[string]string{fingerprintKey: fingerprint(f)},
		}
		loc := sarifLocation{}
		file, line := f.File, f.Line
		if file == "" && len(r.Paths) > 0 {
			// An inventory finding belongs to no object; code scanning shows only results with
			// a file, so it is placed on the first file of the configuration it judged.
			file, line = r.Paths[0], 0
		}
		if file != "" {
			loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: artifactFor(file, r.BaseDir)}
			if line > 0 {
				loc.PhysicalLocation.Region = &sarifRegion{StartLine: line}
			}
		}
		name := f.Object()
		if f.Path != "" {
			name += "." + f.Path
		}
		loc.LogicalLocations = []sarifLogical{{FullyQualifiedName: name, Kind: "object"}}
		res.Locations = []sarifLocation{loc}
		run.Results = append(run.Results, res)
	}
	run.Tool = sarifTool{Driver: driver}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: sarifSchema, Version: "2.1.0", Runs: []sarifRun{run}})
}

// artifactFor makes a file name a URI reference: relative to base (and %SRCROOT%) when it lies
// under it, percent-encoded, with forward slashes. An absolute path elsewhere is a file: URI,
// since a bare "/abs/path" is not a valid artifact location (SARIF1004).
func artifactFor(file, base string) sarifArtifact {
	p := relativeTo(file, base)
	if filepath.IsAbs(p) {
		return sarifArtifact{URI: fileURI(p)}
	}
	a := sarifArtifact{URI: relativeURI(filepath.ToSlash(filepath.Clean(p)))}
	if base != "" {
		a.URIBaseID = srcRoot
	}
	return a
}

// relativeTo makes an absolute file under base relative to it; other names are returned as given.
func relativeTo(file, base string) string {
	if filepath.IsAbs(file) && base != "" {
		if rel, err := filepath.Rel(base, file); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return rel
		}
	}
	return file
}

// relativeURI percent-encodes a relative path; a first segment with a colon gets "./" so that
// it is not read as a scheme.
func relativeURI(p string) string {
	return (&url.URL{Path: p}).String()
}

func fileURI(abs string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}

// fingerprint identifies a finding by what it is about, not where it is: the rule, the object
// and the field, in its file. A line move keeps the alert; a fix closes it.
func fingerprint(f engine.Finding) string {
	h := sha256.Sum256([]byte(strings.Join([]string{f.Rule, f.File, f.APIVersion, f.Kind, f.Namespace, f.Name, f.Path}, "\x00")))
	return hex.EncodeToString(h[:16])
}

func itoa(i int) string { return strconv.Itoa(i) }
