package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/ipfs/boxo/ipns"
)

// RoutingPut stores a marshalled IPNS record under key ("/ipns/<name>")
// in the daemon's cluster. allowOffline lets a node alone in its cluster
// keep it (see ErrOffline).
func (a *APIClient) RoutingPut(ctx context.Context, key string, record []byte, allowOffline bool) (*IPNSPutResult, error) {
	q := url.Values{"arg": {key}}
	if allowOffline {
		q.Set("allow-offline", "true")
	}
	var res IPNSPutResult
	if err := a.sendJSON(ctx, "POST", "routing/put", q, bytes.NewReader(record), ipnsRecordType, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// RoutingGet returns the marshalled IPNS record the daemon's cluster holds
// for key ("/ipns/<name>").
func (a *APIClient) RoutingGet(ctx context.Context, key string) ([]byte, error) {
	resp, err := a.call(ctx, "GET", "routing/get", url.Values{"arg": {key}}, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(ipns.MaxRecordSize)+1))
	if err != nil {
		return nil, fmt.Errorf("daemon: routing/get: %w", err)
	}
	if len(b) > ipns.MaxRecordSize {
		return nil, fmt.Errorf("daemon: routing/get: a record over the IPNS limit of %d bytes", ipns.MaxRecordSize)
	}
	return b, nil
}
