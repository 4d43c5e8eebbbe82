package consensus

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// policyState is the policy loop's memory; only that goroutine touches it.
type policyState struct {
	term    uint64    // the leader term whose Barrier has passed
	since   time.Time // when this node became leader in that term
	addrsAt time.Time // when this node last published its addresses
}

// policyLoop runs the membership policy every PolicyInterval and on every
// leader or membership change. See doc.go for the policy.
func (n *Node) policyLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.PolicyInterval)
	defer t.Stop()
	var st policyState
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		case <-n.fsm.memberCh:
		}
		n.refreshServers()
		n.publishAddrs(&st)
		if n.raft.State() == raft.Leader {
			n.lead(&st)
		} else {
			st.term = 0
		}
	}
}

// publishAddrs updates this node's Member.Addrs when they changed (a
// restart on other ports), so that peers can dial it.
func (n *Node) publishAddrs(st *policyState) {
	if time.Since(st.addrsAt) < 10*n.cfg.PolicyInterval || n.Leader() == "" {
		return
	}
	m, ok := n.fsm.Member(n.cfg.LocalID)
	if !ok {
		return
	}
	addrs := hostAddrs(n.h)
	if slices.Equal(addrs, sorted(m.Addrs)) {
		return
	}
	st.addrsAt = time.Now()
	m.Addrs = addrs
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if _, err := n.Apply(ctx, PutMember(m)); err != nil {
		n.log.Debug("publish addresses", "err", err)
	}
}

func hostAddrs(h interface{ Addrs() []ma.Multiaddr }) []string {
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.String())
	}
	return sorted(out[:min(len(out), MaxAddrs)])
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// learnAddrs gives libp2p a member's recorded addresses when it is not
// connected to it, so raft and forwarding can dial it by peer id.
func (n *Node) learnAddrs(p peer.ID) {
	if n.h.Network().Connectedness(p) == network.Connected {
		return
	}
	m, ok := n.fsm.Member(p.String())
	if !ok {
		return
	}
	var addrs []ma.Multiaddr
	for _, a := range m.Addrs {
		if x, err := ma.NewMultiaddr(a); err == nil {
			addrs = append(addrs, x)
		}
	}
	n.h.Peerstore().AddAddrs(p, addrs, peerstore.AddressTTL)
}

// lead runs the leader's side of the policy, in order:
//  1. wait (once per term) for a Barrier, so the FSM reflects every
//     committed membership change before it is acted upon;
//  2. admit this node as a member if there are none (the first leader;
//     a leader that was Removed must not readmit itself);
//  3. remove from raft every server that is no longer a member;
//  4. add every member missing from raft as a non-voter;
//  5. demote voters unheard-of for DeadVoterGrace when a healthy
//     non-voter can replace them;
//  6. promote healthy non-voters while there are fewer than Voters voters,
//     preferring a failure domain the voters do not cover yet, then the
//     oldest member;
//  7. record every member's suffrage in the FSM (Member.Voter).
func (n *Node) lead(st *policyState) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	self := n.cfg.LocalID
	if term := n.raft.CurrentTerm(); st.term != term {
		if err := n.wait(ctx, n.raft.Barrier(5*time.Second)); err != nil {
			return
		}
		st.term, st.since = term, time.Now()
	}
	if n.fsm.Stats().Members == 0 { // the first leader of a new cluster
		m := Member{ID: self, Addrs: hostAddrs(n.h), Joined: time.Now(), Voter: true}
		if _, err := n.Apply(ctx, PutMember(m)); err != nil {
			n.log.Warn("policy: admit self", "err", err)
			return
		}
	}
	cfg, err := n.configuration()
	if err != nil {
		return
	}
	changed := false
	for _, s := range cfg.Servers {
		id := string(s.ID)
		if id != self && !n.fsm.IsMember(id) {
			n.log.Info("policy: removing a server that is no longer a member", "peer", id)
			if err := n.wait(ctx, n.raft.RemoveServer(s.ID, 0, 5*time.Second)); err != nil {
				n.log.Warn("policy: remove server", "peer", id, "err", err)
				return
			}
			changed = true
		}
	}
	members := n.fsm.Members()
	inConfig := make(map[string]raft.ServerSuffrage, len(cfg.Servers))
	for _, s := range cfg.Servers {
		inConfig[string(s.ID)] = s.Suffrage
	}
	for _, m := range members {
		if _, ok := inConfig[m.ID]; ok {
			continue
		}
		p, err := peer.Decode(m.ID)
		if err != nil {
			continue
		}
		n.learnAddrs(p)
		n.log.Info("policy: adding a member as non-voter", "peer", m.ID)
		if err := n.wait(ctx, n.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.ID), 0, 5*time.Second)); err != nil {
			n.log.Warn("policy: add non-voter", "peer", m.ID, "err", err)
			return
		}
		changed = true
	}
	if changed {
		if cfg, err = n.configuration(); err != nil {
			return
		}
		n.refreshServers()
	}

	now := time.Now()
	lastHeard := func(id string) time.Time {
		if id == self {
			return now
		}
		p, err := peer.Decode(id)
		if err != nil {
			return time.Time{}
		}
		n.learnAddrs(p)
		return n.contact.last(p)
	}
	healthy := func(id string) bool { return now.Sub(lastHeard(id)) < 2*n.cfg.HeartbeatTimeout }
	dead := func(id string) bool {
		heard := lastHeard(id)
		if heard.Before(st.since) {
			heard = st.since // not heard since we lead: count from then
		}
		return now.Sub(heard) > n.cfg.DeadVoterGrace
	}
	byID := make(map[string]Member, len(members))
	for _, m := range members {
		byID[m.ID] = m
	}
	var voters []string
	var candidates []Member
	for _, s := range cfg.Servers {
		id := string(s.ID)
		if s.Suffrage == raft.Voter {
			voters = append(voters, id)
		} else if m, ok := byID[id]; ok && healthy(id) {
			candidates = append(candidates, m)
		}
	}
	covered := map[string]bool{}
	for _, v := range voters {
		if !dead(v) {
			covered[byID[v].Domain] = true
		}
	}
	slices.SortFunc(candidates, func(a, b Member) int {
		if ca, cb := covered[a.Domain], covered[b.Domain]; ca != cb {
			if !ca {
				return -1
			}
			return 1
		}
		if c := a.Joined.Compare(b.Joined); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, v := range slices.Clone(voters) {
		if v == self || !dead(v) || len(candidates) == 0 {
			continue
		}
		n.log.Warn("policy: demoting a voter that has been unreachable", "peer", v, "grace", n.cfg.DeadVoterGrace)
		if err := n.wait(ctx, n.raft.DemoteVoter(raft.ServerID(v), 0, 5*time.Second)); err != nil {
			n.log.Warn("policy: demote", "peer", v, "err", err)
			return
		}
		voters = slices.DeleteFunc(voters, func(s string) bool { return s == v })
		changed = true
	}
	for len(voters) < n.cfg.Voters && len(candidates) > 0 {
		c := candidates[0]
		candidates = candidates[1:]
		n.log.Info("policy: promoting a non-voter", "peer", c.ID, "domain", c.Domain)
		if err := n.wait(ctx, n.raft.AddVoter(raft.ServerID(c.ID), raft.ServerAddress(c.ID), 0, 5*time.Second)); err != nil {
			n.log.Warn("policy: promote", "peer", c.ID, "err", err)
			return
		}
		voters = append(voters, c.ID)
		changed = true
	}
	if changed {
		if cfg, err = n.configuration(); err != nil {
			return
		}
		n.refreshServers()
	}
	var fix []Command
	for _, s := range cfg.Servers {
		m, ok := byID[string(s.ID)]
		if ok && m.Voter != (s.Suffrage == raft.Voter) {
			fix = append(fix, SetVoter(m.ID, s.Suffrage == raft.Voter))
		}
	}
	if len(fix) > 0 {
		if _, err := n.Apply(ctx, Batch(fix...)); err != nil {
			n.log.Debug("policy: record suffrage", "err", err)
		}
	}
}
