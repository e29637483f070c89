package app

import (
	"slices"
	"time"
)

// operationCheckName is the check health.Checker names when a failed
// operation made a server unavailable.
const operationCheckName = "operation"

// initSeries creates at 0 the metric series that otherwise appear with
// their first event (a failure, a failover, a transition, a refused admin
// request, a failed reload), for every configured server and algorithm, so
// that alerts and rates can be written ahead of them.
func (a *App) initSeries() {
	for _, s := range a.Servers() {
		a.obs.ops.InitServer(s.Name)
		a.obs.checks.InitTransitions(s.Name, operationCheckName)
	}
	for _, alg := range a.algorithms() {
		a.obs.ops.InitAlgorithm(alg.name, alg.servers)
	}
	for _, result := range []string{"success", "failure"} {
		a.obs.reloads.WithLabelValues(result)
	}
	for _, reason := range []string{"token", "cross-origin"} {
		a.obs.adminRefused.WithLabelValues(reason)
	}
}

// forgetAlgorithmsLater drops the series of the algorithms in before that
// the configuration no longer uses, and the selections of servers an
// algorithm no longer places operations on, once the operations the old
// router placed had time to end (as drain does for servers).
func (a *App) forgetAlgorithmsLater(before []algorithmInfo, timeout time.Duration) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		wait := time.NewTimer(drainSettle + timeout)
		defer wait.Stop()
		select {
		case <-a.rl.ctx.Done():
			return
		case <-wait.C:
		}
		a.forgetAlgorithms(before)
	}()
}

func (a *App) forgetAlgorithms(before []algorithmInfo) {
	now := a.algorithms()
	for _, old := range before {
		i := slices.IndexFunc(now, func(alg algorithmInfo) bool { return alg.name == old.name })
		if i < 0 {
			a.obs.ops.ForgetAlgorithm(old.name)
			continue
		}
		for _, s := range old.servers {
			if !slices.Contains(now[i].servers, s) {
				a.obs.ops.ForgetSelections(old.name, s)
			}
		}
	}
}
