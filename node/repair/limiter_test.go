package repair

import (
	"context"
	"testing"
	"time"
)

// The limiter paces to its rate (a floor only, which a slow machine
// cannot break) and lets everything through at rate 0 (else this test
// would sleep for days); a rate changed while running applies to the next wait.
func TestLimiterPaces(t *testing.T) {
	l := newLimiter(10 << 20)
	start := time.Now()
	for range 10 {
		if err := l.wait(context.Background(), 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 800*time.Millisecond {
		t.Fatalf("10 MiB at 10 MiB/s took %v", el)
	}
	l.setRate(0)
	done := make(chan struct{})
	go func() { // at rate 0, 1000 TiB go through at once
		for range 1000 {
			l.wait(context.Background(), 1<<40)
		}
		close(done)
	}()
	<-done
	l.setRate(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.wait(ctx, 1<<20); err == nil {
		t.Fatal("a cancelled wait returned nil")
	}
}
