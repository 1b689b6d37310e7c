package checkd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/internal/config"
)

// Election is the checker replicas' leader election on a coordination.k8s.io Lease, run by
// client-go's leaderelection.
type Election struct {
	cfg    leaderelection.LeaderElectionConfig
	logger *slog.Logger
	// current is the elector of the running campaign.
	current atomic.Pointer[leaderelection.LeaderElector]
}

// valid tells whether the last Lease record this replica saw names it and was renewed within
// the lease duration. A leader that was paused (a stopped process, a frozen node) goes on
// believing it leads until its renewal gives up, up to renewDeadline later; it must not send
// meanwhile, since a successor may already lead.
func (e *Election) valid() bool {
	le := e.current.Load()
	return le != nil && le.IsLeader() && le.Check(0) == nil
}

// NewElection prepares the election on the Lease that le names (namespace: le's, else
// namespace). The identity is $POD_NAME, else the host name with a random suffix. interval is
// the check interval: a successor must take over before the leader's last alerts expire in
// Alertmanager, so the lease has to be shorter than their validity.
func NewElection(rc *rest.Config, le config.LeaderElection, namespace string, interval time.Duration, logger *slog.Logger) (*Election, error) {
	if le.LeaseNamespace != "" {
		namespace = le.LeaseNamespace
	}
	if namespace == "" {
		return nil, fmt.Errorf("check.leaderElection: no namespace for Lease %s: set leaseNamespace or $POD_NAMESPACE", le.LeaseName)
	}
	if valid := alerting.AlertValidity(interval); le.LeaseDuration.Duration+le.RetryPeriod.Duration >= valid {
		return nil, fmt.Errorf("check.leaderElection: leaseDuration + retryPeriod (%s) must be below the %s a firing alert stays valid (4 × check.interval), "+
			"or a dead leader's alerts resolve before a successor takes over", le.LeaseDuration.Duration+le.RetryPeriod.Duration, valid)
	}
	id := os.Getenv("POD_NAME")
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("leader election identity: %w", err)
		}
		id = host + "_" + string(uuid.NewUUID())
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	e := &Election{logger: logger.With("lease", namespace+"/"+le.LeaseName, "identity", id), cfg: leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: le.LeaseName, Namespace: namespace},
			Client:     kube.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		},
		LeaseDuration: le.LeaseDuration.Duration,
		RenewDeadline: le.RenewDeadline.Duration,
		RetryPeriod:   le.RetryPeriod.Duration,
		// A replica that shuts down hands over at once instead of after LeaseDuration.
		ReleaseOnCancel: true,
		Name:            le.LeaseName,
	}}
	// client-go checks the durations when an elector is made: do it now, as a usage error.
	check := e.cfg
	check.Callbacks = leaderelection.LeaderCallbacks{OnStartedLeading: func(context.Context) {}, OnStoppedLeading: func() {}}
	if _, err := leaderelection.NewLeaderElector(check); err != nil {
		return nil, fmt.Errorf("check.leaderElection: %w", err)
	}
	return e, nil
}

// run campaigns until ctx ends, again after each lost leadership, and calls leading with each
// change. When ctx ends while leading, the Lease is released.
func (e *Election) run(ctx context.Context, leading func(bool)) {
	for ctx.Err() == nil {
		cfg := e.cfg
		cfg.Callbacks = leaderelection.LeaderCallbacks{
			// client-go calls OnStartedLeading in a goroutine that may run after the term
			// ended: a term already over is not reported, and its end is reported after it.
			OnStartedLeading: func(term context.Context) {
				if term.Err() != nil {
					return
				}
				e.logger.Info("leading: this replica sends the alerts")
				leading(true)
				<-term.Done()
				leading(false)
			},
			OnStoppedLeading: func() { leading(false) },
			OnNewLeader: func(id string) {
				e.logger.Info("leader elected", "leader", id)
			},
		}
		le, err := leaderelection.NewLeaderElector(cfg)
		if err != nil {
			// The configuration was checked in NewElection; nothing here can change it.
			e.logger.Error("leader election", "err", err)
			return
		}
		e.current.Store(le)
		le.Run(ctx)
	}
}
