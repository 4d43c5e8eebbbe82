package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ipfs/boxo/ipns"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/fungistor/fungistor/consensus"
)

// IPNS records live in the cluster's replicated metadata (consensus
// put-ipns), one per name, keyed by the IPNS routing key ("/ipns/" + the
// binary peer id). A record is verified (signature, name, expiry, size)
// by the node that takes the put, before anything is proposed; the FSM
// then keeps it only if it beats the stored one (higher sequence, then
// later EOL), the same on every replica. Reads are local.

// ipnsStore is the cluster's IPNS records as a libp2p routing.ValueStore:
// what boxo's namesys (and so the gateway's /ipns/ and DNSLink
// resolution) reads, and what `fungi routing put|get` write and read
// through the API. It is safe for concurrent use.
type ipnsStore struct {
	cc *clusterContent
}

var _ routing.ValueStore = (*ipnsStore)(nil)

// ipnsStore returns the cluster's IPNS records as a routing.ValueStore,
// for boxo's gateway (gateway.WithValueStore). Its keys are IPNS routing
// keys, "/ipns/" followed by the binary peer id (ipns.Name.RoutingKey(),
// what namesys asks for); "/ipns/<peer id or libp2p-key CID>" in text is
// accepted too. GetValue answers routing.ErrNotFound for a name the
// cluster holds no record for. PutValue verifies the record and commits it
// through raft from any node.
func (cc *clusterContent) ipnsStore() routing.ValueStore { return cc.ipns() }

func (cc *clusterContent) ipns() *ipnsStore { return &ipnsStore{cc: cc} }

// ErrOlderRecord: a put of a record that does not beat the one the
// cluster holds. The words are Kubo's (go-libp2p-kad-dht PutValue).
var ErrOlderRecord = errors.New("can't replace a newer value with an older value")

// ErrOffline: a put on a node alone in its cluster without allow-offline.
// The words start as Kubo's `ipfs routing put` offline refusal.
var ErrOffline = errors.New("can't put while offline: this node is alone in its cluster, so the record would live on this node only: pass `--allow-offline` to override")

// IPNSPutResult is the answer of routing put.
type IPNSPutResult struct {
	// Name is the IPNS name's peer id, as `ipfs routing put` prints it.
	Name     string    `json:"name"`
	Value    string    `json:"value"` // the path the record points to
	Sequence uint64    `json:"sequence"`
	Validity time.Time `json:"validity"`
	// Index is the raft log index the record was committed at; 0 when
	// the cluster held this very record already (nothing was written).
	Index uint64 `json:"index"`
}

// parseIPNSPath reads "/ipns/<name>" as the CLI and the API take it (as
// Kubo's routing commands): the name is a peer id or a libp2p-key CID.
func parseIPNSPath(key string) (ipns.Name, error) {
	rest, ok := strings.CutPrefix(key, ipns.NamespacePrefix)
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return ipns.Name{}, badRequest("invalid key %q: want /ipns/<name> (the only keys this cluster's routing keeps)", key)
	}
	name, err := ipns.NameFromString(rest)
	if err != nil {
		return ipns.Name{}, badRequest("invalid IPNS name %q: %s", rest, flatIPNSErr(err))
	}
	return name, nil
}

// parseIPNSKey reads a ValueStore key: the routing key, or the text form.
// The text form is tried first: a routing key's binary multihash never
// decodes as text (it starts with a control byte).
func parseIPNSKey(key string) (ipns.Name, error) {
	if name, err := parseIPNSPath(key); err == nil {
		return name, nil
	}
	name, err := ipns.NameFromRoutingKey([]byte(key))
	if err != nil {
		return ipns.Name{}, badRequest("invalid IPNS routing key %q: %s", key, flatIPNSErr(err))
	}
	return name, nil
}

// checkIPNSRecord verifies value as the record of name (size, encoding,
// signature by name's key, not expired) and returns it.
func checkIPNSRecord(name ipns.Name, value []byte) (*ipns.Record, error) {
	if len(value) == 0 {
		return nil, badRequest("invalid IPNS record: the record is empty")
	}
	if len(value) > ipns.MaxRecordSize {
		return nil, badRequest("invalid IPNS record: %d bytes, over the IPNS limit of %d", len(value), ipns.MaxRecordSize)
	}
	rec, err := ipns.UnmarshalRecord(value)
	if err != nil {
		return nil, badRequest("invalid IPNS record: %s", flatIPNSErr(err))
	}
	if err := ipns.ValidateWithName(rec, name); err != nil {
		hint := ""
		if errors.Is(err, ipns.ErrSignature) {
			hint = " (not signed by this name's key, or altered)"
		}
		return nil, badRequest("invalid IPNS record for /ipns/%s: %s%s", name, flatIPNSErr(err), hint)
	}
	return rec, nil
}

// flatIPNSErr flattens an error of several lines (errors.Join) into one.
func flatIPNSErr(err error) string { return strings.ReplaceAll(err.Error(), "\n", ": ") }

// PutValue verifies value as the IPNS record of key and commits it to the
// cluster's metadata (forwarded to the leader from a follower). It fails
// with ErrOlderRecord when the cluster holds a record as good or better;
// putting the record the cluster holds again succeeds and writes nothing.
func (s *ipnsStore) PutValue(ctx context.Context, key string, value []byte, _ ...routing.Option) error {
	name, err := parseIPNSKey(key)
	if err != nil {
		return err
	}
	_, err = s.put(ctx, name, value, true)
	return err
}

// put verifies and commits a record. Without allowOffline it refuses to
// write on a node alone in its cluster (ErrOffline), as Kubo refuses a
// put with no network to put it on.
func (s *ipnsStore) put(ctx context.Context, name ipns.Name, value []byte, allowOffline bool) (*IPNSPutResult, error) {
	rec, err := checkIPNSRecord(name, value)
	if err != nil {
		return nil, err
	}
	seq, err := rec.Sequence()
	if err != nil {
		return nil, badRequest("invalid IPNS record: %s", flatIPNSErr(err))
	}
	eol, err := rec.Validity()
	if err != nil {
		return nil, badRequest("invalid IPNS record: %s", flatIPNSErr(err))
	}
	out := &IPNSPutResult{Name: name.Peer().String(), Sequence: seq, Validity: eol.UTC()}
	if v, err := rec.Value(); err == nil {
		out.Value = v.String()
	}
	if err := s.cc.cluster.ready(); err != nil {
		return nil, err
	}
	cn := s.cc.cluster.node()
	fsm := cn.FSM()
	if !allowOffline && len(fsm.Members()) <= 1 {
		return nil, httpError{http.StatusBadRequest, ErrOffline}
	}
	key := string(name.RoutingKey())
	// refuse early what the FSM would not keep (it decides, though: this
	// node may lag behind the leader)
	if old, ok := fsm.IPNS(key); ok {
		if bytes.Equal(old.Data, value) {
			return out, nil
		}
		if !ipnsBeats(seq, eol, old) {
			return nil, olderIPNSRecord(old, seq)
		}
	}
	res, err := cn.Apply(ctx, consensus.PutIPNS(key, seq, eol, value))
	if err != nil {
		return nil, applyStatus(err)
	}
	if err := cn.WaitApplied(ctx, res.Index); err != nil {
		return nil, fmt.Errorf("IPNS record committed at index %d but not applied here yet: %w", res.Index, err)
	}
	kept, ok := fsm.IPNS(key)
	if !ok || !bytes.Equal(kept.Data, value) {
		// another put of a better record got there first
		return nil, olderIPNSRecord(kept, seq)
	}
	out.Index = res.Index
	return out, nil
}

// ipnsBeats is the FSM's rule (consensus.PutIPNS): a higher sequence, or at
// an equal one a later EOL.
func ipnsBeats(seq uint64, eol time.Time, old consensus.IPNSRecord) bool {
	if seq != old.Sequence {
		return seq > old.Sequence
	}
	return eol.After(old.EOL)
}

func olderIPNSRecord(kept consensus.IPNSRecord, seq uint64) error {
	return httpError{http.StatusConflict, fmt.Errorf("%w (the cluster holds sequence %d valid until %s; this record has sequence %d)",
		ErrOlderRecord, kept.Sequence, kept.EOL.UTC().Format(time.RFC3339), seq)}
}

// GetValue returns the record the cluster holds for key, from this node's
// copy of the metadata (a follower that has none first catches up with
// the leader, once). It answers routing.ErrNotFound when there is none,
// and an error wrapping ipns.ErrExpiredRecord when the record expired.
func (s *ipnsStore) GetValue(ctx context.Context, key string, _ ...routing.Option) ([]byte, error) {
	name, err := parseIPNSKey(key)
	if err != nil {
		return nil, err
	}
	return s.get(ctx, name)
}

func (s *ipnsStore) get(ctx context.Context, name ipns.Name) ([]byte, error) {
	key := string(name.RoutingKey())
	for attempt := 0; ; attempt++ {
		if r, ok := s.cc.fsm().IPNS(key); ok {
			if time.Now().After(r.EOL) {
				return nil, fmt.Errorf("/ipns/%s: the record expired at %s: %w", name, r.EOL.UTC().Format(time.RFC3339), ipns.ErrExpiredRecord)
			}
			return r.Data, nil
		}
		if attempt > 0 {
			return nil, routing.ErrNotFound
		}
		// look again even when catchUp waited for nothing: the record may
		// have been applied since the look above
		s.cc.catchUp(ctx)
	}
}

// SearchValue sends the one record GetValue finds, then closes the
// channel; it fails as GetValue does.
func (s *ipnsStore) SearchValue(ctx context.Context, key string, _ ...routing.Option) (<-chan []byte, error) {
	v, err := s.GetValue(ctx, key)
	if err != nil {
		return nil, err
	}
	ch := make(chan []byte, 1)
	ch <- v
	close(ch)
	return ch, nil
}
