package webhook

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"runtime/debug"
	"strings"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
)

// InventorySource gives the objects a review compares against. It is the cluster (Cache) in
// `meshguard serve` and a fixed index in tests.
type InventorySource interface {
	// Inventory returns the current objects indexed for rootNamespace and domain, or an error
	// when they are not known yet (the cache has not synced).
	Inventory(rootNamespace, domain string) (engine.Inventory, error)
}

// InventoryFunc adapts a function to InventorySource.
type InventoryFunc func(rootNamespace, domain string) (engine.Inventory, error)

// Inventory calls f.
func (f InventoryFunc) Inventory(rootNamespace, domain string) (engine.Inventory, error) {
	return f(rootNamespace, domain)
}

// Handler reviews one admission request. It only adapts: the engine decides, the handler maps
// findings to an answer. Wrap it in admission.Webhook (NewHTTPHandler does) for UID fill-in and
// a last-resort panic guard; the handler guards evaluation itself, because a fault there must be
// answered by webhook.failurePolicy rather than by the wrapper's fixed 500.
type Handler struct {
	Rules     *Rules
	Inventory InventorySource
	Metrics   *Metrics
	Log       logr.Logger
	// Istiod knows where istiod's own validating webhook refuses what its validation
	// refuses; nil: nowhere, meshguard always runs istiod's validation.
	Istiod *IstiodWebhooks
}

var _ admission.Handler = (*Handler)(nil)

// Handle answers one AdmissionRequest and counts it.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	// A review whose slot the HTTP layer took keeps the RuleSet it took it from.
	rs, held := ctx.Value(slotKey{}).(*RuleSet)
	if !held {
		rs = h.Rules.Load()
	}
	resp, result := h.handle(ctx, rs, req, held)
	h.Metrics.requests.WithLabelValues(kindLabel(req.Kind.Kind), operationLabel(string(req.Operation)), result).Inc()
	return resp
}

// handle answers a request. What the object's author controls can only make the answer a
// refusal: a rule that fails on the object, an evaluation that runs out of time, a panic while
// reviewing it, and no free review slot before the deadline all refuse the object.
// webhook.failurePolicy decides only for meshguard's own outages: the cluster's objects are not
// known yet (the cache has not synced).
func (h *Handler) handle(ctx context.Context, rs *RuleSet, req admission.Request, held bool) (resp admission.Response, result string) {
	if !held { // the HTTP layer set the deadline when it took the slot
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rs.Config.Webhook.Timeout.Duration)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			h.Metrics.panics.Inc()
			resp, result = h.refuse(req, http.StatusInternalServerError, fmt.Errorf("%w: panic: %v\n%s", engine.ErrEvaluation, r, debug.Stack()))
		}
	}()
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update, admissionv1.Delete:
	default:
		// CONNECT is not registered; nothing to check if a configuration sends it anyway.
		return admission.Allowed(""), ResultAllowed
	}
	if req.Operation == admissionv1.Delete && req.Kind.Kind != manifest.KindPeerAuthentication {
		return admission.Allowed(""), ResultAllowed
	}
	if !held {
		release, err := rs.acquire(ctx, int64(len(req.Object.Raw)+len(req.OldObject.Raw)))
		if err != nil {
			return h.busy(rs, req, err)
		}
		defer release()
	}
	if req.Operation == admissionv1.Delete {
		return h.delete(ctx, rs, req)
	}
	return h.write(ctx, rs, req)
}

// write reviews the object a CREATE or UPDATE would store, against the inventory with that
// object in place of its stored version.
func (h *Handler) write(ctx context.Context, rs *RuleSet, req admission.Request) (admission.Response, string) {
	// NewHTTPHandler decodes the object with the envelope; decode it here when the handler
	// runs behind another transport.
	raw, decoded := objectFrom(ctx)
	if !decoded {
		if len(req.Object.Raw) == 0 {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("the %s request has no object (request.object is empty)", req.Operation)), ResultInvalid
		}
		var err error
		if raw, err = DecodeJSON(req.Object.Raw); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("request.object: %w", err)), ResultInvalid
		}
	}
	fillIdentity(raw, req)
	if req.Operation == admissionv1.Update && beingDeleted(raw) && specUnchanged(ctx, raw, req) {
		// Finalizers are being removed from an object on its way out: refusing that would
		// wedge the deletion, which is always allowed. A changed spec is reviewed like any
		// other update: finalizers would otherwise keep a deleted object, re-applied with
		// anything, stored unchecked.
		return admission.Allowed(""), ResultAllowed
	}

	obj, problem := manifest.NewObject(raw)
	if obj == nil && problem == nil {
		return admission.Allowed(""), ResultAllowed // a kind meshguard does not check
	}
	if problem != nil {
		f := rs.Engine.Problem(problem)
		if f == nil {
			// MG001 is switched off: the object cannot be read, so there is nothing to check.
			return admission.Allowed(""), ResultAllowed
		}
		return h.verdict(rs, req, []engine.Finding{*f})
	}
	// The cluster's validation first; the rules still run on what decoded. The API server has
	// applied the CRD schema before calling any validating webhook, so only istiod's checks
	// are left, and not even those where istiod's own webhook is sure to refuse the same.
	var valid []engine.Finding
	if rs.Config.Webhook.IstiodValidation == config.IstiodValidationAlways ||
		!h.Istiod.Covers(req.Resource, req.SubResource, req.Operation, obj.Labels) {
		valid = rs.Engine.Validate(ctx, obj, true)
		h.Metrics.istiodRun.Inc()
	} else {
		h.Metrics.istiodLeft.Inc()
	}

	cfg := rs.Config
	base, err := h.Inventory.Inventory(cfg.RootNamespace, cfg.MeshDomain)
	if err != nil {
		return h.fail(rs, req, err)
	}
	inv := newOverlay(base, obj, false)
	findings, err := rs.Engine.Review(ctx, obj, inv)
	if err != nil {
		return h.refuse(req, http.StatusInternalServerError, err)
	}
	findings = append(valid, findings...)
	if obj.Kind == manifest.KindPeerAuthentication {
		// A PeerAuthentication also changes the mesh as a whole (MG504); say so, never deny.
		meshFindings, err := rs.Engine.ReviewInventory(ctx, inv)
		if err != nil {
			return h.refuse(req, http.StatusInternalServerError, err)
		}
		findings = append(findings, asWarnings(meshFindings)...)
	}
	return h.verdict(rs, req, findings)
}

// delete is always allowed; removing a PeerAuthentication is reviewed for what the mesh loses
// (MG504: no mesh-wide STRICT policy left), which comes back as warnings.
func (h *Handler) delete(ctx context.Context, rs *RuleSet, req admission.Request) (admission.Response, string) {
	cfg := rs.Config
	base, err := h.Inventory.Inventory(cfg.RootNamespace, cfg.MeshDomain)
	if err != nil {
		return h.fail(rs, req, err)
	}
	// The identity is enough to take the object out; request.oldObject is not needed.
	gone := &manifest.Object{Kind: req.Kind.Kind, Namespace: req.Namespace, Name: req.Name}
	findings, err := rs.Engine.ReviewInventory(ctx, newOverlay(base, gone, true))
	if err != nil {
		return h.fail(rs, req, err)
	}
	return h.verdict(rs, req, asWarnings(findings))
}

// verdict maps findings to the answer. Per rule enforcement (config): deny refuses on error
// findings and passes warnings on; warn turns errors into warnings; audit only logs and counts.
// Info findings are logged.
func (h *Handler) verdict(rs *RuleSet, req admission.Request, findings []engine.Finding) (admission.Response, string) {
	if len(findings) == 0 {
		return admission.Allowed(""), ResultAllowed
	}
	engine.Sort(findings)
	var denies, warnings, logged []string
	for _, f := range findings {
		h.Metrics.findings.WithLabelValues(f.Rule, f.Severity.String()).Inc()
		enf := rs.Config.EnforcementFor(f.Rule)
		switch {
		case enf == config.EnforceAudit || f.Severity < engine.SeverityWarning:
			logged = append(logged, f.Rule)
		case f.Severity == engine.SeverityError && enf == config.EnforceDeny:
			denies = append(denies, describe(f))
		default:
			warnings = append(warnings, describe(f))
		}
	}
	if len(logged) > 0 || len(denies) > 0 {
		// Rule IDs only at info level: messages and paths may quote the object.
		log := h.requestLog(req)
		log.Info("findings", "denied", len(denies) > 0, "rules", ruleIDs(findings), "logOnly", logged)
		if v := log.V(1); v.Enabled() {
			for _, f := range findings {
				v.Info("finding", "rule", f.Rule, "severity", f.Severity.String(), "enforcement", rs.Config.EnforcementFor(f.Rule), "path", f.Path, "message", f.Message)
			}
		}
	}
	denies, warnings = capList(denies, maxDenyReasons, "error findings"), capList(warnings, maxWarnings, "warnings")
	switch {
	case len(denies) > 0:
		return admission.Denied(strings.Join(denies, "; ")).WithWarnings(warnings...), ResultDenied
	case len(warnings) > 0:
		return admission.Allowed("").WithWarnings(warnings...), ResultWarned
	}
	return admission.Allowed(""), ResultAllowed
}

// fail answers an outage of meshguard's own (the cluster's objects are not known yet) per
// webhook.failurePolicy: allow with a warning, or deny.
func (h *Handler) fail(rs *RuleSet, req admission.Request, err error) (admission.Response, string) {
	h.Metrics.evaluationErrors.Inc()
	policy := rs.Config.Webhook.FailurePolicy
	h.requestLog(req).Error(err, "review failed; answering per webhook.failurePolicy", "failurePolicy", policy)
	// The first line only: a recovered panic carries its stack, which belongs in the log.
	short, _, _ := strings.Cut(err.Error(), "\n")
	ref := reqRef(req)
	if policy == "deny" {
		return admission.Errored(http.StatusInternalServerError,
			fmt.Errorf("meshguard could not review %s and refuses it (webhook.failurePolicy deny): %s", ref, short)), ResultFailedClosed
	}
	return admission.Allowed("").WithWarnings(
		fmt.Sprintf("meshguard could not review %s and admitted it unchecked (webhook.failurePolicy allow): %s", ref, short)), ResultFailedOpen
}

// refuse answers a review that failed for what the object is or what is sent alongside it,
// whatever webhook.failurePolicy says: admitting it would let an author bypass the rules by
// making the review fail.
func (h *Handler) refuse(req admission.Request, code int32, err error) (admission.Response, string) {
	h.Metrics.evaluationErrors.Inc()
	h.requestLog(req).Error(err, "review failed; refusing the object")
	short, _, _ := strings.Cut(err.Error(), "\n")
	return admission.Errored(code, fmt.Errorf("meshguard could not finish reviewing %s and refuses it: %s", reqRef(req), short)), ResultFailedClosed
}

// busy refuses a review that found no free slot before its deadline. Reviews are bounded in
// time, so slots free up; a flood of costly objects must not open the door for others.
func (h *Handler) busy(rs *RuleSet, req admission.Request, err error) (admission.Response, string) {
	h.Metrics.evaluationErrors.Inc()
	h.requestLog(req).Info("no review slot before the deadline; refusing", "error", err.Error())
	return admission.Errored(http.StatusTooManyRequests, fmt.Errorf("meshguard refuses %s: %w within webhook.timeout (%s); retry", reqRef(req), errBusy, rs.Config.Webhook.Timeout)), ResultFailedClosed
}

// Bounds of one answer: an object with 200,000 findings must not produce a 27 MB response.
const (
	maxDenyReasons = 20
	maxWarnings    = 50
	maxMessageLen  = 1024
)

// capList keeps the first n entries, each cut to maxMessageLen, and says how many were left out.
func capList(list []string, n int, what string) []string {
	for i, m := range list {
		if len(m) > maxMessageLen {
			list[i] = m[:maxMessageLen] + "..."
		}
	}
	if len(list) <= n {
		return list
	}
	return append(list[:n:n], fmt.Sprintf("... and %d more %s (meshguard lint lists them all)", len(list)-n, what))
}

func (h *Handler) requestLog(req admission.Request) logr.Logger {
	return h.Log.WithValues("uid", req.UID, "kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name,
		"operation", req.Operation, "dryRun", req.DryRun != nil && *req.DryRun)
}

// asWarnings lowers error findings to warnings: inventory-wide findings describe the mesh, not
// the object under review, and must never block it.
func asWarnings(fs []engine.Finding) []engine.Finding {
	out := make([]engine.Finding, len(fs))
	for i, f := range fs {
		f.Severity = min(f.Severity, engine.SeverityWarning)
		out[i] = f
	}
	return out
}

// fillIdentity sets metadata.namespace and metadata.name from the request when the object
// lacks them, as the API server does before storing it.
func fillIdentity(raw map[string]any, req admission.Request) {
	meta, ok := raw["metadata"].(map[string]any)
	if !ok {
		if raw["metadata"] != nil {
			return // not an object: leave it for the strict check to report
		}
		meta = map[string]any{}
		raw["metadata"] = meta
	}
	if s, _ := meta["namespace"].(string); s == "" && req.Namespace != "" {
		meta["namespace"] = req.Namespace
	}
	if s, _ := meta["name"].(string); s == "" && req.Name != "" {
		meta["name"] = req.Name
	}
}

// specUnchanged tells whether an update leaves the object's spec as stored.
func specUnchanged(ctx context.Context, raw map[string]any, req admission.Request) bool {
	oldRaw := oldObjectFrom(ctx)
	if oldRaw == nil {
		oldRaw = req.OldObject.Raw
	}
	if len(oldRaw) == 0 {
		return false
	}
	old, err := DecodeJSON(oldRaw)
	if err != nil {
		return false
	}
	return reflect.DeepEqual(raw["spec"], old["spec"])
}

func beingDeleted(raw map[string]any) bool {
	meta, _ := raw["metadata"].(map[string]any)
	ts, _ := meta["deletionTimestamp"].(string)
	return ts != ""
}

func reqRef(req admission.Request) string {
	if req.Namespace == "" {
		return req.Kind.Kind + " " + req.Name
	}
	return req.Kind.Kind + " " + req.Namespace + "/" + req.Name
}

func ruleIDs(fs []engine.Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}
