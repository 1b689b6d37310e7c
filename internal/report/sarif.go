package report

import (
	"encoding/json"
	"io"
	"strconv"

	"github.com/meshguard/meshguard/internal/engine"
)

// SARIF writes a SARIF 2.1.0 log: one run, every rule with its help text, and each finding with
// a physical location (file and line) and its field path as a logical location.
type SARIF struct{}

const sarifSchema = "https://json.schemastore.org/sarif-2.1.0.json"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string          `json:"id"`
	Name                 string          `json:"name,omitempty"`
	ShortDescription     sarifText       `json:"shortDescription"`
	FullDescription      sarifText       `json:"fullDescription"`
	Help                 sarifText       `json:"help"`
	DefaultConfiguration sarifRuleConfig `json:"defaultConfiguration"`
}

type sarifRuleConfig struct {
	Level string `json:"level"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations"`
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
	URI string `json:"uri"`
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
	driver := sarifDriver{Name: "meshguard", InformationURI: "https://github.com/meshguard/meshguard", Rules: []sarifRule{}}
	index := map[string]int{}
	addRule := func(id string, rule *engine.Rule) int {
		if i, ok := index[id]; ok {
			return i
		}
		sr := sarifRule{ID: id, ShortDescription: sarifText{id}, FullDescription: sarifText{id}, Help: sarifText{id}, DefaultConfiguration: sarifRuleConfig{"error"}}
		if rule != nil {
			sr.Name = rule.Title
			sr.ShortDescription = sarifText{rule.Title}
			sr.FullDescription = sarifText{rule.Description}
			sr.Help = sarifText{rule.Remediation}
			sr.DefaultConfiguration = sarifRuleConfig{sarifLevel(rule.DefaultSeverity)}
		}
		index[id] = len(driver.Rules)
		driver.Rules = append(driver.Rules, sr)
		return index[id]
	}
	for _, rule := range r.Rules {
		addRule(rule.ID, rule)
	}
	results := []sarifResult{}
	for _, f := range r.Findings {
		res := sarifResult{RuleID: f.Rule, RuleIndex: addRule(f.Rule, nil), Level: sarifLevel(f.Severity), Message: sarifText{f.Message}}
		loc := sarifLocation{}
		if f.File != "" {
			loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: f.File}}
			if f.Line > 0 {
				loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
			}
		}
		name := f.Object()
		if f.Path != "" {
			name += "." + f.Path
		}
		loc.LogicalLocations = []sarifLogical{{FullyQualifiedName: name, Kind: "object"}}
		res.Locations = []sarifLocation{loc}
		results = append(results, res)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: sarifSchema, Version: "2.1.0", Runs: []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}}})
}

func itoa(i int) string { return strconv.Itoa(i) }
