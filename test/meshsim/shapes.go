package meshsim

import (
	"bufio"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"
)

// shapeFiles are expositions of Istio's metrics as real proxies write them, each naming its
// source in its header. meshsim takes its label sets from them, and its tests hold its series
// to their label values.
//
//go:embed shapes/*.prom
var shapeFiles embed.FS

// Shape is one fixture: the metric families of a real exposition and where they come from.
type Shape struct {
	// Name is the file name without ".prom".
	Name string
	// Source is the header comment that names the fixture's origin.
	Source string
	// Families are the parsed metric families by name.
	Families map[string]*dto.MetricFamily
}

// Shapes parses every fixture, sorted by name.
func Shapes() ([]Shape, error) {
	files, err := fs.Glob(shapeFiles, "shapes/*.prom")
	if err != nil {
		return nil, fmt.Errorf("list shapes: %w", err)
	}
	sort.Strings(files)
	out := make([]Shape, 0, len(files))
	for _, f := range files {
		b, err := shapeFiles.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read shape %s: %w", f, err)
		}
		p := expfmt.NewTextParser(pmodel.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
		if err != nil {
			return nil, fmt.Errorf("parse shape %s: %w", f, err)
		}
		out = append(out, Shape{Name: strings.TrimSuffix(path.Base(f), ".prom"), Source: header(string(b)), Families: fams})
	}
	return out, nil
}

// header returns the leading comment lines that are not TYPE or HELP lines.
func header(text string) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "#") || strings.HasPrefix(l, "# TYPE") || strings.HasPrefix(l, "# HELP") {
			break
		}
		lines = append(lines, strings.TrimSpace(strings.TrimPrefix(l, "#")))
	}
	return strings.Join(lines, "\n")
}

// LabelNames returns the label names of a metric's first series in the shape, in file order.
func (s Shape) LabelNames(metric string) []string {
	f, ok := s.Families[metric]
	if !ok || len(f.GetMetric()) == 0 {
		return nil
	}
	var out []string
	for _, l := range f.GetMetric()[0].GetLabel() {
		out = append(out, l.GetName())
	}
	return out
}

// sidecarLabels are the label sets of the sidecar fixture, which meshsim writes every request
// and TCP series with (the ztunnel and waypoint fixtures have the same sets; the tests check it).
var sidecarLabels = sync.OnceValue(func() map[string][]string {
	shapes, err := Shapes()
	if err != nil {
		// The fixtures are embedded and parsed by the package's tests: a failure here is a
		// broken build, like a regexp.MustCompile.
		panic(err)
	}
	for _, s := range shapes {
		if s.Name == "sidecar" {
			return map[string][]string{
				MetricRequests:  s.LabelNames(MetricRequests),
				MetricTCPOpened: s.LabelNames(MetricTCPOpened),
			}
		}
	}
	panic("meshsim: no sidecar shape")
})
