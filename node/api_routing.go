package node

// handleRouting registers the routing (IPNS record) endpoints: being written.
func (a *api) handleRouting() {}
