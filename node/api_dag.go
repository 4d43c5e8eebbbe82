package node

// handleDAG registers the dag and block endpoints: being written.
func (a *api) handleDAG() {}
