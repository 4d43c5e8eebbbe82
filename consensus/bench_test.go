package consensus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCommit measures manifest commits per second on a 5-node
// cluster (3 voters, 2 non-voters), with concurrent writers on one node:
// the leader (raft.Apply, batched) or a non-voter (forwarded, batched on
// both ends). Each commit is a PutManifest of a 59-byte CID and 100 bytes.
func BenchmarkCommit(b *testing.B) {
	for _, tc := range []struct {
		name     string
		from     string // leader | follower
		maxBatch int
	}{
		{"from=follower", "follower", 0},
		{"from=leader", "leader", 0},
		{"from=follower/unbatched", "follower", 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := newCluster(b, 5, func(cfg *Config) {
				cfg.MaxBatch = tc.maxBatch
				cfg.HeartbeatTimeout, cfg.ElectionTimeout = 0, 0 // defaults
			})
			writer := c.leader()
			if tc.from == "follower" {
				for _, tn := range c.followers() {
					if tn.n.Status().Role == RoleNonvoter {
						writer = tn
					}
				}
			}
			const writers = 512
			manifest := make([]byte, 100)
			var next atomic.Int64
			var failed atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						cmd := PutManifest(fmt.Sprintf("bafkreig%052d", i), uint64(i), manifest)
						if _, err := writer.n.Apply(context.Background(), cmd); err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d writes failed", failed.Load())
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
			st := c.leader().n.Status()
			b.ReportMetric(float64(b.N)/float64(max(st.LastIndex, 1)), "cmds/entry")
		})
	}
}

// BenchmarkElection measures, with the default timeouts, how long a
// 3-voter cluster is without a leader after its leader crashes (host
// closed, no hand-over): from the crash to a survivor being leader.
func BenchmarkElection(b *testing.B) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		c := newCluster(b, 3, func(cfg *Config) {
			cfg.HeartbeatTimeout, cfg.ElectionTimeout = 0, 0 // defaults
		})
		old := c.leader()
		b.StartTimer()
		start := time.Now()
		old.crash()
		for {
			var l *testNode
			for _, tn := range c.up() {
				if tn.n.IsLeader() {
					l = tn
				}
			}
			if l != nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		c.close()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/election")
}
