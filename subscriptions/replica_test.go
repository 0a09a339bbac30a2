package subscriptions_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/fhir/backport"
	"ehrgate/subscriptions"
	"ehrgate/subscriptions/feedeval"
)

// replicas puts two hubs (two serve replicas) behind one address, taking
// turns: any replica may receive a notification.
func replicas(t *testing.T, a, b http.Handler) string {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			a.ServeHTTP(w, r)
		} else {
			b.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestFollowerReplica: one leading manager keeps the subscription, a
// follower on another hub (another replica on the same store) takes the
// notifications that reach it, the handshake included, and applies them;
// only one subscription exists. When the leader steps down the follower
// leads on the same subscription.
func TestFollowerReplica(t *testing.T) {
	for _, criteria := range []bool{false, true} {
		name := map[bool]string{false: "Topic", true: "Criteria"}[criteria]
		t.Run(name, func(t *testing.T) {
			r := newRig(t, feedeval.RigOptions{Criteria: criteria})
			ctx := context.Background()
			hub2 := subscriptions.NewHub()
			url := replicas(t, r.Hub, hub2)
			o := r.ManagerOptions()
			o.Endpoint = func(path string) string { return url + path }
			o.Payload = backport.PayloadFullResource
			o.Reconcile = time.Hour
			o2 := o
			o2.Hub = hub2
			follower, err := subscriptions.New(r.Client, r.Store, o2)
			if err != nil {
				t.Fatal(err)
			}
			if err := follower.Follow(ctx); err != nil { // before any state: follows nothing yet
				t.Fatal(err)
			}
			leader, stopLeader, err := r.StartManager(ctx, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			fctx, stopFollowing := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() {
				for fctx.Err() == nil {
					if err := follower.Follow(fctx); err != nil && fctx.Err() == nil {
						t.Error(err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
			changes(t, r, 40, 41)
			converge(t, r, 15*time.Second)
			if follower.Leading() || !leader.Leading() {
				t.Errorf("leading: leader %v, follower %v", leader.Leading(), follower.Leading())
			}
			if st := follower.Stats(); st.Notifications == 0 || st.Applied+st.Unchanged == 0 || st.Forged+st.Malformed != 0 {
				t.Errorf("follower Stats = %+v, want notifications taken and applied, none refused", st)
			}
			if leader.Stats().Notifications == 0 {
				t.Errorf("leader Stats = %+v, want notifications taken", leader.Stats())
			}
			subs := len(r.Sim.SubscriptionIDs())
			if want := map[bool]int{false: 1, true: 10}[criteria]; subs != want {
				t.Errorf("%d subscriptions on the server, want %d", subs, want)
			}
			if got := follower.Health().Subscription; got != leader.Health().Subscription {
				t.Errorf("follower follows %q, leader keeps %q", got, leader.Health().Subscription)
			}

			// Hand over: the leader steps down, the follower leads.
			was := leader.Health().Subscription
			stopFollowing()
			wg.Wait()
			leader.StepDown()
			stopLeader()
			if err := follower.Start(ctx); err != nil {
				t.Fatal(err)
			}
			rctx, stopRun := context.WithCancel(ctx)
			defer stopRun()
			go follower.Run(rctx)
			if err := leader.Follow(ctx); err != nil {
				t.Fatal(err)
			}
			if got := follower.Health().Subscription; got != was || !follower.Leading() {
				t.Errorf("new leader keeps %q (leading %v), want %q", got, follower.Leading(), was)
			}
			changes(t, r, 20, 42)
			converge(t, r, 15*time.Second)
			if len(r.Sim.SubscriptionIDs()) != subs {
				t.Errorf("%d subscriptions on the server after the hand-over, want %d", len(r.Sim.SubscriptionIDs()), subs)
			}
		})
	}
}
