package consensus

// cowMap is a map that can be frozen in O(1) for a snapshot: while frozen,
// base is read-only (the snapshot streams it without a lock) and changes go
// to an overlay that reads consult first; thaw folds the overlay back in.
// The caller (FSM) serializes every method but reads with its lock.
type cowMap[V any] struct {
	base map[string]V
	over map[string]overlayEntry[V] // nil unless frozen
	n    int                        // entries in the merged view while frozen
}

type overlayEntry[V any] struct {
	v  V
	ok bool // false: deleted
}

func newCowMap[V any](size int) cowMap[V] {
	return cowMap[V]{base: make(map[string]V, size)}
}

func (m *cowMap[V]) get(k string) (V, bool) {
	if m.over != nil {
		if e, ok := m.over[k]; ok {
			return e.v, e.ok
		}
	}
	v, ok := m.base[k]
	return v, ok
}

func (m *cowMap[V]) len() int {
	if m.over != nil {
		return m.n
	}
	return len(m.base)
}

// set stores v under k and returns the value it replaced.
func (m *cowMap[V]) set(k string, v V) (old V, existed bool) {
	if m.over == nil {
		old, existed = m.base[k]
		m.base[k] = v
		return old, existed
	}
	old, existed = m.get(k)
	if !existed {
		m.n++
	}
	m.over[k] = overlayEntry[V]{v: v, ok: true}
	return old, existed
}

// del removes k and returns the value it held.
func (m *cowMap[V]) del(k string) (old V, existed bool) {
	if m.over == nil {
		old, existed = m.base[k]
		if existed {
			delete(m.base, k)
		}
		return old, existed
	}
	old, existed = m.get(k)
	if existed {
		m.n--
		m.over[k] = overlayEntry[V]{}
	}
	return old, existed
}

// each calls fn for every entry of the merged view until fn returns false.
func (m *cowMap[V]) each(fn func(k string, v V) bool) {
	for k, v := range m.base {
		if m.over != nil {
			if _, shadowed := m.over[k]; shadowed {
				continue
			}
		}
		if !fn(k, v) {
			return
		}
	}
	for k, e := range m.over {
		if e.ok && !fn(k, e.v) {
			return
		}
	}
}

// freeze returns the base map, which stays unchanged until thaw.
func (m *cowMap[V]) freeze() map[string]V {
	m.over = make(map[string]overlayEntry[V])
	m.n = len(m.base)
	return m.base
}

func (m *cowMap[V]) thaw() {
	for k, e := range m.over {
		if e.ok {
			m.base[k] = e.v
		} else {
			delete(m.base, k)
		}
	}
	m.over = nil
}
