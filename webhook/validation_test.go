package webhook

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// TestTheClusterValidationRunsBeforeTheRules: what the Istio CRD schema or istiod refuses is
// denied as MG001 with their message, istiod's warnings come back as MG003, and the rules still
// report on the same object.
func TestTheClusterValidationRunsBeforeTheRules(t *testing.T) {
	const vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: cart, namespace: shop}\nspec:\n  hosts: [cart]\n  http:\n  - route: [{destination: {host: cart}}]\n"
	tests := []struct {
		name     string
		object   string
		allowed  bool
		message  []string
		warnings []string
		absent   string
	}{
		{
			// The API server applies the CRD schema before it calls validating webhooks, so the
			// webhook leaves it out: istiod's own check refuses the negative timeout.
			name:    "a negative timeout is denied with istiod's message, not the schema's, and the retry rules still report",
			object:  vs + "    timeout: -5s\n    retries: {attempts: 10, perTryTimeout: 1s}\n",
			message: []string{"MG001 spec: istiod: ", "MG101 spec.http[0].retries.attempts: "},
			absent:  "CRD schema",
		},
		{
			name:    "retryOn with a space is denied with istiod's message",
			object:  vs + "    timeout: 5s\n    retries: {attempts: 2, perTryTimeout: 1s, retryOn: \"5xx, connect-failure\"}\n",
			message: []string{"MG001 spec: istiod: "},
		},
		{
			name:     "a deprecated field istiod warns about is admitted with MG003",
			object:   strings.Replace(cartDR, "consecutive5xxErrors: 5", "consecutiveErrors: 5", 1),
			allowed:  true,
			warnings: []string{"MG003 spec: istiod: outlier detection consecutive errors is deprecated"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "", meshStrict, cartDR)
			resp := f.send(t, req{op: admissionv1.Create, object: tt.object})
			require.Equal(t, tt.allowed, resp.Allowed, "result: %+v, warnings: %v", resp.Result, resp.Warnings)
			if !tt.allowed {
				require.Equal(t, int32(http.StatusForbidden), resp.Result.Code)
				for _, m := range tt.message {
					require.Contains(t, resp.Result.Message, m)
				}
				if tt.absent != "" {
					require.NotContains(t, resp.Result.Message, tt.absent)
				}
			}
			for _, w := range tt.warnings {
				require.Contains(t, strings.Join(resp.Warnings, "\n"), w)
			}
		})
	}
}

// TestIstiodsChecksAreLeftToIstiodsOwnWebhook: where istiod's validating webhook fails closed,
// the object it refuses is not refused a second time by meshguard (webhook.istiodValidation:
// auto), while meshguard's own rules still judge it; with "always", or while istiod's webhook
// fails open, meshguard runs istiod's checks itself.
func TestIstiodsChecksAreLeftToIstiodsOwnWebhook(t *testing.T) {
	// retryOn with a space: only istiod's validation refuses it among the checks the webhook runs.
	const spaced = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: cart, namespace: shop}\nspec:\n  hosts: [cart]\n  http:\n  - route: [{destination: {host: cart}}]\n    timeout: 5s\n    retries: {attempts: 2, perTryTimeout: 1s, retryOn: \"5xx, connect-failure\"}\n"
	tests := []struct {
		name     string
		config   string
		policy   admissionregistrationv1.FailurePolicyType
		istiodMG bool
	}{
		{"istiod's webhook fails closed: its refusal is left to it", "", admissionregistrationv1.Fail, false},
		{"istiod's webhook fails open: meshguard refuses too", "", admissionregistrationv1.Ignore, true},
		{"always: meshguard refuses too", "webhook: {istiodValidation: always}\n", admissionregistrationv1.Fail, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.config, meshStrict, cartDR)
			f.handler.Istiod = NewIstiodWebhooks(logr.Discard())
			f.handler.Istiod.Set(istiodValidator(tt.policy))
			resp := f.send(t, req{op: admissionv1.Create, object: spaced})
			by := "run"
			if !tt.istiodMG {
				by = "left_to_istiod"
			}
			var m dto.Metric
			require.NoError(t, f.metrics.istiodValidation.WithLabelValues(by).Write(&m))
			require.Equal(t, 1.0, m.GetCounter().GetValue(), "counted as %s", by)
			if !tt.istiodMG {
				require.True(t, resp.Allowed, "istiod's webhook refuses it, meshguard has nothing of its own: %+v", resp.Result)
				return
			}
			require.False(t, resp.Allowed)
			require.Contains(t, resp.Result.Message, "MG001 spec: istiod: ")
		})
	}
}
