package consensus

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// JoinProtocol admits a peer that proves it knows the cluster secret:
//
//	joiner -> member: version:u8 addrs:uvarint str*      (its listen addresses)
//	member -> joiner: status:u8 (0 go on, 1 refused) nonce:32
//	joiner -> member: proof:32 = JoinSecretProof(secret, nonce, joiner's peer id)
//	member -> joiner: status:u8 (0 admitted, 1 refused, 2 error)
//	                  admitted: servers:uvarint str*   error: message:str
//
// The member checks the proof with Config.Authorize, commits the joiner as
// a Member (forwarding to the leader when it is a follower) and the
// leader's policy adds it to raft as a non-voter. The peer ids on both
// ends are authenticated by libp2p's secure channel, so the proof binds
// the secret to the joiner's identity and the fresh nonce defeats replay.
const JoinProtocol protocol.ID = "/fungi/join/1.0.0"

const (
	joinVersion = 1
	nonceSize   = 32
	joinTimeout = 30 * time.Second
)

// JoinSecretProof is HMAC-SHA256(secret, "fungi join" || id || nonce): what
// a joiner with peer id id sends for nonce. Authorize hooks compare it with
// hmac.Equal.
func JoinSecretProof(secret, nonce []byte, id string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("fungi join"))
	m.Write([]byte(id))
	m.Write(nonce)
	return m.Sum(nil)
}

// Join asks the cluster member at leader (normally the leader; any member
// will do) to admit h's peer with the cluster secret. It returns nil once
// the peer is a committed member; the leader then adds it to raft as a
// non-voter. A Node should use Node.Join, which also lets the leader's raft
// traffic in and waits for the log to arrive.
func Join(ctx context.Context, h host.Host, leader peer.AddrInfo, secret []byte) error {
	_, err := join(ctx, h, leader, secret)
	return err
}

func join(ctx context.Context, h host.Host, leader peer.AddrInfo, secret []byte) ([]peer.ID, error) {
	if err := h.Connect(ctx, leader); err != nil {
		return nil, fmt.Errorf("consensus: join through %s: %w", leader.ID, err)
	}
	s, err := h.NewStream(ctx, leader.ID, JoinProtocol)
	if err != nil {
		return nil, fmt.Errorf("consensus: join through %s: %w", leader.ID, err)
	}
	defer s.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(joinTimeout)
	}
	s.SetDeadline(deadline)
	fail := func(err error) ([]peer.ID, error) {
		s.Reset()
		return nil, fmt.Errorf("consensus: join through %s: %w", leader.ID, err)
	}

	hello := []byte{joinVersion}
	addrs := h.Addrs()
	addrs = addrs[:min(len(addrs), MaxAddrs)]
	hello = binary.AppendUvarint(hello, uint64(len(addrs)))
	for _, a := range addrs {
		hello = appendStr(hello, a.String())
	}
	if _, err := s.Write(hello); err != nil {
		return fail(err)
	}
	r := bufio.NewReader(s)
	var head [1 + nonceSize]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return fail(err)
	}
	if head[0] != 0 {
		return nil, ErrJoinRefused
	}
	if _, err := s.Write(JoinSecretProof(secret, head[1:], h.ID().String())); err != nil {
		return fail(err)
	}
	s.CloseWrite()
	status, err := r.ReadByte()
	if err != nil {
		return fail(err)
	}
	switch status {
	case 0:
	case 1:
		return nil, ErrJoinRefused
	default:
		msg, err := readBoundedStr(r)
		if err != nil {
			return fail(err)
		}
		return fail(fmt.Errorf("member refused to admit us: %s", msg))
	}
	count, err := binary.ReadUvarint(r)
	if err != nil || count > 1024 {
		return fail(fmt.Errorf("%w: server list", ErrCorrupt))
	}
	servers := make([]peer.ID, 0, count)
	for range count {
		id, err := readBoundedStr(r)
		if err != nil {
			return fail(err)
		}
		if p, err := peer.Decode(id); err == nil {
			servers = append(servers, p)
		}
	}
	return servers, nil
}

func readBoundedStr(r *bufio.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	if n > MaxKeyLen {
		return "", fmt.Errorf("%w: string of %d bytes", ErrCorrupt, n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

// Join admits this node into the cluster that leader belongs to (see the
// package Join) and waits until the leader has added it to the raft
// configuration, so that on return it replicates the log. Raft traffic
// from leader and from the servers it names is let in from the start.
func (n *Node) Join(ctx context.Context, leader peer.AddrInfo, secret []byte) error {
	n.trust(leader.ID)
	servers, err := join(ctx, n.h, leader, secret)
	if err != nil {
		return err
	}
	for _, p := range servers {
		n.trust(p)
	}
	self := raft.ServerID(n.cfg.LocalID)
	for {
		if cfg, err := n.configuration(); err == nil {
			for _, s := range cfg.Servers {
				if s.ID == self {
					n.refreshServers()
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consensus: admitted as a member, but the leader has not added us to raft yet: %w", ctx.Err())
		case <-n.ctx.Done():
			return ErrClosed
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// handleJoin is a member's side of JoinProtocol.
func (n *Node) handleJoin(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(joinTimeout))
	remote := s.Conn().RemotePeer()
	r := bufio.NewReader(io.LimitReader(s, 1<<20))
	if v, err := r.ReadByte(); err != nil || v != joinVersion {
		s.Reset()
		return
	}
	count, err := binary.ReadUvarint(r)
	if err != nil || count > MaxAddrs {
		s.Reset()
		return
	}
	addrs := make([]string, 0, count)
	for range count {
		a, err := readBoundedStr(r)
		if err != nil {
			s.Reset()
			return
		}
		addrs = append(addrs, a)
	}
	if n.cfg.Authorize == nil {
		refused := make([]byte, 1+nonceSize)
		refused[0] = 1
		s.Write(refused)
		return
	}
	head := make([]byte, 1+nonceSize)
	rand.Read(head[1:])
	if _, err := s.Write(head); err != nil {
		return
	}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(r, proof); err != nil {
		s.Reset()
		return
	}
	if !n.cfg.Authorize(remote, head[1:], proof) {
		n.log.Warn("refused a join: bad proof of the cluster secret", "peer", remote)
		s.Write([]byte{1})
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, joinTimeout)
	defer cancel()
	m, ok := n.fsm.Member(remote.String())
	if !ok {
		m = Member{ID: remote.String(), Joined: time.Now()}
	}
	m.Addrs = addrs
	admit := PutMember(m)
	if n.fsm.Stats().Members == 0 {
		// the founder of a new cluster, admitting its first peer before
		// its own policy admitted it: admit both at once
		self := Member{ID: n.cfg.LocalID, Addrs: hostAddrs(n.h), Joined: time.Now(), Voter: true}
		admit = Batch(PutMember(self), admit)
	}
	if _, err := n.Apply(ctx, admit); err != nil {
		n.log.Warn("join: could not commit the new member", "peer", remote, "err", err)
		s.Write(appendStr([]byte{2}, err.Error()))
		return
	}
	n.log.Info("admitted a member", "peer", remote)
	n.kickPolicy()
	servers := []string{}
	if l := n.Leader(); l != "" {
		servers = append(servers, l)
	}
	if cfg, err := n.configuration(); err == nil {
		for _, sv := range cfg.Servers {
			servers = append(servers, string(sv.ID))
		}
	}
	b := binary.AppendUvarint([]byte{0}, uint64(len(servers)))
	for _, id := range servers {
		b = appendStr(b, id)
	}
	s.Write(b)
}
