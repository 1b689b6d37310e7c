package webhook

import (
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// istiodValidator is the shape of Istio's istiod-default-validator (istio/istio
// manifests/charts/base, "istiod-default-validator"; its comment: fail open until istiod's
// webhook controller patches failurePolicy to Fail once the endpoint is ready).
func istiodValidator(failurePolicy admissionregistrationv1.FailurePolicyType, edit ...func(*admissionregistrationv1.ValidatingWebhook)) *admissionregistrationv1.ValidatingWebhookConfiguration {
	path := "/validate"
	wh := admissionregistrationv1.ValidatingWebhook{
		Name: "validation.istio.io",
		ClientConfig: admissionregistrationv1.WebhookClientConfig{
			Service: &admissionregistrationv1.ServiceReference{Name: "istiod", Namespace: "istio-system", Path: &path},
		},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{"security.istio.io", "networking.istio.io", "telemetry.istio.io", "extensions.istio.io"},
				APIVersions: []string{"*"}, Resources: []string{"*"},
			},
		}},
		FailurePolicy: &failurePolicy,
	}
	for _, e := range edit {
		e(&wh)
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod-default-validator"},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{wh},
	}
}

var virtualServices = metav1.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

func TestIstiodsWebhookCoversAnObjectOnlyWhenItIsSureToRefuseIt(t *testing.T) {
	tests := []struct {
		name   string
		config *admissionregistrationv1.ValidatingWebhookConfiguration
		res    metav1.GroupVersionResource
		sub    string
		op     admissionv1.Operation
		labels map[string]string
		want   bool
	}{
		{name: "istiod's validator after istiod made it fail closed covers a VirtualService",
			config: istiodValidator(admissionregistrationv1.Fail), res: virtualServices, op: admissionv1.Create, want: true},
		{name: "an update is covered too",
			config: istiodValidator(admissionregistrationv1.Fail), res: virtualServices, op: admissionv1.Update, want: true},
		{name: "while it fails open (istiod not ready yet) it covers nothing",
			config: istiodValidator(admissionregistrationv1.Ignore), res: virtualServices, op: admissionv1.Create},
		{name: "a group its rules leave out is not covered",
			config: istiodValidator(admissionregistrationv1.Fail), op: admissionv1.Create,
			res: metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}},
		{name: "a subresource is another request",
			config: istiodValidator(admissionregistrationv1.Fail), res: virtualServices, sub: "status", op: admissionv1.Update},
		{name: "a webhook served by another service is not istiod's",
			config: istiodValidator(admissionregistrationv1.Fail, func(wh *admissionregistrationv1.ValidatingWebhook) {
				wh.ClientConfig.Service.Name = "not-istiod"
			}), res: virtualServices, op: admissionv1.Create},
		{name: "a webhook reached by URL cannot be told from another",
			config: istiodValidator(admissionregistrationv1.Fail, func(wh *admissionregistrationv1.ValidatingWebhook) {
				u := "https://istiod.example:15017/validate"
				wh.ClientConfig.Service, wh.ClientConfig.URL = nil, &u
			}), res: virtualServices, op: admissionv1.Create},
		{name: "a revision's validator covers the objects of its revision",
			config: istiodValidator(admissionregistrationv1.Fail, func(wh *admissionregistrationv1.ValidatingWebhook) {
				wh.ClientConfig.Service.Name = "istiod-canary"
				wh.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"istio.io/rev": "canary"}}
			}), res: virtualServices, op: admissionv1.Create, labels: map[string]string{"istio.io/rev": "canary"}, want: true},
		{name: "and not the objects of another",
			config: istiodValidator(admissionregistrationv1.Fail, func(wh *admissionregistrationv1.ValidatingWebhook) {
				wh.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"istio.io/rev": "canary"}}
			}), res: virtualServices, op: admissionv1.Create},
		{name: "a namespaceSelector may skip the object's namespace: not covered",
			config: istiodValidator(admissionregistrationv1.Fail, func(wh *admissionregistrationv1.ValidatingWebhook) {
				wh.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
			}), res: virtualServices, op: admissionv1.Create},
		{name: "match conditions may skip the object: not covered",
			config: istiodValidator(admissionregistrationv1.Fail, func(wh *admissionregistrationv1.ValidatingWebhook) {
				wh.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "x", Expression: "true"}}
			}), res: virtualServices, op: admissionv1.Create},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewIstiodWebhooks(logr.Discard())
			w.Set(tt.config)
			require.Equal(t, tt.want, w.Covers(tt.res, tt.sub, tt.op, tt.labels))
		})
	}

	t.Run("a validator patched back to fail open, or deleted, covers nothing again", func(t *testing.T) {
		w := NewIstiodWebhooks(logr.Discard())
		w.Set(istiodValidator(admissionregistrationv1.Fail))
		require.True(t, w.Covers(virtualServices, "", admissionv1.Create, nil))
		w.Set(istiodValidator(admissionregistrationv1.Ignore))
		require.False(t, w.Covers(virtualServices, "", admissionv1.Create, nil))
		w.Set(istiodValidator(admissionregistrationv1.Fail))
		w.Delete("istiod-default-validator")
		require.False(t, w.Covers(virtualServices, "", admissionv1.Create, nil))
	})
	t.Run("no watch at all covers nothing", func(t *testing.T) {
		var w *IstiodWebhooks
		require.False(t, w.Covers(virtualServices, "", admissionv1.Create, nil))
	})
}
