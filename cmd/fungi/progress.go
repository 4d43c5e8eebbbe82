package main

import (
	"fmt"
	"os"
	"time"
)

// progress prints a one-line, self-overwriting status to a terminal's
// stderr, at most a few times a second; it is silent when stderr is not a
// terminal or quiet is set, so scripts see only results.
type progress struct {
	label   string
	on      bool
	start   time.Time
	last    time.Time
	printed bool
}

func newProgress(quiet bool, label string) *progress {
	on := false
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		on = !quiet
	}
	return &progress{label: label, on: on, start: time.Now()}
}

func (p *progress) update(done int64) { p.updateOf(done, 0) }

func (p *progress) updateOf(done, total int64) {
	if !p.on || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start).Seconds()
	rate := float64(done) / max(el, 1e-3) / 1e6
	line := fmt.Sprintf("%s %.1f MB (%.1f MB/s)", p.label, float64(done)/1e6, rate)
	if total > 0 && done <= total {
		eta := time.Duration(float64(total-done) / max(rate*1e6, 1) * float64(time.Second)).Round(time.Second)
		line = fmt.Sprintf("%s %.1f / %.1f MB, %.0f%% (%.1f MB/s, ETA %s)", p.label, float64(done)/1e6, float64(total)/1e6,
			100*float64(done)/float64(total), rate, eta)
	}
	fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
	p.printed = true
}

// show prints line (throttled as update is).
func (p *progress) show(line string) {
	if !p.on || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(os.Stderr, "\r\033[K%s %s", p.label, line)
	p.printed = true
}

func (p *progress) done() {
	if p != nil && p.printed {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
}
