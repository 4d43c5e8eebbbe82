package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/fungistor/fungistor/node/repair"
)

// The repair service's types, as the API carries them.
type (
	RepairReport   = repair.Report
	RepairProgress = repair.Progress
	RepairState    = repair.Status
	ScrubStatus    = repair.ScrubStatus
	AuditStatus    = repair.AuditStatus
)

// RepairOptions configure APIClient.Repair.
type RepairOptions struct {
	All    bool
	DryRun bool
	// Progress, if set, hears how far the repair is.
	Progress func(RepairProgress)
}

// Repair repairs roots (or all objects) now, through the daemon.
func (a *APIClient) Repair(ctx context.Context, o RepairOptions, roots ...string) (*RepairReport, error) {
	q := url.Values{"arg": roots}
	if o.All {
		q.Set("all", "true")
	}
	if o.DryRun {
		q.Set("dry-run", "true")
	}
	resp, err := a.call(ctx, "POST", "repair", q, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var rep *RepairReport
	for {
		var line RepairLine
		if err := dec.Decode(&line); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("daemon: bad repair reply: %v", err)
		}
		if line.Report != nil {
			rep = line.Report
		} else if line.Progress != nil && o.Progress != nil {
			o.Progress(*line.Progress)
		}
	}
	if err := streamErr(resp); err != nil {
		return nil, err
	}
	if rep == nil {
		return nil, errors.New("daemon: repair returned no report")
	}
	return rep, nil
}

// RepairStatus is the cluster's health and the repair's state.
func (a *APIClient) RepairStatus(ctx context.Context) (*RepairStatus, error) {
	var st RepairStatus
	return &st, a.getJSON(ctx, "repair/status", &st)
}

// SetRepairRate sets the daemon's repair rate cap (bytes per second as
// ParseRate reads it) while it runs.
func (a *APIClient) SetRepairRate(ctx context.Context, rate string) error {
	var out map[string]int64
	return a.doJSON(ctx, "POST", "repair/rate", url.Values{"arg": {rate}}, &out)
}

// Check verifies every fragment of roots (or of all objects) and reports
// what is missing or corrupt for repair.
func (a *APIClient) Check(ctx context.Context, all bool, roots ...string) (*CheckReport, error) {
	q := url.Values{"arg": roots}
	if all {
		q.Set("all", "true")
	}
	var rep CheckReport
	return &rep, a.doJSON(ctx, "POST", "check", q, &rep)
}
