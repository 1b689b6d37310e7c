package manifest

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary files to the loader. Whatever comes in, it must not panic, and every
// document must come out as an object or as a problem with a line inside the file: nothing is
// dropped silently. The seeds include the inputs that once got past the webhook or exhausted it.
func FuzzParse(f *testing.F) {
	f.Add([]byte("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"))
	f.Add([]byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: overflow, namespace: shop}\nspec:\n  hosts: [cart]\n  http:\n  - route: [{destination: {host: cart}}]\n    timeout: 1s\n    retries: {attempts: 2147483647, perTryTimeout: 100000000s}\n"))
	f.Add([]byte(fmt.Sprintf("apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: deep}\nspec:\n  accessLogging:\n  - filter: {expression: %q}\n", strings.Repeat("[", 245)+"1"+strings.Repeat("]", 245))))
	var list strings.Builder
	list.WriteString("apiVersion: v1\nkind: List\nitems:\n")
	for i := range 50 {
		fmt.Fprintf(&list, "- {apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: d%d}, spec: {host: h%d}}\n", i, i)
	}
	f.Add([]byte(list.String()))
	f.Add([]byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x, deletionTimestamp: \"2026-06-01T00:00:00Z\", finalizers: [a/b]}\nspec: {hosts: [x]}\n---\n--- # c\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, problems := Parse("fuzz.yaml", data)
		lines := strings.Count(string(data), "\n") + 1
		for _, p := range problems {
			if p.Line < 0 || p.Line > lines {
				t.Fatalf("problem at line %d of a %d-line file: %s", p.Line, lines, p.Message)
			}
			if p.Message == "" {
				t.Fatal("a problem without a message")
			}
		}
		for _, o := range objs {
			if o.Kind == "" || o.Raw == nil {
				t.Fatalf("an object without kind or content: %+v", o)
			}
		}
	})
}
