package repair

import (
	"context"
	"sync"
	"time"
)

// limiter paces work to a rate in bytes per second, adjustable while it
// runs; 0 lets everything through. Up to 50 ms of burst: an idle pause
// (the scrubber's between passes) does not buy a faster pass.
type limiter struct {
	mu     sync.Mutex
	bps    int64
	tokens float64
	last   time.Time
}

func newLimiter(bps int64) *limiter { return &limiter{bps: bps, last: time.Now()} }

func (l *limiter) rate() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bps
}

func (l *limiter) setRate(bps int64) {
	l.mu.Lock()
	l.bps = max(bps, 0)
	l.mu.Unlock()
}

// wait takes n bytes' worth, sleeping as long as the rate asks.
func (l *limiter) wait(ctx context.Context, n int64) error {
	l.mu.Lock()
	if l.bps <= 0 {
		l.mu.Unlock()
		return nil
	}
	now := time.Now()
	rate := float64(l.bps)
	l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*rate, rate/20)
	l.last = now
	l.tokens -= float64(n)
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / rate * float64(time.Second))
	}
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
