package consensus

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ForwardProtocol carries writes from a follower to the leader: the
// request is one log entry (uvarint length, then the entry: one or more
// commands), the reply one result per command or a refusal. See
// docs in doc.go.
const ForwardProtocol protocol.ID = "/fungi/raft-forward/1.0.0"

const (
	proposers     = 4       // batches in flight per node
	maxBatchBytes = 4 << 20 // a batch stops growing past this
	maxAttempts   = 30      // per batch, with backoff up to 500ms
)

// Flags of one result in a forward reply. A refused command has
// fwdResultErr and its message; a tree refusal has its kind (its number in
// treeKinds) in the bits of fwdResultTreeKind too. (Builds before the tree
// commands ignore those bits, and never send a tree command.)
const (
	fwdResultDuplicate = 1
	fwdResultErr       = 2
	fwdResultTreeShift = 2
	fwdResultTreeKind  = 7 << fwdResultTreeShift
)

// Forward reply statuses.
const (
	fwdOK        = 0 // results follow
	fwdNotLeader = 1 // str: the leader as the receiver knows it
	fwdNotMember = 2 // the sender is not a member: permanent
	fwdRetry     = 3 // str: not applied (not enqueued); try again
	fwdInvalid   = 4 // str: the request is malformed: permanent
	fwdUnknown   = 5 // str: enqueued, then leadership was lost: may commit
)

type proposal struct {
	cmd  Command
	ctx  context.Context
	size int
	done chan proposalResult // buffered: the proposer never blocks on it
}

type proposalResult struct {
	res Result
	err error
}

// Apply commits cmd to the replicated state from any node and returns its
// Result once it is committed and applied on the leader (and, normally,
// on this node too: Apply waits up to two heartbeat timeouts for that, so
// a read here sees the write; WaitApplied(ctx, res.Index) makes sure).
//
// On the leader the command is proposed to raft; on a follower it is
// forwarded to the leader over ForwardProtocol. Concurrent Applys are
// grouped into one log entry per round trip (up to Config.MaxBatch), which
// is what makes thousands of commits per second possible. A write that
// meets a leader change is retried (bounded by ctx, or ApplyTimeout when
// ctx has no deadline, and by a number of attempts); its RequestID (filled
// in when zero) keeps a retry from being applied twice.
//
// The error is either an ErrInvalidCommand (nothing was proposed), a
// refusal of a tree command (it was committed and refused on every
// replica, changing nothing: it matches ErrTreeConflict and the specific
// ErrTree* sentinel, on the leader and on a follower alike, and is not
// retried), or an *ApplyError: ErrNotMember, ErrNoLeader, ErrClosed, a
// *NotLeaderError or a transport error inside, and Unknown set when the
// write may still commit. A Batch is applied entirely or not at all.
func (n *Node) Apply(ctx context.Context, cmd Command) (Result, error) {
	if cmd.RequestID.IsZero() {
		cmd.RequestID = NewRequestID()
	}
	if err := cmd.Validate(); err != nil {
		return Result{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		defer cancel()
	}
	p := &proposal{cmd: cmd, ctx: ctx, size: cmd.encodedSize(), done: make(chan proposalResult, 1)}
	select {
	case n.proposals <- p:
	case <-ctx.Done():
		return Result{}, &ApplyError{RequestID: cmd.RequestID, Err: ctx.Err()}
	case <-n.ctx.Done():
		return Result{}, &ApplyError{RequestID: cmd.RequestID, Err: ErrClosed}
	}
	select {
	case r := <-p.done:
		if r.err == nil {
			// Best effort, briefly: the write is committed either way, and a
			// node far behind must not hold its writers back.
			wctx, cancel := context.WithTimeout(ctx, 2*n.cfg.HeartbeatTimeout)
			n.WaitApplied(wctx, r.res.Index)
			cancel()
		}
		return r.res, r.err
	case <-ctx.Done():
		return Result{}, &ApplyError{RequestID: cmd.RequestID, Leader: n.Leader(), Unknown: true, Err: ctx.Err()}
	case <-n.ctx.Done():
		return Result{}, &ApplyError{RequestID: cmd.RequestID, Unknown: true, Err: ErrClosed}
	}
}

// proposer takes queued proposals, groups what is waiting into one entry
// and commits it; proposers of them run at once.
func (n *Node) proposer() {
	defer n.wg.Done()
	var carry *proposal
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-n.proposals:
			case <-n.ctx.Done():
				return
			}
		}
		batch, size := []*proposal{first}, first.size
	fill:
		for len(batch) < n.cfg.MaxBatch {
			select {
			case p := <-n.proposals:
				if size+p.size > maxBatchBytes {
					carry = p
					break fill
				}
				batch = append(batch, p)
				size += p.size
			default:
				break fill
			}
		}
		n.commit(batch)
	}
}

func (n *Node) commit(batch []*proposal) {
	live := make([]*proposal, 0, len(batch))
	var deadline time.Time
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done <- proposalResult{err: &ApplyError{RequestID: p.cmd.RequestID, Err: err}}
			continue
		}
		live = append(live, p)
		if d, _ := p.ctx.Deadline(); d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	cmds := make([]Command, len(live))
	for i, p := range live {
		cmds[i] = p.cmd
	}
	data, err := encodeEntry(cmds)
	if err != nil {
		for _, p := range live {
			p.done <- proposalResult{err: err}
		}
		return
	}
	ctx, cancel := context.WithDeadline(n.ctx, deadline)
	defer cancel()

	var (
		attempts int
		unknown  bool
		leader   string
		hint     string // a leader named by a NotLeader reply
		last     error
	)
	for {
		attempts++
		outs, to, sent, err := n.commitOnce(ctx, data, len(cmds), hint)
		unknown = unknown || sent
		if to != "" {
			leader = to
		}
		if err == nil {
			for i, p := range live {
				p.done <- proposalResult{res: outs[i].res, err: outs[i].err}
			}
			return
		}
		last, hint = err, ""
		var nl *NotLeaderError
		if errors.As(err, &nl) && nl.Leader != to {
			hint = nl.Leader
		}
		if errors.Is(err, ErrNotMember) || errors.Is(err, ErrInvalidCommand) || errors.Is(err, ErrClosed) ||
			attempts >= maxAttempts || ctx.Err() != nil || allDone(live) {
			break
		}
		n.log.Debug("write not committed, retrying", "attempt", attempts, "leader", to, "err", err)
		if hint == "" || attempts > 3 {
			n.backoff(ctx, attempts)
		}
	}
	if ctx.Err() != nil && n.ctx.Err() != nil {
		last = ErrClosed
	} else if ctx.Err() != nil {
		last = fmt.Errorf("%w, after %w", last, ctx.Err())
	}
	for _, p := range live {
		p.done <- proposalResult{err: &ApplyError{RequestID: p.cmd.RequestID, Leader: leader, Attempts: attempts, Unknown: unknown, Err: last}}
	}
}

func allDone(ps []*proposal) bool {
	for _, p := range ps {
		if p.ctx.Err() == nil {
			return false
		}
	}
	return true
}

// backoff waits before the next attempt: exponentially longer each time
// (20ms .. 500ms), cut short by a leader change.
func (n *Node) backoff(ctx context.Context, attempt int) {
	d := min(10*time.Millisecond<<min(attempt, 6), 500*time.Millisecond)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-n.leaderChanged():
	case <-ctx.Done():
	}
}

// commitOnce makes one attempt: propose locally when leader, else forward
// to the leader (or to hint, a leader named by the last refusal). sent
// reports whether the entry may have reached a leader's log.
func (n *Node) commitOnce(ctx context.Context, data []byte, count int, hint string) (outs []outcome, leader string, sent bool, err error) {
	self := n.cfg.LocalID
	if n.raft.State() == raft.Leader {
		f := n.raft.Apply(data, timeoutOf(ctx, 5*time.Second))
		if err := n.wait(ctx, f); err != nil {
			switch {
			case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
				errors.Is(err, raft.ErrLeadershipTransferInProgress):
				return nil, self, false, err
			case errors.Is(err, raft.ErrRaftShutdown):
				return nil, self, true, ErrClosed
			}
			return nil, self, true, err // leadership lost after the entry was appended
		}
		resp, ok := f.Response().(applyResponse)
		if ok && resp.err != nil {
			return nil, self, true, fmt.Errorf("%w: %v", ErrInvalidCommand, resp.err)
		}
		if !ok || len(resp.outs) != count {
			return nil, self, true, fmt.Errorf("consensus: bad apply response %+v", f.Response())
		}
		return resp.outs, self, true, nil
	}
	leader = hint
	if leader == "" {
		leader = n.Leader()
	}
	if leader == "" || leader == self {
		return nil, "", false, ErrNoLeader
	}
	to, err := peer.Decode(leader)
	if err != nil {
		return nil, leader, false, fmt.Errorf("consensus: leader id %q: %w", leader, err)
	}
	outs, sent, err = n.forward(ctx, to, data, count)
	return outs, leader, sent, err
}

// wait waits for a raft future, but not past ctx: a future whose entry
// sat in raft's buffered apply channel when raft stopped is never
// answered. A timed-out wait says nothing about the entry's fate.
func (n *Node) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if n.ctx.Err() != nil {
			return ErrClosed
		}
		return ctx.Err()
	}
}

func timeoutOf(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return def
}

// forward sends one entry to the leader and reads its results.
func (n *Node) forward(ctx context.Context, to peer.ID, data []byte, count int) (outs []outcome, sent bool, err error) {
	n.learnAddrs(to)
	s, err := n.h.NewStream(ctx, to, ForwardProtocol)
	if err != nil {
		return nil, false, fmt.Errorf("consensus: forward to %s: %w", to, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	req := binary.AppendUvarint(make([]byte, 0, len(data)+binary.MaxVarintLen64), uint64(len(data)))
	_, werr := s.Write(append(req, data...))
	if werr == nil {
		s.CloseWrite()
	}
	sent = werr == nil
	outs, err = readForwardReply(bufio.NewReader(s), count)
	switch {
	case err == nil:
		return outs, true, nil
	case errors.Is(err, ErrNotMember), errors.Is(err, ErrInvalidCommand), errors.Is(err, ErrNotLeader):
		return nil, false, err
	case errors.Is(err, errNotApplied):
		return nil, false, err
	case werr != nil:
		return nil, false, fmt.Errorf("consensus: forward to %s: %w", to, werr)
	}
	return nil, sent, fmt.Errorf("consensus: forward to %s: %w", to, err)
}

// errNotApplied: the leader refused the entry before proposing it.
var errNotApplied = errors.New("consensus: leader did not propose the write")

func readForwardReply(r *bufio.Reader, count int) ([]outcome, error) {
	status, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	readStr := func() (string, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return "", err
		}
		if n > 64<<10 {
			return "", fmt.Errorf("%w: reply string of %d bytes", ErrCorrupt, n)
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return string(b), err
	}
	switch status {
	case fwdOK:
	case fwdNotLeader:
		l, err := readStr()
		if err != nil {
			return nil, err
		}
		return nil, &NotLeaderError{Leader: l}
	case fwdNotMember:
		return nil, ErrNotMember
	case fwdRetry, fwdUnknown, fwdInvalid:
		msg, err := readStr()
		if err != nil {
			return nil, err
		}
		switch status {
		case fwdRetry:
			return nil, fmt.Errorf("%w: %s", errNotApplied, msg)
		case fwdInvalid:
			return nil, fmt.Errorf("%w: leader: %s", ErrInvalidCommand, msg)
		}
		return nil, fmt.Errorf("consensus: leader: %s", msg)
	default:
		return nil, fmt.Errorf("%w: forward reply status %d", ErrCorrupt, status)
	}
	nres, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if nres != uint64(count) {
		return nil, fmt.Errorf("%w: %d results for %d commands", ErrCorrupt, nres, count)
	}
	outs := make([]outcome, count)
	for i := range outs {
		flags, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		idx, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		outs[i].res = Result{Index: idx, Duplicate: flags&fwdResultDuplicate != 0}
		if flags&fwdResultErr != 0 {
			msg, err := readStr()
			if err != nil {
				return nil, err
			}
			if kind := (flags & fwdResultTreeKind) >> fwdResultTreeShift; kind != 0 {
				outs[i].err = treeErrorOf(kind, msg)
			} else {
				outs[i].err = fmt.Errorf("%w: %s", ErrInvalidCommand, msg)
			}
		}
	}
	return outs, nil
}

// handleForward is the leader's side of ForwardProtocol. Only members may
// write; the entry is proposed as it came (one raft entry, so a follower's
// batch stays atomic per command and costs one log append).
func (n *Node) handleForward(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(n.cfg.ApplyTimeout + 5*time.Second))
	remote := s.Conn().RemotePeer()
	w := bufio.NewWriter(s)
	reply := func(status byte, msg string) {
		w.WriteByte(status)
		if status != fwdNotMember {
			w.Write(appendStr(nil, msg))
		}
		w.Flush()
	}
	br := bufio.NewReader(s)
	size, err := binary.ReadUvarint(br)
	if err != nil {
		s.Reset()
		return
	}
	if !n.fsm.IsMember(remote.String()) {
		n.log.Warn("refused a write forwarded by a non-member", "peer", remote)
		reply(fwdNotMember, "")
		return
	}
	if size > MaxEntrySize {
		reply(fwdInvalid, fmt.Sprintf("entry of %d bytes", size))
		return
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(br, data); err != nil {
		s.Reset()
		return
	}
	cmds, err := decodeEntry(data)
	if err != nil {
		reply(fwdInvalid, err.Error())
		return
	}
	if n.raft.State() != raft.Leader {
		reply(fwdNotLeader, n.Leader())
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
	defer cancel()
	f := n.raft.Apply(data, 5*time.Second)
	if err := n.wait(ctx, f); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			reply(fwdNotLeader, n.Leader())
		case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			reply(fwdRetry, err.Error())
		default:
			reply(fwdUnknown, err.Error())
		}
		return
	}
	resp, ok := f.Response().(applyResponse)
	if !ok || resp.err != nil || len(resp.outs) != len(cmds) {
		reply(fwdInvalid, fmt.Sprintf("bad apply response %+v", f.Response()))
		return
	}
	b := append(make([]byte, 0, 16+len(cmds)*8), fwdOK)
	b = binary.AppendUvarint(b, uint64(len(cmds)))
	for _, o := range resp.outs {
		var flags byte
		if o.res.Duplicate {
			flags |= fwdResultDuplicate
		}
		if o.err != nil {
			flags |= fwdResultErr | treeKindOf(o.err)<<fwdResultTreeShift
		}
		b = append(b, flags)
		b = binary.AppendUvarint(b, o.res.Index)
		if o.err != nil {
			b = appendStr(b, o.err.Error())
		}
	}
	w.Write(b)
	w.Flush()
}
