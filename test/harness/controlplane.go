// Package harness starts the real components meshguard's integration tests run against.
//
// This file owns the Kubernetes control plane: a kube-apiserver and etcd started through
// controller-runtime's envtest (with locally built binaries, never downloaded ones), the Istio
// CRDs from the istio.io/api module, an admin kubeconfig for the machine's kubectl, and the
// helpers to point a ValidatingWebhookConfiguration at a webhook server on loopback.
package harness

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Bounds for every wait in this file. They are generous because the machines these tests run on
// have two cores that are often busy compiling; a healthy plane needs a fraction of each.
const (
	// cpProcessStartTimeout bounds the start of each of etcd and kube-apiserver (envtest's own
	// default of 20 s is too tight while a cold build runs next to the test).
	cpProcessStartTimeout = 90 * time.Second
	// cpProcessStopTimeout bounds each process's graceful stop before envtest sends SIGKILL.
	cpProcessStopTimeout = 30 * time.Second
	// cpCRDTimeout bounds the wait for the Istio CRDs to be established and served.
	cpCRDTimeout = 60 * time.Second
	// cpGoListTimeout bounds `go list -m` and `install.sh path`, which only read local files.
	cpGoListTimeout = 2 * time.Minute
	// cpDefaultCallTimeout bounds API calls and kubectl runs whose context carries no deadline.
	cpDefaultCallTimeout = 60 * time.Second
	// cpDefaultWebhookWait bounds WaitForWebhook when its context carries no deadline.
	cpDefaultWebhookWait = 30 * time.Second
	// cpPollInterval is how often readiness conditions are re-checked.
	cpPollInterval = 100 * time.Millisecond
)

// cpAdminUser is the identity the kubeconfig and the REST config authenticate as. It is a member
// of system:masters so tests never depend on RBAC objects.
const cpAdminUser = "meshguard-admin"

// ControlPlane is a running kube-apiserver + etcd with the Istio CRDs installed. Create it with
// StartControlPlane; it stops itself in t.Cleanup.
type ControlPlane struct {
	env            *envtest.Environment
	cfg            *rest.Config
	kube           kubernetes.Interface
	istio          istioclient.Interface
	kubectlPath    string
	workDir        string // holds the kubeconfig and kubectl's discovery cache
	kubeconfigPath string
	startup        time.Duration
	proxy          *serviceProxy // carries service-referenced webhook calls to loopback (RouteService)

	stopOnce sync.Once
	stopErr  error
	stopped  chan struct{} // closed once Stop has run
}

// WebhookOptions describes the ValidatingWebhookConfiguration RegisterValidatingWebhook creates.
type WebhookOptions struct {
	// Name is both the configuration's object name and the webhook's name. The API server requires
	// a fully qualified name with at least three segments, e.g. "validate.meshguard.io".
	Name string
	// URL is where the API server sends AdmissionReviews, e.g. https://127.0.0.1:PORT/validate.
	URL string
	// CABundle is the PEM CA the API server uses to verify the webhook server's certificate
	// (GenerateServingCert returns one).
	CABundle []byte
	// FailurePolicy defaults to Fail, so a broken webhook shows up as a failed request.
	FailurePolicy admissionregistrationv1.FailurePolicyType
	// TimeoutSeconds defaults to 10 (the API server allows 1 to 30).
	TimeoutSeconds int32
	// NamespaceSelector limits the webhook to matching namespaces; nil matches all of them.
	NamespaceSelector *metav1.LabelSelector
	// Rules defaults to IstioWebhookRules().
	Rules []admissionregistrationv1.RuleWithOperations
}

// IstioWebhookRules are the resources meshguard validates, in every version the Istio CRDs serve.
func IstioWebhookRules() []admissionregistrationv1.RuleWithOperations {
	ops := []admissionregistrationv1.OperationType{
		admissionregistrationv1.Create,
		admissionregistrationv1.Update,
		admissionregistrationv1.Delete,
	}
	rule := func(group string, versions, resources []string) admissionregistrationv1.RuleWithOperations {
		scope := admissionregistrationv1.NamespacedScope
		return admissionregistrationv1.RuleWithOperations{
			Operations: ops,
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{group},
				APIVersions: versions,
				Resources:   resources,
				Scope:       &scope,
			},
		}
	}
	return []admissionregistrationv1.RuleWithOperations{
		rule("networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, []string{"virtualservices", "destinationrules"}),
		rule("security.istio.io", []string{"v1", "v1beta1"}, []string{"peerauthentications", "authorizationpolicies"}),
		rule("telemetry.istio.io", []string{"v1", "v1alpha1"}, []string{"telemetries"}),
	}
}

// StartControlPlane starts etcd and kube-apiserver, installs the Istio CRDs and waits until they
// are established, and writes an admin kubeconfig. Binaries come from TEST_ASSET_KUBE_APISERVER /
// TEST_ASSET_ETCD, else KUBEBUILDER_ASSETS, else `test/tools/install.sh path ...` in the module
// root; envtest never downloads anything. The plane is stopped in t.Cleanup (see Stop).
func StartControlPlane(t testing.TB) *ControlPlane {
	t.Helper()
	began := time.Now()

	root, err := cpModuleRoot()
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	apiserverPath, err := cpBinary(root, "kube-apiserver")
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	etcdPath, err := cpBinary(root, "etcd")
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	kubectlPath, err := cpKubectl()
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	crdFile, err := cpIstioCRDFile(root)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	resolved := time.Since(began)

	workDir, err := os.MkdirTemp("", "meshguard-controlplane-")
	if err != nil {
		t.Fatalf("control plane: creating work dir: %v", err)
	}
	cp := &ControlPlane{
		env: &envtest.Environment{
			ControlPlane: envtest.ControlPlane{
				APIServer:   &envtest.APIServer{Path: apiserverPath},
				Etcd:        &envtest.Etcd{Path: etcdPath},
				KubectlPath: kubectlPath,
			},
			DownloadBinaryAssets:     false,
			ControlPlaneStartTimeout: cpDurationFromEnv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", cpProcessStartTimeout),
			ControlPlaneStopTimeout:  cpDurationFromEnv("KUBEBUILDER_CONTROLPLANE_STOP_TIMEOUT", cpProcessStopTimeout),
		},
		kubectlPath: kubectlPath,
		workDir:     workDir,
		stopped:     make(chan struct{}),
	}
	if cp.proxy, err = startServiceProxy(filepath.Join(workDir, "egress.sock")); err != nil {
		t.Fatalf("control plane: %v", err)
	}
	egress, err := writeEgressConfig(workDir, cp.proxy.addr())
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	cp.env.ControlPlane.APIServer.Configure().Set("egress-selector-config-file", egress)
	// Registered before Start so a plane that fails half way (processes up, CRDs broken) is still
	// torn down; Stop copes with a partially started environment.
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("control plane: stop: %v", err)
		}
	})

	if _, err := cp.env.Start(); err != nil {
		t.Fatalf("control plane: starting envtest (kube-apiserver %s, etcd %s): %v", apiserverPath, etcdPath, err)
	}
	processesUp := time.Since(began)

	// Installed here rather than through envtest.Environment so the startup log can tell the
	// processes' time from the CRDs'. InstallCRDs waits until discovery serves every resource.
	crds, err := envtest.InstallCRDs(cp.env.Config, envtest.CRDInstallOptions{
		Paths:              []string{crdFile},
		ErrorIfPathMissing: true,
		MaxTime:            cpCRDTimeout,
		PollInterval:       cpPollInterval,
	})
	if err != nil {
		t.Fatalf("control plane: installing Istio CRDs from %s: %v", crdFile, err)
	}
	if err := cpWaitEstablished(cp.env.Config, crds); err != nil {
		t.Fatalf("control plane: %v", err)
	}
	crdsUp := time.Since(began)

	// A user of our own rather than envtest's internal "admin", so the REST config and the
	// kubeconfig file we hand out are the same, known identity.
	user, err := cp.env.AddUser(envtest.User{Name: cpAdminUser, Groups: []string{"system:masters"}},
		&rest.Config{QPS: 1000, Burst: 2000}) // the test API server is ours alone; never throttle
	if err != nil {
		t.Fatalf("control plane: adding user %s: %v", cpAdminUser, err)
	}
	cp.cfg = user.Config()
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("control plane: rendering kubeconfig for %s: %v", cpAdminUser, err)
	}
	cp.kubeconfigPath = filepath.Join(workDir, "kubeconfig")
	if err := os.WriteFile(cp.kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatalf("control plane: writing kubeconfig: %v", err)
	}
	if cp.kube, err = kubernetes.NewForConfig(cp.Config()); err != nil {
		t.Fatalf("control plane: kubernetes clientset: %v", err)
	}
	if cp.istio, err = istioclient.NewForConfig(cp.Config()); err != nil {
		t.Fatalf("control plane: istio clientset: %v", err)
	}

	cp.startup = time.Since(began)
	t.Logf("control plane ready at %s in %s (at %s binaries and CRD file resolved, at %s etcd and kube-apiserver serving, at %s %d Istio CRDs established)",
		cp.cfg.Host, cp.startup.Round(time.Millisecond), resolved.Round(time.Millisecond),
		processesUp.Round(time.Millisecond), crdsUp.Round(time.Millisecond), len(crds))
	return cp
}

// Stop stops kube-apiserver, then etcd, and removes the kubeconfig. It is idempotent and safe to
// call before t.Cleanup does: a test that runs a webhook server must stop that server first
// (its certificate watcher breaks if directories vanish under it), so it calls Stop itself
// afterwards, or relies on t.Cleanup's last-in-first-out order.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() {
		defer close(cp.stopped)
		var errs []error
		if err := cp.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping kube-apiserver and etcd: %w", err))
		}
		if cp.proxy != nil {
			cp.proxy.close()
		}
		if err := os.RemoveAll(cp.workDir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", cp.workDir, err))
		}
		cp.stopErr = errors.Join(errs...)
	})
	return cp.stopErr
}

// Stopped reports whether Stop has run.
func (cp *ControlPlane) Stopped() bool {
	select {
	case <-cp.stopped:
		return true
	default:
		return false
	}
}

// StartupDuration is how long StartControlPlane took, from resolving binaries to a usable plane.
func (cp *ControlPlane) StartupDuration() time.Duration { return cp.startup }

// Config returns a copy of the admin REST config, so callers may tune it freely.
func (cp *ControlPlane) Config() *rest.Config { return rest.CopyConfig(cp.cfg) }

// KubeconfigPath is a kubeconfig file for the admin user (system:masters).
func (cp *ControlPlane) KubeconfigPath() string { return cp.kubeconfigPath }

// Kube is a Kubernetes clientset authenticated as the admin user.
func (cp *ControlPlane) Kube() kubernetes.Interface { return cp.kube }

// Istio is an istio.io/client-go clientset authenticated as the admin user.
func (cp *ControlPlane) Istio() istioclient.Interface { return cp.istio }

// Kubectl runs the machine's kubectl against this plane as the admin user, with stdin (may be
// nil) as its standard input. err is non-nil when kubectl exits non-zero and then includes
// stderr, so callers can both report it and assert on the returned stderr. A context without a
// deadline is bounded by a minute.
func (cp *ControlPlane) Kubectl(ctx context.Context, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := cpBounded(ctx, cpDefaultCallTimeout)
	defer cancel()
	full := append([]string{
		"--kubeconfig=" + cp.kubeconfigPath,
		// A per-plane discovery cache: each plane has a new port, and a shared ~/.kube/cache
		// would only grow and could serve another plane's stale discovery.
		"--cache-dir=" + filepath.Join(cp.workDir, "kubectl-cache"),
	}, args...)
	cmd := exec.CommandContext(ctx, cp.kubectlPath, full...)
	cmd.Stdin = stdin
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// Don't let a leftover child holding the pipes keep us waiting after kubectl is killed.
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	stdout, stderr = out.String(), errOut.String()
	if runErr != nil {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("%w (%w)", runErr, ctx.Err())
		}
		return stdout, stderr, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), runErr, strings.TrimSpace(stderr))
	}
	return stdout, stderr, nil
}

// CreateNamespace creates a namespace with the given labels. It is not deleted afterwards: envtest
// runs no namespace controller, so a deleted namespace would only sit in Terminating; the whole
// plane goes away with the test instead.
func (cp *ControlPlane) CreateNamespace(t testing.TB, name string, labels map[string]string) *corev1.Namespace {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cpDefaultCallTimeout)
	defer cancel()
	ns, err := cp.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return ns
}

// RegisterValidatingWebhook creates a ValidatingWebhookConfiguration sending the Istio resources
// of opts.Rules (default IstioWebhookRules) to opts.URL, and deletes it in t.Cleanup unless the
// plane has been stopped by then. The API server picks new configurations up asynchronously, so
// wait with WaitForWebhook before relying on it.
func (cp *ControlPlane) RegisterValidatingWebhook(t testing.TB, opts WebhookOptions) *admissionregistrationv1.ValidatingWebhookConfiguration {
	t.Helper()
	if opts.Name == "" || opts.URL == "" || len(opts.CABundle) == 0 {
		t.Fatalf("RegisterValidatingWebhook: Name, URL and CABundle are required (got name %q, url %q, %d bytes of CA)",
			opts.Name, opts.URL, len(opts.CABundle))
	}
	failurePolicy := opts.FailurePolicy
	if failurePolicy == "" {
		failurePolicy = admissionregistrationv1.Fail
	}
	timeout := opts.TimeoutSeconds
	if timeout == 0 {
		timeout = 10
	}
	rules := opts.Rules
	if rules == nil {
		rules = IstioWebhookRules()
	}
	sideEffects := admissionregistrationv1.SideEffectClassNone
	// Equivalent: a request in a version the rules don't list (a future v2) is converted and
	// still validated instead of slipping past the guard.
	matchPolicy := admissionregistrationv1.Equivalent
	url := opts.URL
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: opts.Name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: opts.Name,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				URL:      &url,
				CABundle: opts.CABundle,
			},
			Rules:                   rules,
			FailurePolicy:           &failurePolicy,
			MatchPolicy:             &matchPolicy,
			NamespaceSelector:       opts.NamespaceSelector,
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), cpDefaultCallTimeout)
	defer cancel()
	created, err := cp.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating ValidatingWebhookConfiguration %s: %v", opts.Name, err)
	}
	t.Cleanup(func() {
		if cp.Stopped() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), cpDefaultCallTimeout)
		defer cancel()
		err := cp.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, opts.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting ValidatingWebhookConfiguration %s: %v", opts.Name, err)
		}
	})
	return created
}

// SetWebhookCABundle replaces the caBundle of every webhook in the named configuration, as a CA
// injector would after a CA rotation. Like creation, the API server applies it asynchronously.
func (cp *ControlPlane) SetWebhookCABundle(t testing.TB, name string, caPEM []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cpDefaultCallTimeout)
	defer cancel()
	client := cp.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	// Get-modify-update retried on conflict: nothing else writes it in tests, but be exact anyway.
	for {
		vwc, err := client.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("getting ValidatingWebhookConfiguration %s: %v", name, err)
		}
		for i := range vwc.Webhooks {
			vwc.Webhooks[i].ClientConfig.CABundle = caPEM
		}
		_, err = client.Update(ctx, vwc, metav1.UpdateOptions{})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) || ctx.Err() != nil {
			t.Fatalf("updating caBundle of ValidatingWebhookConfiguration %s: %v", name, err)
		}
	}
}

// WaitForWebhook calls probe every 100 ms until it returns nil, and returns the last probe error
// if ctx ends first (a context without a deadline is bounded by 30 s). A typical probe sends a
// server-side dry-run of an object the webhook must deny and checks the denial message: dry-runs
// reach webhooks with sideEffects None and leave nothing behind.
func (cp *ControlPlane) WaitForWebhook(ctx context.Context, probe func(ctx context.Context) error) error {
	ctx, cancel := cpBounded(ctx, cpDefaultWebhookWait)
	defer cancel()
	ticker := time.NewTicker(cpPollInterval)
	defer ticker.Stop()
	var last error
	for attempts := 1; ; attempts++ {
		if last = probe(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("webhook not effective after %d probes: %w (last probe: %w)", attempts, ctx.Err(), last)
		case <-ticker.C:
		}
	}
}

// GenerateServingCert creates a self-signed CA and a serving certificate it signs for hosts
// (default 127.0.0.1, ::1 and localhost), writes tls.crt and tls.key (what controller-runtime's
// webhook server reads) plus ca.crt and ca.key (for RotateServingCert) into dir, and returns the
// CA in PEM for a webhook's caBundle. Files are replaced atomically, so calling it again on a
// served dir is a CA rotation.
func GenerateServingCert(t testing.TB, dir string, hosts ...string) (caPEM []byte) {
	t.Helper()
	caCert, caKey, err := cpNewCA()
	if err != nil {
		t.Fatalf("generating CA: %v", err)
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		t.Fatalf("encoding CA key: %v", err)
	}
	if err := cpWriteFileAtomic(filepath.Join(dir, "ca.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKeyDER}), 0o600); err != nil {
		t.Fatalf("writing CA key: %v", err)
	}
	if err := cpWriteFileAtomic(filepath.Join(dir, "ca.crt"), caPEM, 0o644); err != nil {
		t.Fatalf("writing CA certificate: %v", err)
	}
	if err := cpIssueServingCert(dir, caCert, caKey, hosts); err != nil {
		t.Fatalf("issuing serving certificate in %s: %v", dir, err)
	}
	return caPEM
}

// RotateServingCert issues a new serving certificate and key (new key pair, new serial) from the
// CA GenerateServingCert left in dir and atomically replaces tls.crt and tls.key. The CA is
// unchanged, so webhook configurations stay valid; it is returned for convenience. The key is
// replaced before the certificate, so a watcher may briefly see a mismatched pair and must keep
// serving the old one until the pair matches again (controller-runtime's certwatcher does).
func RotateServingCert(t testing.TB, dir string, hosts ...string) (caPEM []byte) {
	t.Helper()
	caCert, caKey, caPEM, err := cpLoadCA(dir)
	if err != nil {
		t.Fatalf("rotating serving certificate: %v (call GenerateServingCert on %s first)", err, dir)
	}
	if err := cpIssueServingCert(dir, caCert, caKey, hosts); err != nil {
		t.Fatalf("issuing serving certificate in %s: %v", dir, err)
	}
	return caPEM
}

// cpModuleRoot walks up from the working directory (a package directory under `go test`) to the
// directory holding go.mod.
func cpModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding module root: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod in %s or any parent directory", wd)
		}
	}
}

// cpBinary resolves a control-plane binary the way envtest would (TEST_ASSET_<NAME>, then
// KUBEBUILDER_ASSETS), falling back to the path the project's installer builds it at, and checks
// that it is there: envtest itself would only fail later with a less helpful exec error.
func cpBinary(root, name string) (string, error) {
	envVar := "TEST_ASSET_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	var path, source string
	if p, ok := os.LookupEnv(envVar); ok && p != "" {
		path, source = p, envVar
	} else if dir, ok := os.LookupEnv("KUBEBUILDER_ASSETS"); ok && dir != "" {
		path, source = filepath.Join(dir, name), "KUBEBUILDER_ASSETS"
	} else {
		installer := filepath.Join(root, "test", "tools", "install.sh")
		ctx, cancel := context.WithTimeout(context.Background(), cpGoListTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "bash", installer, "path", name).Output()
		if err != nil {
			return "", fmt.Errorf("asking %s for the %s path: %w%s (run `make tools`, or set %s)",
				installer, name, err, cpExitStderr(err), envVar)
		}
		path, source = strings.TrimSpace(string(out)), installer+" path "+name
	}
	info, err := os.Stat(path)
	if err != nil || info.IsDir() || info.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s binary not found or not executable at %s (from %s): run `make tools` to build it "+
			"(test/tools/install.sh; kube-apiserver takes ~20 minutes cold), or set %s", name, path, source, envVar)
	}
	return path, nil
}

// cpKubectl finds the kubectl the tests drive: TEST_ASSET_KUBECTL (envtest's convention), else PATH.
func cpKubectl() (string, error) {
	if p := os.Getenv("TEST_ASSET_KUBECTL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("kubectl from TEST_ASSET_KUBECTL: %w", err)
		}
		return p, nil
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		return "", fmt.Errorf("kubectl not on PATH (install it, or set TEST_ASSET_KUBECTL): %w", err)
	}
	return p, nil
}

// cpIstioCRDFile locates the CRDs of the istio.io/api version go.mod pins, so the API server
// validates against exactly the schemas the project compiles against.
func cpIstioCRDFile(root string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cpGoListTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating istio.io/api with `go list -m` in %s: %w%s", root, err, cpExitStderr(err))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("`go list -m` printed no directory for istio.io/api (module not downloaded? run `go mod download istio.io/api` in %s)", root)
	}
	file := filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml")
	if _, err := os.Stat(file); err != nil {
		return "", fmt.Errorf("istio CRDs: %w", err)
	}
	return file, nil
}

// cpWaitEstablished waits for every CRD's Established and NamesAccepted conditions. envtest only
// waits for discovery to list the resources; a CRD can be discoverable a moment before its
// storage accepts writes, which shows up as sporadic 404s on the first apply.
func cpWaitEstablished(cfg *rest.Config, crds []*apiextensionsv1.CustomResourceDefinition) error {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("apiextensions clientset: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cpCRDTimeout)
	defer cancel()
	ticker := time.NewTicker(cpPollInterval)
	defer ticker.Stop()
	pending := make(map[string]bool, len(crds))
	for _, crd := range crds {
		pending[crd.Name] = true
	}
	var lastErr error
	for {
		for name := range pending {
			got, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				lastErr = fmt.Errorf("getting CRD %s: %w", name, err)
				continue
			}
			if cpCRDCondition(got, apiextensionsv1.Established) && cpCRDCondition(got, apiextensionsv1.NamesAccepted) {
				delete(pending, name)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			names := make([]string, 0, len(pending))
			for name := range pending {
				names = append(names, name)
			}
			return fmt.Errorf("CRDs not established within %s: %s (last error: %v)", cpCRDTimeout, strings.Join(names, ", "), lastErr)
		case <-ticker.C:
		}
	}
}

func cpCRDCondition(crd *apiextensionsv1.CustomResourceDefinition, cond apiextensionsv1.CustomResourceDefinitionConditionType) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == cond {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

// cpBounded gives ctx a deadline of d unless it already has one.
func cpBounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// cpDurationFromEnv lets the envtest variables (KUBEBUILDER_CONTROLPLANE_*_TIMEOUT) keep working:
// envtest only reads them when the field is left zero.
func cpDurationFromEnv(envVar string, fallback time.Duration) time.Duration {
	if os.Getenv(envVar) != "" {
		return 0
	}
	return fallback
}

// cpExitStderr renders the stderr an *exec.ExitError captured, for error messages.
func cpExitStderr(err error) string {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && len(bytes.TrimSpace(exitErr.Stderr)) > 0 {
		return ": " + strings.TrimSpace(string(exitErr.Stderr))
	}
	return ""
}

// cpCertValidity is long enough for any test run and short enough that a leaked key is useless.
const cpCertValidity = 24 * time.Hour

func cpNewCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	serial, err := cpSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "meshguard test CA", Organization: []string{"meshguard"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew between processes
		NotAfter:              now.Add(cpCertValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signing CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing CA: %w", err)
	}
	return cert, key, nil
}

// cpIssueServingCert writes a fresh key and a certificate for hosts signed by the CA into dir,
// key first (see RotateServingCert).
func cpIssueServingCert(dir string, caCert *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string) error {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "::1", "localhost"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("serving key: %w", err)
	}
	serial, err := cpSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"meshguard"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(cpCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	// Go (and so kube-apiserver) verifies names only against SANs, never the common name.
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("signing serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding serving key: %w", err)
	}
	if err := cpWriteFileAtomic(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return cpWriteFileAtomic(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func cpLoadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading CA key: %w", err)
	}
	certBlock, _ := pem.Decode(caPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return nil, nil, nil, fmt.Errorf("CA files in %s are not PEM", dir)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parsing CA key: %w", err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, nil, fmt.Errorf("CA key in %s is %T, want ECDSA", dir, parsed)
	}
	return cert, key, caPEM, nil
}

func cpSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return serial, nil
}

// cpWriteFileAtomic writes through a temporary file and a rename, so a watcher never reads a
// half-written file.
func cpWriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
