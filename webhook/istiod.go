package webhook

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// IstiodWebhooks follows the cluster's ValidatingWebhookConfigurations to know when istiod's
// own validating webhook refuses what its validation refuses. The API server calls every
// validating webhook of a request, so for an object istiod's webhook is sure to see, meshguard
// running the same checks (istio.io/istio/pkg/config/validation) again adds a second copy of
// the same refusal and a third of the review's CPU, nothing else.
//
// "Sure to see" is strict: a webhook served by istiod (a service named istiod or istiod-<rev>
// at /validate), failurePolicy Fail (istiod sets it once its webhook is ready; while it is
// Ignore, an istiod that is down admits anything), no namespaceSelector or matchConditions, an
// objectSelector the object's labels match, and rules covering the object's group, resource and
// operation. Anything else and meshguard validates as before.
type IstiodWebhooks struct {
	log logr.Logger

	mu sync.RWMutex
	// byConfig holds, per ValidatingWebhookConfiguration, its webhooks that are istiod's and
	// fail closed.
	byConfig map[string][]istiodWebhook
}

// istiodWebhook is one of istiod's webhooks with its objectSelector compiled once, not per
// review.
type istiodWebhook struct {
	rules    []admissionregistrationv1.RuleWithOperations
	selector labels.Selector
}

// NewIstiodWebhooks returns an empty set: istiod's webhook covers nothing until one is seen.
func NewIstiodWebhooks(log logr.Logger) *IstiodWebhooks {
	return &IstiodWebhooks{log: log, byConfig: map[string][]istiodWebhook{}}
}

// Watch follows the ValidatingWebhookConfigurations through informers.
func (w *IstiodWebhooks) Watch(ctx context.Context, informers cache.Informers) error {
	inf, err := informers.GetInformer(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{}, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("watch ValidatingWebhookConfigurations: %w", err)
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.Set(obj) },
		UpdateFunc: func(_, obj any) { w.Set(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if c, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration); ok {
				w.Delete(c.Name)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch ValidatingWebhookConfigurations: %w", err)
	}
	return nil
}

// Set records a ValidatingWebhookConfiguration as the cluster now has it.
func (w *IstiodWebhooks) Set(obj any) {
	c, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration)
	if !ok {
		return
	}
	var istiod []istiodWebhook
	for _, wh := range c.Webhooks {
		if sel, ok := istiodFailsClosed(wh); ok {
			istiod = append(istiod, istiodWebhook{rules: wh.Rules, selector: sel})
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, had := w.byConfig[c.Name]
	if len(istiod) == 0 {
		delete(w.byConfig, c.Name)
	} else {
		w.byConfig[c.Name] = istiod
	}
	if had != (len(istiod) > 0) {
		w.log.Info("istiod's validating webhook changed: where it fails closed, its checks are left to it",
			"configuration", c.Name, "failsClosed", len(istiod) > 0)
	}
}

// Delete forgets a ValidatingWebhookConfiguration.
func (w *IstiodWebhooks) Delete(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, had := w.byConfig[name]; had {
		delete(w.byConfig, name)
		w.log.Info("istiod's validating webhook is gone: meshguard runs its checks again", "configuration", name)
	}
}

// istiodFailsClosed tells a webhook served by istiod's validation that refuses when it cannot
// answer, and that no selector or condition this package does not evaluate can skip; it
// returns the webhook's objectSelector as the API server evaluates it (none selects every
// object).
func istiodFailsClosed(wh admissionregistrationv1.ValidatingWebhook) (labels.Selector, bool) {
	svc := wh.ClientConfig.Service
	if svc == nil || (svc.Name != "istiod" && !strings.HasPrefix(svc.Name, "istiod-")) {
		return nil, false
	}
	if svc.Path == nil || *svc.Path != "/validate" {
		return nil, false
	}
	if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Fail {
		return nil, false
	}
	if len(wh.MatchConditions) > 0 || !selectsEverything(wh.NamespaceSelector) {
		return nil, false
	}
	if wh.ObjectSelector == nil {
		return labels.Everything(), true
	}
	sel, err := metav1.LabelSelectorAsSelector(wh.ObjectSelector)
	return sel, err == nil
}

func selectsEverything(s *metav1.LabelSelector) bool {
	return s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0)
}

// Covers tells whether istiod's webhook is sure to see a request for a resource (as the
// AdmissionRequest names it) of an object with objLabels.
func (w *IstiodWebhooks) Covers(res metav1.GroupVersionResource, subResource string, op admissionv1.Operation, objLabels map[string]string) bool {
	if w == nil || subResource != "" {
		return false
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, whs := range w.byConfig {
		for _, wh := range whs {
			if coversRequest(wh.rules, res.Group, res.Resource, op) && wh.selector.Matches(labels.Set(objLabels)) {
				return true
			}
		}
	}
	return false
}

// coversRequest matches a webhook's rules as the API server does for a namespaced object
// (admission/plugin/webhook/predicates/rules): operation, group, resource.
func coversRequest(rules []admissionregistrationv1.RuleWithOperations, group, resource string, op admissionv1.Operation) bool {
	for _, r := range rules {
		if r.Scope != nil && *r.Scope == admissionregistrationv1.ClusterScope {
			continue
		}
		if matchesOperation(op, r.Operations) && matchesAny(group, r.APIGroups) && matchesAny(resource, r.Resources) {
			return true
		}
	}
	return false
}

func matchesOperation(op admissionv1.Operation, ops []admissionregistrationv1.OperationType) bool {
	for _, o := range ops {
		if o == admissionregistrationv1.OperationAll || string(o) == string(op) {
			return true
		}
	}
	return false
}

// matchesAny matches a value against a rule's list, where "*" is every value. A subresource
// ("virtualservices/status") is another resource.
func matchesAny(v string, list []string) bool {
	for _, x := range list {
		if x == "*" || x == v {
			return true
		}
	}
	return false
}
