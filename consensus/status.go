package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// StatusProtocol lets a member ask the leader for its Status: only the
// leader hears from every server, so only its view of their health is
// first-hand. Request: nothing; reply: the leader's Status as JSON.
const StatusProtocol = "/fungi/raft-status/1.0.0"

const statusTimeout = time.Second

// LeaderStatus returns the leader's view of the cluster: this node's Status
// on the leader, else the leader's answer over StatusProtocol. It fails
// when no leader is known or it does not answer in time.
func (n *Node) LeaderStatus(ctx context.Context) (Status, error) {
	if n.IsLeader() {
		return n.Status(), nil
	}
	l := n.Leader()
	if l == "" {
		return Status{}, ErrNoLeader
	}
	p, err := peer.Decode(l)
	if err != nil {
		return Status{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	n.learnAddrs(p)
	s, err := n.h.NewStream(ctx, p, StatusProtocol)
	if err != nil {
		return Status{}, fmt.Errorf("consensus: ask the leader for its status: %w", err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	s.CloseWrite()
	var st Status
	if err := json.NewDecoder(io.LimitReader(s, 4<<20)).Decode(&st); err != nil {
		s.Reset()
		return Status{}, fmt.Errorf("consensus: leader status: %w", err)
	}
	if st.Role != RoleLeader {
		return Status{}, errors.New("consensus: the peer asked is no longer the leader")
	}
	return st, nil
}

// handleStatus answers StatusProtocol, for members only.
func (n *Node) handleStatus(s network.Stream) {
	defer s.Close()
	if !n.fsm.IsMember(s.Conn().RemotePeer().String()) {
		s.Reset()
		return
	}
	s.SetDeadline(time.Now().Add(statusTimeout))
	json.NewEncoder(s).Encode(n.Status())
}
