package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fungistor/fungistor/store"
	"github.com/fungistor/fungistor/store/zdb"
)

// session is a connection's 0-db state.
type session struct {
	s        *Server
	c        *conn
	ns       *zdb.Namespace
	nsName   string
	admin    bool
	writable bool
	nonce    string

	pendingNS *zdb.Namespace // writes not yet committed
	pending   uint64

	buf    []byte // scratch for values read
	failed bool   // the command being run replied with an error
}

// get reads a value into the session's scratch buffer; the value is valid
// until the next get.
func (x *session) get(key []byte) ([]byte, error) {
	if cap(x.buf) > 1<<20 {
		x.buf = nil // don't pin a large value's buffer
	}
	v, buf, err := x.ns.GetBuf(key, x.buf)
	x.buf = buf
	return v, err
}

// commit makes the session's acknowledged-to-be writes durable per policy.
func (x *session) commit() error {
	if x.pending == 0 {
		return nil
	}
	ns, p := x.pendingNS, x.pending
	x.pendingNS, x.pending = nil, 0
	return ns.Flush(p)
}

func (x *session) noteWrite(ns *zdb.Namespace, commit uint64) {
	if x.pendingNS != nil && x.pendingNS != ns {
		if err := x.commit(); err != nil {
			x.c.nc.Close()
		}
	}
	x.pendingNS = ns
	if commit > x.pending {
		x.pending = commit
	}
}

// namespace returns the session's namespace, re-resolving it when it was
// reloaded or compacted; nil (after replying) when it was deleted.
func (x *session) namespace() *zdb.Namespace {
	if x.ns != nil {
		return x.ns
	}
	ns, err := x.s.db.Namespace(x.nsName)
	if err != nil {
		return nil
	}
	x.ns = ns
	return ns
}

type handler struct {
	fn func(x *session, args [][]byte) bool // false closes the connection
	// argc: exact argument count including the name when > 0; -n means at
	// least n
	argc int
}

var commands map[string]handler

func init() {
	commands = map[string]handler{
		"PING":    {cmdPing, -1},
		"TIME":    {cmdTime, -1},
		"INFO":    {cmdInfo, -1},
		"AUTH":    {cmdAuth, -2},
		"SET":     {cmdSet, -3},
		"SETX":    {cmdSet, -3},
		"GET":     {cmdGet, 2},
		"MGET":    {cmdMGet, -2},
		"DEL":     {cmdDel, -2},
		"EXISTS":  {cmdExists, 2},
		"CHECK":   {cmdCheck, 2},
		"LENGTH":  {cmdLength, 2},
		"KEYTIME": {cmdKeyTime, 2},
		"KEYCUR":  {cmdKeyCur, 2},
		"SCAN":    {cmdScan, -1},
		"SCANX":   {cmdScan, -1},
		"RSCAN":   {cmdScan, -1},
		"HISTORY": {cmdHistory, -2},
		"DBSIZE":  {cmdDBSize, -1},
		"NSNEW":   {cmdNSNew, 2},
		"NSDEL":   {cmdNSDel, 2},
		"NSLIST":  {cmdNSList, -1},
		"NSINFO":  {cmdNSInfo, 2},
		"NSSET":   {cmdNSSet, 4},
		"NSJUMP":  {cmdNSJump, -1},
		"SELECT":  {cmdSelect, -1},
		"RELOAD":  {cmdReload, 2},
		"FLUSH":   {cmdFlush, -1},
		"WAIT":    {cmdWait, -2},
		"STOP":    {cmdStop, -1},
		// for generic Redis clients and tools
		"COMMAND": {cmdCommand, -1},
		"CONFIG":  {cmdConfig, -1},
		"QUIT":    {cmdQuit, -1},
	}
}

// dispatch runs one command and reports whether the connection goes on.
func (x *session) dispatch(args [][]byte) bool {
	var name [16]byte
	if len(args[0]) > len(name) {
		x.fail("Command not supported")
		return true
	}
	n := copy(name[:], args[0])
	for i := 0; i < n; i++ {
		if c := name[i]; c >= 'a' && c <= 'z' {
			name[i] = c - 'a' + 'A'
		}
	}
	h, ok := commands[string(name[:n])]
	if !ok {
		x.fail("Command not supported")
		return true
	}
	if h.argc > 0 && len(args) != h.argc || h.argc < 0 && len(args) < -h.argc {
		if h.argc < 0 && len(args) < -h.argc {
			x.fail("Missing arguments")
		} else {
			x.fail("Unexpected arguments")
		}
		return true
	}
	if x.ns != nil && x.ns.Closed() {
		x.ns = nil
	}
	if x.ns == nil && x.namespace() == nil {
		x.fail("Your active namespace is not available anymore (probably removed).")
		return false
	}
	x.failed = false
	goOn := h.fn(x, args)
	if x.s.waiters.Load() > 0 && !x.failed {
		x.s.notify(x, string(name[:n]))
	}
	return goOn
}

func (x *session) fail(msg string) {
	x.failed = true
	x.s.stats.failed.Add(1)
	x.c.w.Error(msg)
}

func (x *session) denied() bool {
	x.s.stats.unauthorized.Add(1)
	x.fail("Permission denied")
	return true
}

// engineError replies for an engine error; ErrClosed re-resolves the
// namespace and retries nothing (the client sees a retryable error).
func (x *session) engineError(err error, op string) {
	switch {
	case errors.Is(err, zdb.ErrClosed):
		x.ns = nil
		x.fail("Namespace is temporarily unavailable, retry")
	case errors.Is(err, zdb.ErrWorm):
		if op == "del" {
			x.fail("Cannot delete a key when namespace is in worm mode")
		} else {
			x.fail("Namespace is protected by worm mode")
		}
	case errors.Is(err, store.ErrFrozen):
		x.fail("Namespace is temporarily frozen (read-write disabled)")
	case errors.Is(err, store.ErrReadOnly):
		x.fail("Namespace is temporarily locked (read-only)")
	case errors.Is(err, store.ErrNamespaceFull):
		x.fail("No space left on this namespace")
	case errors.Is(err, store.ErrKeyTooLong):
		if op == "set" {
			x.fail("Key too large")
		} else {
			x.fail("Invalid key")
		}
	case errors.Is(err, store.ErrValueTooLarge):
		x.fail("Payload too big")
	case errors.Is(err, zdb.ErrOnlyUpdate):
		x.fail("Invalid key, only update authorized")
	case errors.Is(err, store.ErrInvalidKey):
		x.fail("Invalid key")
	case errors.Is(err, store.ErrNotFound):
		x.fail("Key not found")
	case errors.Is(err, store.ErrCorrupt):
		x.s.log.Error("zdb: corrupt record", "namespace", x.nsName, "err", err)
		x.fail("Internal Error (stored data is corrupt)")
	default:
		x.s.log.Error("zdb: internal error", "namespace", x.nsName, "op", op, "err", err)
		x.fail("Internal Error")
	}
}

func cmdPing(x *session, _ [][]byte) bool { x.c.w.Simple("PONG"); return true }

func cmdQuit(x *session, _ [][]byte) bool { x.c.w.Simple("OK"); return false }

func cmdCommand(x *session, _ [][]byte) bool { x.c.w.Array(0); return true }

// CONFIG GET answers with nothing, so tools that probe it (redis-benchmark)
// go on; there is nothing to configure at run time.
func cmdConfig(x *session, _ [][]byte) bool { x.c.w.Array(0); return true }

func cmdStop(x *session, _ [][]byte) bool { x.fail("Unauthorized"); return true }

func cmdTime(x *session, _ [][]byte) bool {
	now := time.Now()
	x.c.w.Array(2)
	x.c.w.BulkString(strconv.FormatInt(now.Unix(), 10))
	x.c.w.BulkString(strconv.Itoa(now.Nanosecond() / 1000))
	return true
}

func cmdInfo(x *session, _ [][]byte) bool {
	s := x.s
	st := s.db.Stats()
	mb := func(n int64) string { return fmt.Sprintf("%.2f", float64(n)/(1<<20)) }
	var b strings.Builder
	fmt.Fprintf(&b, "# server\nserver_name: 0-db (zdb)\nserver_revision: fungistor\nengine_revision: fungistor-zdb-1\n")
	fmt.Fprintf(&b, "instance_id: %d\nboot_time: %d\nuptime: %d\n\n", s.instanceID, s.boot.Unix(), int64(time.Since(s.boot).Seconds()))
	fmt.Fprintf(&b, "# clients\nclients_lifetime: %d\n\n", s.stats.clients.Load())
	fmt.Fprintf(&b, "# internals\nsequential_key_size: 8\n\n")
	fmt.Fprintf(&b, "# stats\ncommands_executed: %d\ncommands_failed: %d\ncommands_unauthorized: %d\n",
		s.stats.commands.Load(), s.stats.failed.Load(), s.stats.unauthorized.Load())
	fmt.Fprintf(&b, "index_disk_read_failed: 0\nindex_disk_write_failed: 0\n")
	fmt.Fprintf(&b, "data_disk_read_failed: %d\ndata_disk_write_failed: %d\n", st.DataReadErrors.Load(), st.DataWriteErrors.Load())
	fmt.Fprintf(&b, "index_disk_read_bytes: 0\nindex_disk_read_mb: 0.00\nindex_disk_write_bytes: 0\nindex_disk_write_mb: 0.00\n")
	r, w := st.DataReadBytes.Load(), st.DataWriteBytes.Load()
	fmt.Fprintf(&b, "data_disk_read_bytes: %d\ndata_disk_read_mb: %s\ndata_disk_write_bytes: %d\ndata_disk_write_mb: %s\n", r, mb(r), w, mb(w))
	rx, tx := s.stats.rx.Load(), s.stats.tx.Load()
	fmt.Fprintf(&b, "network_rx_bytes: %d\nnetwork_rx_mb: %s\nnetwork_tx_bytes: %d\nnetwork_tx_mb: %s\n", rx, mb(rx), tx, mb(tx))
	x.c.w.BulkString(b.String())
	return true
}

// --- authentication ---

func (x *session) newNonce() string {
	var b [8]byte
	rand.Read(b[:])
	x.nonce = hex.EncodeToString(b[:])
	return x.nonce
}

// secureMatch checks a SECURE hash: lowercase hex sha1("nonce:password").
func secureMatch(nonce, password string, hash []byte) bool {
	sum := sha1.Sum([]byte(nonce + ":" + password))
	want := hex.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), hash) == 1
}

func equalPassword(a string, b []byte) bool {
	return subtle.ConstantTimeCompare([]byte(a), b) == 1
}

func cmdAuth(x *session, args [][]byte) bool {
	switch len(args) {
	case 2:
		if x.s.cfg.Admin == "" {
			x.fail("Authentication disabled")
		} else if len(args[1]) == 0 {
			x.fail("Invalid argument")
		} else if len(args[1]) > 128 {
			x.fail("Password too long")
		} else if equalPassword(x.s.cfg.Admin, args[1]) {
			x.admin = true
			x.c.w.Simple("OK")
		} else {
			x.s.stats.unauthorized.Add(1)
			x.fail("Access denied")
		}
	case 3:
		if !strings.EqualFold(string(args[1]), "SECURE") {
			x.fail("Only SECURE extra method supported")
			return true
		}
		if strings.EqualFold(string(args[2]), "CHALLENGE") {
			x.c.w.Simple(x.newNonce())
			return true
		}
		nonce := x.nonce
		x.nonce = ""
		switch {
		case x.s.cfg.Admin == "":
			x.fail("Authentication disabled")
		case nonce == "":
			x.fail("No CHALLENGE requested, secure authentication not available")
		case len(args[2]) != 40:
			x.fail("Invalid hash length")
		case secureMatch(nonce, x.s.cfg.Admin, args[2]):
			x.admin = true
			x.c.w.Simple("OK")
		default:
			x.s.stats.unauthorized.Add(1)
			x.fail("Access denied")
		}
	default:
		x.fail("Unexpected arguments")
	}
	return true
}

func cmdSelect(x *session, args [][]byte) bool {
	if len(args) < 2 || len(args[1]) == 0 {
		x.fail("Invalid argument")
		return true
	}
	if len(args[1]) > 128 {
		x.fail("Namespace too long")
		return true
	}
	ns, err := x.s.db.Namespace(string(args[1]))
	if err != nil {
		x.fail("Namespace not found")
		return true
	}
	st := ns.Settings()
	writable := true
	if st.Password != "" {
		switch {
		case len(args) > 4:
			x.fail("Too many arguments")
			return true
		case len(args) == 2:
			if !st.Public {
				x.s.stats.unauthorized.Add(1)
				x.fail("Namespace protected and private")
				return true
			}
			writable = false
		case len(args) == 3:
			if len(args[2]) >= 256 {
				x.fail("Password too long")
				return true
			}
			if !equalPassword(st.Password, args[2]) {
				x.s.stats.unauthorized.Add(1)
				x.fail("Access denied")
				return true
			}
		case len(args) == 4:
			if !strings.EqualFold(string(args[2]), "SECURE") {
				x.fail("Only SECURE extra method supported")
				return true
			}
			if x.nonce == "" {
				x.fail("No CHALLENGE requested, secure authentication not available")
				return true
			}
			if len(args[3]) != 40 {
				x.fail("Invalid hash length")
				return true
			}
			if !secureMatch(x.nonce, st.Password, args[3]) {
				x.s.stats.unauthorized.Add(1)
				x.fail("Access denied")
				return true
			}
		}
	}
	if err := x.commit(); err != nil {
		x.engineError(err, "select")
		return false
	}
	x.ns, x.nsName, x.writable = ns, ns.Name(), writable
	x.c.w.Simple("OK")
	return true
}

// --- data commands ---

func (x *session) checkWrite() bool {
	if !x.writable {
		x.fail("Namespace is in read-only mode")
		return false
	}
	return true
}

func cmdSet(x *session, args [][]byte) bool {
	if len(args) > 4 {
		x.fail("Unexpected arguments")
		return true
	}
	if len(args[1]) > store.MaxKeySize {
		x.fail("Key too large")
		return true
	}
	if !x.checkWrite() {
		return true
	}
	key := args[1]
	if x.ns.Mode() == zdb.ModeUser && len(key) == 0 {
		x.fail("Invalid argument, key needed")
		return true
	}
	if len(key) == 0 {
		key = nil
	}
	var stored []byte
	var changed bool
	var commit uint64
	var err error
	if len(args) == 4 {
		if !x.admin {
			return x.denied()
		}
		ts, perr := strconv.ParseUint(string(args[3]), 10, 32)
		if perr != nil {
			x.fail("Invalid timestamp")
			return true
		}
		stored, changed, commit, err = x.ns.WriteTime(key, args[2], uint32(ts))
	} else {
		stored, changed, commit, err = x.ns.Write(key, args[2])
	}
	if err != nil {
		x.engineError(err, "set")
		return true
	}
	if !changed {
		x.c.w.Nil()
		return true
	}
	x.noteWrite(x.ns, commit)
	x.c.w.Bulk(stored)
	return true
}

func (x *session) keyArg(k []byte) bool {
	if len(k) == 0 {
		x.fail("Invalid argument")
		return false
	}
	if len(k) > store.MaxKeySize {
		x.fail("Invalid key")
		return false
	}
	return true
}

// seqMiss reports a sequential key that cannot name an id (0-db: nil).
func (x *session) seqMiss(k []byte) bool {
	return x.ns.Mode() == zdb.ModeSeq && len(k) != 8 && len(k) != 4
}

func cmdGet(x *session, args [][]byte) bool {
	if !x.keyArg(args[1]) {
		return true
	}
	if x.seqMiss(args[1]) {
		x.c.w.Nil()
		return true
	}
	v, err := x.get(args[1])
	switch {
	case err == nil:
		x.c.w.Bulk(v)
	case errors.Is(err, store.ErrNotFound):
		x.c.w.Nil()
	default:
		x.engineError(err, "get")
	}
	return true
}

func cmdMGet(x *session, args [][]byte) bool {
	for _, k := range args[1:] {
		if len(k) > store.MaxKeySize {
			x.fail("Invalid key")
			return true
		}
	}
	if _, frozen := x.ns.State(); frozen {
		x.engineError(store.ErrFrozen, "get")
		return true
	}
	x.c.w.Array(len(args) - 1)
	for _, k := range args[1:] {
		if len(k) == 0 || x.seqMiss(k) {
			x.c.w.Nil()
			continue
		}
		v, err := x.get(k)
		switch {
		case err == nil:
			x.c.w.Bulk(v)
		case errors.Is(err, store.ErrNotFound):
			x.c.w.Nil()
		default:
			x.s.stats.failed.Add(1)
			x.c.w.Error("Internal Error")
		}
	}
	return true
}

func cmdDel(x *session, args [][]byte) bool {
	if len(args) > 3 {
		x.fail("Unexpected arguments")
		return true
	}
	if !x.keyArg(args[1]) || !x.checkWrite() {
		return true
	}
	var commit uint64
	var err error
	if len(args) == 3 {
		if !x.admin {
			return x.denied()
		}
		ts, perr := strconv.ParseUint(string(args[2]), 10, 32)
		if perr != nil {
			x.fail("Invalid timestamp")
			return true
		}
		commit, err = x.ns.DeleteTime(args[1], uint32(ts))
	} else {
		commit, err = x.ns.Delete(args[1])
	}
	if err != nil {
		if errors.Is(err, store.ErrInvalidKey) {
			err = store.ErrNotFound
		}
		x.engineError(err, "del")
		return true
	}
	x.noteWrite(x.ns, commit)
	x.c.w.Simple("OK")
	return true
}

// stat looks a key up for EXISTS, LENGTH, KEYTIME and CHECK; ok is false
// when a reply was already written.
func (x *session) stat(k []byte) (m zdb.Meta, found, ok bool) {
	if !x.keyArg(k) {
		return m, false, false
	}
	if x.seqMiss(k) {
		return m, false, true
	}
	m, err := x.ns.Stat(k)
	switch {
	case err == nil:
		return m, true, true
	case errors.Is(err, store.ErrNotFound):
		return m, false, true
	}
	x.engineError(err, "get")
	return m, false, false
}

func cmdExists(x *session, args [][]byte) bool {
	if _, found, ok := x.stat(args[1]); ok {
		if found {
			x.c.w.Int(1)
		} else {
			x.c.w.Int(0)
		}
	}
	return true
}

// statInt replies field(meta) for a key that exists, nil otherwise.
func statInt(field func(zdb.Meta) int64) func(*session, [][]byte) bool {
	return func(x *session, args [][]byte) bool {
		if m, found, ok := x.stat(args[1]); ok {
			if found {
				x.c.w.Int(field(m))
			} else {
				x.c.w.Nil()
			}
		}
		return true
	}
}

var (
	cmdLength  = statInt(func(m zdb.Meta) int64 { return int64(m.Size) })
	cmdKeyTime = statInt(func(m zdb.Meta) int64 { return int64(m.Time) })
)

func cmdCheck(x *session, args [][]byte) bool {
	_, found, ok := x.stat(args[1])
	if !ok {
		return true
	}
	if !found {
		x.c.w.Nil()
		return true
	}
	err := x.ns.Check(args[1])
	switch {
	case err == nil:
		x.c.w.Int(1)
	case errors.Is(err, store.ErrCorrupt):
		x.c.w.Int(0)
	default:
		x.c.w.Int(-1)
	}
	return true
}

func cmdKeyCur(x *session, args [][]byte) bool {
	if !x.keyArg(args[1]) {
		return true
	}
	c, err := x.ns.Cursor(args[1])
	if err != nil {
		if errors.Is(err, store.ErrInvalidKey) {
			err = store.ErrNotFound
		}
		x.engineError(err, "keycur")
		return true
	}
	x.c.w.Bulk(c)
	return true
}

// scanBatch is how many keys one SCAN reply carries at most.
const scanBatch = 128

func cmdScan(x *session, args [][]byte) bool {
	if len(args) > 2 {
		x.fail("Unexpected arguments")
		return true
	}
	var cursor []byte
	if len(args) == 2 {
		cursor = args[1]
		if len(cursor) != 8 {
			x.fail("Invalid key format")
			return true
		}
	}
	reverse := len(args[0]) == 5 // RSCAN
	items, next, err := x.ns.Scan(cursor, scanBatch, reverse)
	if err != nil {
		if errors.Is(err, store.ErrInvalidKey) {
			x.fail("Invalid key format")
		} else {
			x.engineError(err, "scan")
		}
		return true
	}
	if len(items) == 0 {
		x.fail("No more data")
		return true
	}
	x.c.w.Array(2)
	x.c.w.Bulk(next)
	x.c.w.Array(len(items))
	for _, it := range items {
		x.c.w.Array(3)
		x.c.w.Bulk(it.Key)
		x.c.w.Int(int64(it.Size))
		x.c.w.Int(int64(it.Time))
	}
	return true
}

func cmdHistory(x *session, args [][]byte) bool {
	if len(args) > 3 {
		x.fail("Invalid arguments")
		return true
	}
	if !x.keyArg(args[1]) {
		return true
	}
	var cursor []byte
	if len(args) == 3 {
		cursor = args[2]
		if len(cursor) != 8 {
			x.fail("Invalid arguments")
			return true
		}
		if bytes.Equal(cursor, make([]byte, 8)) {
			x.fail("No more history")
			return true
		}
	}
	vs, next, err := x.ns.History(args[1], cursor, 1)
	switch {
	case err == nil && len(vs) == 1:
	case errors.Is(err, store.ErrNotFound):
		x.fail("Key not found")
		return true
	case errors.Is(err, store.ErrCorrupt) && cursor != nil:
		x.fail("Invalid arguments (invalid key)")
		return true
	case err == nil:
		x.fail("No more history")
		return true
	default:
		x.engineError(err, "history")
		return true
	}
	x.c.w.Array(3)
	if next == nil {
		x.c.w.Nil()
	} else {
		x.c.w.Bulk(next)
	}
	x.c.w.BulkString(strconv.FormatUint(uint64(vs[0].Time), 10))
	x.c.w.Bulk(vs[0].Value)
	return true
}

func cmdDBSize(x *session, _ [][]byte) bool {
	x.c.w.Int(x.ns.Len())
	return true
}

// --- namespaces ---

func (x *session) nsArg(name []byte) bool {
	if len(name) == 0 {
		x.fail("Invalid argument")
		return false
	}
	if len(name) > 128 {
		x.fail("Namespace too long")
		return false
	}
	return true
}

func cmdNSNew(x *session, args [][]byte) bool {
	if !x.admin {
		return x.denied()
	}
	if !x.nsArg(args[1]) {
		return true
	}
	name := string(args[1])
	if name == zdb.DefaultNamespace || !zdb.ValidName(name) {
		x.fail("This name is not allowed")
		return true
	}
	_, err := x.s.db.CreateNamespace(name)
	switch {
	case err == nil:
		x.c.w.Simple("OK")
	case errors.Is(err, zdb.ErrNSExists):
		x.fail("This namespace is not available")
	default:
		x.s.log.Error("zdb: create namespace", "namespace", name, "err", err)
		x.fail("Could not create namespace")
	}
	return true
}

func cmdNSDel(x *session, args [][]byte) bool {
	if !x.admin {
		return x.denied()
	}
	if !x.nsArg(args[1]) {
		return true
	}
	name := string(args[1])
	switch {
	case name == zdb.DefaultNamespace:
		x.fail("Cannot remove default namespace")
		return true
	case name == x.nsName:
		x.fail("Cannot remove namespace you're currently using.")
		return true
	}
	err := x.s.db.DeleteNamespace(name)
	switch {
	case err == nil:
		x.c.w.Simple("OK")
	case errors.Is(err, zdb.ErrNoNamespace):
		x.fail("This namespace doesn't exists")
	default:
		x.s.log.Error("zdb: delete namespace", "namespace", name, "err", err)
		x.fail("Could not delete this namespace")
	}
	return true
}

func cmdNSList(x *session, _ [][]byte) bool {
	names := x.s.db.Names()
	x.c.w.Array(len(names))
	x.c.w.BulkString(zdb.DefaultNamespace)
	for _, n := range names {
		if n != zdb.DefaultNamespace {
			x.c.w.BulkString(n)
		}
	}
	return true
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func cmdNSInfo(x *session, args [][]byte) bool {
	if !x.nsArg(args[1]) {
		return true
	}
	ns, err := x.s.db.Namespace(string(args[1]))
	if err != nil {
		x.fail("Namespace not found")
		return true
	}
	st := ns.Settings()
	locked, frozen := ns.State()
	data, idx := ns.Payload(), ns.IndexSize()
	var idLE [4]byte
	binary.LittleEndian.PutUint32(idLE[:], uint32(ns.NextID()))
	fileID, fileOff := ns.CurrentFile()
	mode := "userkey"
	if st.Mode == zdb.ModeSeq {
		mode = "sequential"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# namespace\nname: %s\nentries: %d\npublic: %s\nworm: %s\nlocked: %s\npassword: %s\n",
		ns.Name(), ns.Len(), yesno(st.Public), yesno(st.Worm), yesno(locked || frozen), yesno(st.Password != ""))
	fmt.Fprintf(&b, "data_size_bytes: %d\ndata_size_mb: %.2f\ndata_limits_bytes: %d\n", data, float64(data)/(1<<20), st.MaxSize)
	fmt.Fprintf(&b, "index_size_bytes: %d\nindex_size_kb: %.2f\n", idx, float64(idx)/1024)
	fmt.Fprintf(&b, "next_internal_id: 0x%08x\nmode: %s\n", binary.BigEndian.Uint32(idLE[:]), mode)
	st0 := x.s.db.Stats()
	fmt.Fprintf(&b, "stats_index_io_errors: 0\nstats_index_io_error_last: 0\nstats_index_faults: 0\n")
	fmt.Fprintf(&b, "stats_data_io_errors: %d\nstats_data_io_error_last: 0\nstats_data_faults: 0\n", st0.DataReadErrors.Load()+st0.DataWriteErrors.Load())
	if st.MaxSize > 0 {
		fmt.Fprintf(&b, "space_available: %d\n", max(st.MaxSize-data, 0))
	}
	cfg := x.s.db.Config()
	ifree, dfree := diskFree(cfg.IndexDir), diskFree(cfg.DataDir)
	fmt.Fprintf(&b, "index_disk_freespace_bytes: %d\nindex_disk_freespace_mb: %.2f\n", ifree, float64(ifree)/(1<<20))
	fmt.Fprintf(&b, "data_disk_freespace_bytes: %d\ndata_disk_freespace_mb: %.2f\n", dfree, float64(dfree)/(1<<20))
	fmt.Fprintf(&b, "data_current_id: %d\ndata_current_offset: %d\n", fileID, fileOff)
	fmt.Fprintf(&b, "data_files: %d\ndata_disk_bytes: %d\n", ns.DataFiles(), ns.DataSize())
	if x.admin {
		fmt.Fprintf(&b, "data_path: %s/%s\nindex_path: %s/%s\n", cfg.DataDir, ns.Name(), cfg.IndexDir, ns.Name())
	}
	x.c.w.BulkString(b.String())
	return true
}

func diskFree(dir string) int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return 0
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

func cmdNSSet(x *session, args [][]byte) bool {
	if !x.admin {
		return x.denied()
	}
	for _, a := range args[1:] {
		if len(a) == 0 {
			x.fail("Invalid argument")
			return true
		}
	}
	if len(args[1]) > 128 {
		x.fail("Namespace too long")
		return true
	}
	if len(args[2]) > 63 || len(args[3]) > 63 {
		x.fail("Argument too long")
		return true
	}
	ns, err := x.s.db.Namespace(string(args[1]))
	if err != nil {
		x.fail("Namespace not found")
		return true
	}
	prop, val := string(args[2]), string(args[3])
	if ns.Name() == zdb.DefaultNamespace && prop != "mode" && prop != "lock" && prop != "freeze" {
		x.fail("Cannot update default namespace")
		return true
	}
	switch prop {
	case "lock":
		ns.SetLocked(val == "1")
		if val != "1" {
			ns.SetFrozen(false)
		}
	case "freeze":
		ns.SetFrozen(val == "1")
		if val != "1" {
			ns.SetLocked(false)
		}
	case "maxsize", "password", "public", "worm", "mode":
		if prop == "mode" && x.s.cfg.FixedMode {
			x.fail("This server instance is configured to use a single runtime mode")
			return true
		}
		err := ns.Update(func(st *zdb.Settings) error {
			switch prop {
			case "maxsize":
				n, err := strconv.ParseInt(val, 10, 64)
				if err != nil || n < 0 {
					return errBadValue
				}
				st.MaxSize = n
			case "password":
				if val == "*" {
					val = ""
				}
				st.Password = val
			case "public":
				st.Public = val[0] == '1'
			case "worm":
				st.Worm = val[0] == '1'
			case "mode":
				m, err := zdb.ParseMode(val)
				if err != nil || (val != "user" && val != "seq") {
					return errBadMode
				}
				st.Mode = m
			}
			return nil
		})
		switch {
		case err == nil:
		case errors.Is(err, errBadValue):
			x.fail("Invalid value")
			return true
		case errors.Is(err, errBadMode):
			x.fail("Invalid property value (expected: user, seq)")
			return true
		case errors.Is(err, zdb.ErrNotEmpty):
			x.fail("Cannot change mode of used namespace")
			return true
		default:
			x.engineError(err, "nsset")
			return true
		}
	default:
		x.fail("Invalid property")
		return true
	}
	x.c.w.Simple("OK")
	return true
}

var (
	errBadValue = errors.New("bad value")
	errBadMode  = errors.New("bad mode")
)

func cmdNSJump(x *session, _ [][]byte) bool {
	if !x.admin {
		return x.denied()
	}
	if err := x.commit(); err != nil {
		x.engineError(err, "jump")
		return false
	}
	if err := x.ns.Jump(); err != nil {
		x.engineError(err, "jump")
		return true
	}
	x.c.w.Simple("OK")
	return true
}

func cmdReload(x *session, args [][]byte) bool {
	if !x.admin {
		return x.denied()
	}
	if !x.nsArg(args[1]) {
		return true
	}
	if err := x.commit(); err != nil {
		x.engineError(err, "reload")
		return false
	}
	err := x.s.db.Reload(string(args[1]))
	switch {
	case err == nil:
		if x.nsName == string(args[1]) {
			x.ns = nil
			x.namespace()
		}
		x.c.w.Simple("OK")
	case errors.Is(err, zdb.ErrNoNamespace):
		x.fail("Namespace not found")
	default:
		x.engineError(err, "reload")
	}
	return true
}

func cmdFlush(x *session, _ [][]byte) bool {
	st := x.ns.Settings()
	if st.Public || st.Password == "" {
		x.fail("Flushing public namespace denied")
		return true
	}
	if !x.checkWrite() {
		return true
	}
	if err := x.commit(); err != nil {
		x.engineError(err, "flush")
		return false
	}
	if err := x.ns.Reset(); err != nil {
		x.engineError(err, "flush")
		return true
	}
	x.c.w.Simple("OK")
	return true
}
