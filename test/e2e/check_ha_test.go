package e2e

// The checker in high availability (two replicas electing a leader on a Lease in a real
// kube-apiserver) and `check --once` with Alertmanagers: real Prometheus, two real
// Alertmanagers, a webhook receiver, and the meshguard binary.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// Timing of the HA test. A firing alert is valid 4 intervals (24 s) after its last send; a dead
// leader is replaced within leaseDuration + retryPeriod (6 s) plus a cycle. The margin between
// the two is wide enough for a loaded 2-core machine. A renewal may take up to renewDeadline
// (3 s) before the leader gives up; a leader that flaps re-acquires its own Lease at once.
const (
	haInterval      = 6 * time.Second
	haLeaseDuration = 5 * time.Second
	haRenewDeadline = 3 * time.Second
	haRetryPeriod   = time.Second
	haNamespace     = "meshguard-system"
	haLease         = "meshguard-checker"
)

// haChecker is one replica: the meshguard binary with its own identity and port.
type haChecker struct {
	name string
	proc *harness.Process
	base string
}

func haStartChecker(t *testing.T, bin, name, kubeconfig, configPath string, common []string) *haChecker {
	t.Helper()
	port := harness.FreePort(t)
	c := &haChecker{name: name, base: "http://127.0.0.1:" + strconv.Itoa(port)}
	// env sets the Pod identity and the cluster for the Lease, then execs meshguard (same pid).
	args := append([]string{"POD_NAME=" + name, "KUBECONFIG=" + kubeconfig, bin, "check", "--config", configPath,
		"--listen-address", "127.0.0.1:" + strconv.Itoa(port), "--checker-namespace", haNamespace}, common...)
	c.proc = harness.StartProcess(t, name, "/usr/bin/env", args...)
	require.NoError(t, c.proc.WaitHTTP(context.Background(), c.base+"/healthz"))
	return c
}

// metric sums the samples of a metric on the replica's /metrics (0 when absent).
func (c *haChecker) metric(t *testing.T, name string) float64 {
	t.Helper()
	total := 0.0
	sc := bufio.NewScanner(strings.NewReader(checkGet(t, c.base+"/metrics")))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		require.NoError(t, err, line)
		total += v
	}
	return total
}

// haHolder returns the Lease's holder ("" when none holds it).
func haHolder(t *testing.T, cp *harness.ControlPlane) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := cp.Kube().CoordinationV1().Leases(haNamespace).Get(ctx, haLease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// notifications counts the receiver's notifications of alerts with labels, by Alertmanager and
// status ("<external URL> firing").
func notifications(r *harness.AlertReceiver, labels map[string]string) map[string]int {
	out := map[string]int{}
	for _, m := range r.Messages() {
		for _, a := range m.Alerts {
			if a.Matches("", labels) {
				out[m.ExternalURL+" "+a.Status]++
			}
		}
	}
	return out
}

// TestCheckHA runs two checkers electing a leader and kills the leader mid-incident: the
// follower takes over; no alert is lost (each keeps its start time in both Alertmanagers and
// is never resolved), none is notified twice, and the new leader resolves what clears.
func TestCheckHA(t *testing.T) {
	bin := meshguardBinary(t)
	cp := harness.StartControlPlane(t)
	cp.CreateNamespace(t, haNamespace, nil)
	plain := meshsim.Flow{Source: checkLegacy, Destination: meshsim.Workload{Name: "api-v1", Namespace: "strict", App: "api"}, Rate: 5, Plaintext: true}
	stormy := meshsim.Flow{Source: checkFrontend, Destination: checkBackend, Rate: 10, RetryShare: 0.3}
	st := checkStartStack(t, 2, plain, stormy)
	cfg := filepath.Join(t.TempDir(), "meshguard.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `check:
  leaderElection: {enabled: true, leaseName: %s, leaseNamespace: %s, leaseDuration: %s, renewDeadline: %s, retryPeriod: %s}
`, haLease, haNamespace, haLeaseDuration, haRenewDeadline, haRetryPeriod), 0o644))
	common := []string{"--prometheus-url", st.prom.URL(), "--config-from", checkConfigDir(t, checkMeshStrictPA),
		"--alertmanager-url", st.ams[0].URL(), "--alertmanager-url", st.ams[1].URL(),
		"--interval", haInterval.String(), "--window", checkWindow.String(), "--log-level", "debug"}
	replicas := map[string]*haChecker{}
	for _, name := range []string{"checker-a", "checker-b"} {
		replicas[name] = haStartChecker(t, bin, name, cp.KubeconfigPath(), cfg, common)
	}

	var leader, follower *haChecker
	require.Eventually(t, func() bool {
		l, ok := replicas[haHolder(t, cp)]
		if ok {
			leader = l
		}
		return ok
	}, checkFireWait, checkPoll, "a replica takes the Lease")
	for _, r := range replicas {
		if r != leader {
			follower = r
		}
	}
	t.Logf("leader %s, follower %s", leader.name, follower.name)

	plainLabels := checkLabels("alertname", checks.AlertPlaintextTraffic, "namespace", "strict")
	stormLabels := checkLabels("alertname", checks.AlertRetryStorm, "namespace", "storm")
	starts := map[string]time.Time{}
	for _, labels := range []map[string]string{plainLabels, stormLabels} {
		checkAwaitActive(t, st.ams, labels, checkFireWait)
		for _, am := range st.ams {
			starts[am.URL()+labels["alertname"]] = checkStartsAt(checkActiveAlerts(t, am, labels)[0])
		}
	}
	require.Eventually(t, func() bool { return follower.metric(t, "meshguard_check_alerts_firing") >= 2 },
		checkFireWait, checkPoll, "the follower evaluates too")
	require.Equal(t, 1.0, leader.metric(t, "meshguard_check_leader"))
	require.Equal(t, 0.0, follower.metric(t, "meshguard_check_leader"))
	require.Zero(t, follower.metric(t, "meshguard_check_alertmanager_alerts_sent_total"), "only the leader sends")
	require.Contains(t, checkGet(t, follower.base+"/readyz"), "ready", "a follower that checks is ready")

	// The leader dies without a word: no Lease release, no flush.
	killed := time.Now()
	require.NoError(t, syscall.Kill(leader.proc.Pid(), syscall.SIGKILL))
	<-leader.proc.Exited()
	// What Alertmanager holds now expires unless the successor re-sends in time.
	lastEnds := map[string]time.Time{}
	for _, am := range st.ams {
		for _, labels := range []map[string]string{plainLabels, stormLabels} {
			lastEnds[am.URL()+labels["alertname"]] = checkDateTime(checkActiveAlerts(t, am, labels)[0].EndsAt)
		}
	}
	require.Eventually(t, func() bool { return haHolder(t, cp) == follower.name }, checkFireWait, checkPoll, "the follower takes the Lease")
	tookLease := time.Since(killed)
	require.Eventually(t, func() bool { return follower.metric(t, "meshguard_check_alertmanager_alerts_sent_total") > 0 },
		checkFireWait, checkPoll, "the new leader sends")
	firstSend := time.Since(killed)
	require.True(t, follower.proc.LogContains("read back firing alerts from Alertmanager"), follower.proc.LogTail(30))

	// Wait until the dead leader's last sends would have expired, and the new leader's have
	// replaced them in both Alertmanagers.
	require.Eventually(t, func() bool {
		for _, am := range st.ams {
			for _, labels := range []map[string]string{plainLabels, stormLabels} {
				as := checkActiveAlerts(t, am, labels)
				if len(as) != 1 || !checkDateTime(as[0].EndsAt).After(lastEnds[am.URL()+labels["alertname"]]) {
					return false
				}
			}
		}
		for _, end := range lastEnds {
			if time.Now().Before(end.Add(2 * time.Second)) {
				return false
			}
		}
		return true
	}, 2*checkFireWait, checkPoll, "the new leader keeps every alert alive past the old one's validity")
	for _, am := range st.ams {
		for _, labels := range []map[string]string{plainLabels, stormLabels} {
			as := checkActiveAlerts(t, am, labels)
			require.Len(t, as, 1)
			require.True(t, starts[am.URL()+labels["alertname"]].Equal(checkStartsAt(as[0])),
				"%s in %s keeps its start time across the takeover", labels["alertname"], am.URL())
		}
	}
	for _, labels := range []map[string]string{plainLabels, stormLabels} {
		n := notifications(st.receiver, labels)
		require.Len(t, n, 2, "%v: one firing notification from each Alertmanager, and no resolution: %v", labels, n)
		for k, v := range n {
			require.True(t, strings.HasSuffix(k, " firing"), "%v: %s", labels, k)
			require.Equal(t, 1, v, "%v: %s notified once", labels, k)
		}
	}

	// The storm stops: the new leader resolves it, once in each Alertmanager.
	require.NoError(t, st.exporter.Update(stormy.Key(), func(f *meshsim.Flow) { f.RetryShare = 0 }))
	require.Eventually(t, func() bool {
		for _, am := range st.ams {
			if len(checkActiveAlerts(t, am, stormLabels)) != 0 {
				return false
			}
		}
		n := notifications(st.receiver, stormLabels)
		return len(n) == 4
	}, checkResolveWait, checkPoll, "the storm resolves in both Alertmanagers: %v", notifications(st.receiver, stormLabels))
	for k, v := range notifications(st.receiver, stormLabels) {
		require.Equal(t, 1, v, k)
	}
	require.Len(t, checkActiveAlerts(t, st.ams[0], plainLabels), 1, "the plaintext alert still fires")
	require.Empty(t, st.receiver.Alerts(harness.AlertResolved, plainLabels), "no spurious resolution")

	// The dead replica comes back as a follower; the leader then stops cleanly and hands over
	// at once by releasing the Lease.
	require.NoError(t, leader.proc.Start())
	require.NoError(t, leader.proc.WaitHTTP(context.Background(), leader.base+"/healthz"))
	require.Eventually(t, func() bool { return leader.metric(t, "meshguard_check_alerts_firing") >= 1 }, checkFireWait, checkPoll)
	require.Equal(t, 0.0, leader.metric(t, "meshguard_check_leader"), "the Lease stays with the live leader")
	stopped := time.Now()
	require.NoError(t, follower.proc.Stop())
	require.Eventually(t, func() bool { return haHolder(t, cp) == leader.name }, checkFireWait, checkPoll)
	handover := time.Since(stopped)
	require.Eventually(t, func() bool { return leader.metric(t, "meshguard_check_alertmanager_alerts_sent_total") > 0 }, checkFireWait, checkPoll)
	after := checkActiveAlerts(t, st.ams[1], plainLabels)
	require.Len(t, after, 1)
	require.True(t, starts[st.ams[1].URL()+checks.AlertPlaintextTraffic].Equal(checkStartsAt(after[0])))
	require.Empty(t, st.receiver.Alerts(harness.AlertResolved, plainLabels))

	// A leader that is frozen (SIGSTOP) past its lease is replaced; thawed, it learns it lost
	// the Lease and sends nothing in between, though its ticker fires at once.
	require.NoError(t, follower.proc.Start())
	require.NoError(t, follower.proc.WaitHTTP(context.Background(), follower.base+"/healthz"))
	frozen := leader
	require.Eventually(t, func() bool { return frozen.metric(t, "meshguard_check_alertmanager_alerts_sent_total") > 0 }, checkFireWait, checkPoll)
	require.NoError(t, syscall.Kill(frozen.proc.Pid(), syscall.SIGSTOP))
	// Its log is written unbuffered: what follows this offset comes after the thaw.
	st0, err := os.Stat(frozen.proc.LogPath())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return haHolder(t, cp) == follower.name }, checkFireWait, checkPoll, "the follower takes over from the frozen leader")
	require.Eventually(t, func() bool { return follower.metric(t, "meshguard_check_alertmanager_alerts_sent_total") > 0 }, checkFireWait, checkPoll)
	require.NoError(t, syscall.Kill(frozen.proc.Pid(), syscall.SIGCONT))
	cycle := regexp.MustCompile(`msg="check cycle" firing=\d+ sent=(\d+)`)
	var thawed string
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(frozen.proc.LogPath())
		require.NoError(t, err)
		thawed = string(b[st0.Size():])
		return frozen.metric(t, "meshguard_check_leader") == 0 && strings.Contains(thawed, "not leading any more") && cycle.MatchString(thawed)
	}, checkFireWait, checkPoll, "thawed, it follows")
	for _, m := range cycle.FindAllStringSubmatch(thawed, -1) {
		require.Equal(t, "0", m[1], "a stale leader sends nothing, not even in the cycle its thaw fires at once:\n%s", thawed)
	}
	after = checkActiveAlerts(t, st.ams[0], plainLabels)
	require.Len(t, after, 1)
	require.True(t, starts[st.ams[0].URL()+checks.AlertPlaintextTraffic].Equal(checkStartsAt(after[0])))
	require.Empty(t, st.receiver.Alerts(harness.AlertResolved, plainLabels))
	t.Logf("leader killed: Lease taken over after %s, first send by the new leader after %s (alerts valid %s); "+
		"clean stop: Lease handed over after %s", tookLease.Round(time.Millisecond), firstSend.Round(time.Millisecond),
		alerting.AlertValidity(haInterval), handover.Round(time.Millisecond))
}

// TestCheckOnceAlertmanagers: `check --once` given Alertmanagers resolves at once an alert a
// previous run left firing when its condition cleared, and raises MeshCheckerDegraded in both
// Alertmanagers when Prometheus is down.
func TestCheckOnceAlertmanagers(t *testing.T) {
	bin := meshguardBinary(t)
	plain := meshsim.Flow{Source: checkLegacy, Destination: meshsim.Workload{Name: "api-v1", Namespace: "strict", App: "api"}, Rate: 5, Plaintext: true}
	st := checkStartStack(t, 2, plain)
	// A 10 s interval keeps an alert of one run valid 40 s: the next run comes well before.
	common := []string{"--prometheus-url", st.prom.URL(), "--config-from", checkConfigDir(t, checkMeshStrictPA),
		"--window", checkWindow.String(), "--interval", "10s", "--checker-namespace", haNamespace}
	withAMs := append([]string{"check", "--once", "--alertmanager-url", st.ams[0].URL(), "--alertmanager-url", st.ams[1].URL()}, common...)
	plainLabels := checkLabels("alertname", checks.AlertPlaintextTraffic, "namespace", "strict")
	checkAwaitData(t, st.prom, `rate(istio_requests_total{destination_workload="api-v1"}[10s]) > 0`)

	_, stderr, code := checkRunCLI(t, bin, withAMs...)
	require.Equal(t, 1, code, stderr)
	firing := checkAwaitActive(t, st.ams, plainLabels, checkFireWait)
	firstEnds := checkDateTime(firing.EndsAt)

	t.Run("a run after the condition cleared resolves the old alert at once", func(t *testing.T) {
		require.NoError(t, st.exporter.Remove(plain.Key()))
		// Until the window has slid past the traffic, and Prometheus has run a window and an
		// interval (before that its data has a hole and nothing is resolved).
		require.Eventually(t, func() bool {
			_, _, code := checkRunCLI(t, bin, append([]string{"check", "--once"}, common...)...)
			return code == 0
		}, checkResolveWait, time.Second, "the condition clears")
		require.Eventually(t, func() bool {
			info, err := st.prom.API().Runtimeinfo(context.Background())
			return err == nil && time.Since(info.StartTime) > checkWindow+10*time.Second
		}, checkResolveWait, checkPoll)
		require.Len(t, checkActiveAlerts(t, st.ams[0], plainLabels), 1, "the first run's alert is still active (valid until %s)", firstEnds)

		ran := time.Now()
		_, stderr, code := checkRunCLI(t, bin, withAMs...)
		require.Equal(t, 0, code, stderr)
		for _, am := range st.ams {
			require.Empty(t, checkActiveAlerts(t, am, plainLabels), "resolved in %s as the run ends", am.URL())
		}
		resolved := st.receiver.WaitForAlert(t, harness.AlertResolved, plainLabels, checkFireWait)
		require.True(t, resolved.EndsAt.Before(firstEnds), "resolved by the run (%s), not expired (%s)", resolved.EndsAt, firstEnds)
		require.WithinDuration(t, ran, resolved.EndsAt, 5*time.Second)
		require.True(t, resolved.StartsAt.Equal(checkStartsAt(firing)), "the episode the first run raised")
	})

	t.Run("with Prometheus down it exits 2 and raises MeshCheckerDegraded in both Alertmanagers", func(t *testing.T) {
		require.NoError(t, st.prom.Stop())
		_, stderr, code := checkRunCLI(t, bin, withAMs...)
		require.Equal(t, 2, code, stderr)
		require.Contains(t, stderr, "cannot check")
		for _, am := range st.ams {
			as := checkActiveAlerts(t, am, checkLabels("alertname", checks.AlertCheckerDegraded))
			require.Len(t, as, 1, am.URL())
			require.Equal(t, haNamespace, as[0].Labels["namespace"])
			require.Contains(t, as[0].Annotations["description"], "plaintext_requests")
		}
	})
}
