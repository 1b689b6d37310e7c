package policies

import (
	"context"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/validate"
)

// fixedNow keeps exception expiry in the testdata reproducible.
func fixedNow() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }

func newEngine(t testing.TB) (*engine.Engine, []*engine.Rule) {
	t.Helper()
	rules, err := All()
	require.NoError(t, err)
	val, err := validate.Default()
	require.NoError(t, err)
	e, err := engine.New(context.Background(), engine.Options{Rules: rules, Now: fixedNow, Validator: val})
	require.NoError(t, err)
	return e, rules
}

func TestEveryRuleFiresOnItsFailCasesAndNotOnItsPassCases(t *testing.T) {
	e, rules := newEngine(t)
	for _, r := range rules {
		t.Run(r.ID, func(t *testing.T) {
			results, err := e.TestRule(context.Background(), r)
			require.NoError(t, err)
			fired := false
			for _, c := range results {
				if c.Failed() {
					t.Error(c.String())
				}
				if strings.HasSuffix(c.File, "fail.yaml") && len(c.Got) > 0 {
					fired = true
				}
			}
			require.True(t, fired, "%s never fires on its fail cases", r.ID)
		})
	}
}

func TestTheBundleListsEveryRuleDirectoryInOrder(t *testing.T) {
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	var found []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "MG") {
			found = append(found, e.Name())
		}
	}
	require.Equal(t, found, dirs, "policies.go must list every rule directory")
	require.True(t, sort.StringsAreSorted(dirs))
}

func TestRuleMetadataIsComplete(t *testing.T) {
	_, rules := newEngine(t)
	ids := map[string]bool{}
	for _, r := range rules {
		require.False(t, ids[r.ID], "duplicate rule ID %s", r.ID)
		ids[r.ID] = true
		require.NotEmpty(t, r.Title, r.ID)
		require.NotEmpty(t, r.Description, r.ID)
		require.NotEmpty(t, r.Remediation, r.ID)
		require.True(t, strings.HasPrefix(r.Dir, r.ID+"-"), "directory %s must start with its ID %s", r.Dir, r.ID)
	}
}

// TestTheCatalogueIsImplemented reads the product spec's rule table, so a rule added there and
// not here fails the build.
func TestTheCatalogueIsImplemented(t *testing.T) {
	spec, err := os.ReadFile("../../shared/spec/rules.md")
	if err != nil {
		t.Skip("the product spec is not beside this checkout")
	}
	e, _ := newEngine(t)
	re := regexp.MustCompile(`(?m)^\| (MG\d{3}) \| (error|warning|info) \|`)
	matches := re.FindAllStringSubmatch(string(spec), -1)
	require.NotEmpty(t, matches)
	for _, m := range matches {
		r := e.Rule(m[1])
		require.NotNil(t, r, "catalogue rule %s is missing", m[1])
		require.Equal(t, m[2], r.DefaultSeverity.String(), "severity of %s", m[1])
	}
}

func TestAbsenceRulesStaySilentOnAnIncompleteInventory(t *testing.T) {
	e, rules := newEngine(t)
	for _, r := range rules {
		if r.Inventory != engine.NeedAbsence || r.Scope == engine.ScopeInventory {
			continue
		}
		t.Run(r.ID, func(t *testing.T) {
			data, err := bundle.ReadFile(r.Dir + "/testdata/fail.yaml")
			require.NoError(t, err)
			objs, _ := manifestParse(t, r.Dir+"/testdata/fail.yaml", data)
			inv := engine.NewIndex(objs, false, "istio-system", "cluster.local")
			for _, o := range objs {
				fs, err := e.Review(context.Background(), o, inv)
				require.NoError(t, err)
				for _, f := range fs {
					require.NotEqual(t, r.ID, f.Rule, "absence rule fired on an incomplete inventory: %s", f.Message)
				}
			}
		})
	}
}
