// Package lint checks a set of objects as a whole: every object against the others, and the
// inventory rules once. `meshguard lint` runs it over files and `meshguard audit` over a
// cluster's objects.
package lint

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
)

// Run validates every object as the cluster would (MG001, MG003), evaluates it against the
// inventory of all of them, turns load problems into MG001 findings, and returns the findings
// sorted. complete says the objects are the whole configuration, which lets the rules that
// report something missing run.
func Run(ctx context.Context, eng *engine.Engine, objects []*manifest.Object, problems []*manifest.Problem, complete bool) ([]engine.Finding, error) {
	cfg := eng.Config()
	inv := engine.NewIndex(objects, complete, cfg.RootNamespace, cfg.MeshDomain)
	var findings []engine.Finding
	for _, p := range problems {
		if f := eng.Problem(p); f != nil {
			findings = append(findings, *f)
		}
	}

	workers := runtime.GOMAXPROCS(0)
	results := make([][]engine.Finding, len(objects))
	errs := make([]error, len(objects))
	var wg sync.WaitGroup
	next := make(chan int, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// The cluster's validation, then the rules on what decoded: the author sees
				// everything at once.
				valid := eng.Validate(ctx, objects[i], false)
				results[i], errs[i] = eng.Review(ctx, objects[i], inv)
				results[i] = append(valid, results[i]...)
			}
		}()
	}
	for i := range objects {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, r := range results {
		findings = append(findings, r...)
	}
	invFindings, err := eng.ReviewInventory(ctx, inv)
	errs = append(errs, err)
	findings = append(findings, invFindings...)
	engine.Sort(findings)
	return findings, errors.Join(errs...)
}

// Checked counts the objects the rules review; Services are read only as context.
func Checked(objects []*manifest.Object) int {
	n := 0
	for _, o := range objects {
		if !manifest.InventoryOnly(o.Kind) {
			n++
		}
	}
	return n
}
