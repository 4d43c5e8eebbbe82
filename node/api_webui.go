package node

import (
	"cmp"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/node/webui"
)

// The web console: /webui/ serves its embedded pages (node/webui), which
// read the API like any client. What the console needs beyond the CLI's
// API is here: the object list, searchable and paged.

func (a *api) handleWebUI() {
	a.mux.Handle("GET /webui/", http.StripPrefix("/webui/", webui.Handler()))
	a.mux.Handle("GET /webui", http.RedirectHandler("/webui/", http.StatusMovedPermanently))
	a.mux.Handle("GET /{$}", http.RedirectHandler("/webui/", http.StatusFound))
	a.handle("GET /api/v0/objects", a.objects)
}

// ObjectInfo is one object of the list: its health and tolerance are
// the leader's assessment from members' liveness and damage reports (no
// fragment is asked for; `fungi stat` asks).
type ObjectInfo struct {
	Root      string `json:"root"`
	Size      uint64 `json:"size"`
	Blocks    int    `json:"blocks"`
	Coding    string `json:"coding"`
	Holders   int    `json:"holders"`
	Health    string `json:"health"`
	Tolerance int    `json:"tolerance"`
	Pinned    bool   `json:"pinned"`
}

// ObjectList is a page of the cluster's objects.
type ObjectList struct {
	// Total counts every object; Matched those the query and the health
	// filter select; Counts are the selected ones by health.
	Total   int                `json:"total"`
	Matched int                `json:"matched"`
	Offset  int                `json:"offset"`
	Limit   int                `json:"limit"`
	Counts  fungi.HealthCounts `json:"counts"`
	Objects []ObjectInfo       `json:"objects"`
}

// MaxObjectsPage bounds a page of the object list.
const MaxObjectsPage = 1000

// objects: GET /api/v0/objects[?q=SUBSTRING][&health=H][&offset=N][&limit=N]
// lists objects worst health first, then by root.
func (a *api) objects(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	sel, err := parseObjectQuery(q)
	if err != nil {
		return err
	}
	states, err := a.repairs.Objects(r.Context())
	if err != nil {
		return err
	}
	pins := map[string]bool{}
	for _, p := range a.cluster.node().FSM().Pins() {
		pins[p] = true
	}
	all := make([]ObjectInfo, len(states))
	for i, s := range states {
		all[i] = ObjectInfo{Root: s.Root.String(), Size: s.Size, Blocks: s.Blocks, Coding: s.Coding.String(),
			Holders: s.Holders, Health: s.Health.String(), Tolerance: s.Tolerance, Pinned: pins[s.Root.String()]}
	}
	writeJSON(w, http.StatusOK, sel.page(all))
	return nil
}

// objectQuery selects a page of objects.
type objectQuery struct {
	match, health string
	offset, limit int
}

func parseObjectQuery(q url.Values) (objectQuery, error) {
	sel := objectQuery{match: strings.TrimSpace(q.Get("q")), health: q.Get("health"), limit: 50}
	switch sel.health {
	case "", "full", "degraded", "at_risk", "lost":
	default:
		return sel, badRequest("health %q: want full, degraded, at_risk or lost", sel.health)
	}
	for _, p := range []struct {
		name string
		to   *int
		max  int
	}{{"offset", &sel.offset, 1 << 40}, {"limit", &sel.limit, MaxObjectsPage}} {
		if s := q.Get(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > p.max {
				return sel, badRequest("%s %q: want a number from 0 to %d", p.name, s, p.max)
			}
			*p.to = n
		}
	}
	return sel, nil
}

var healthRank = map[string]int{"lost": 0, "at_risk": 1, "degraded": 2, "full": 3}

// page filters, orders and cuts the list.
func (sel objectQuery) page(all []ObjectInfo) ObjectList {
	out := ObjectList{Total: len(all), Offset: sel.offset, Limit: sel.limit, Objects: []ObjectInfo{}}
	matched := all[:0:0]
	for _, o := range all {
		if sel.match != "" && !strings.Contains(strings.ToLower(o.Root), strings.ToLower(sel.match)) {
			continue
		}
		if sel.health != "" && o.Health != sel.health {
			continue
		}
		matched = append(matched, o)
		switch o.Health {
		case "full":
			out.Counts.Full++
		case "degraded":
			out.Counts.Degraded++
		case "at_risk":
			out.Counts.AtRisk++
		case "lost":
			out.Counts.Lost++
		}
	}
	slices.SortFunc(matched, func(x, y ObjectInfo) int {
		return cmp.Or(cmp.Compare(healthRank[x.Health], healthRank[y.Health]), strings.Compare(x.Root, y.Root))
	})
	out.Matched = len(matched)
	if sel.offset < len(matched) {
		out.Objects = matched[sel.offset:min(len(matched), sel.offset+sel.limit)]
	}
	return out
}

// The API guards itself against other web sites: a page anywhere can
// make the browser of the node's operator send requests to 127.0.0.1
// (cross-site request forgery), or resolve its own name to 127.0.0.1
// (DNS rebinding) and read the answers. So a request that a browser
// marks as coming from another site (Origin, Sec-Fetch-Site) is refused,
// and on a loopback listener the Host must name the loopback (an IP or
// localhost): only the console's own pages, served from the node,
// reach the API from a browser. Clients that are not browsers send
// neither header and are not affected.
func guardBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := crossSite(r); why != "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": why})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossSite says why r must be refused ("": it need not be).
func crossSite(r *http.Request) string {
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := local.(*net.TCPAddr); ok && ta.IP.IsLoopback() && !loopbackHost(r.Host) {
			return "host " + strconv.Quote(r.Host) + " refused: the API listens on the loopback; use 127.0.0.1 or localhost"
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return "cross-site request refused"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return "request from origin " + strconv.Quote(o) + " refused: the API answers its own pages only"
		}
	}
	return ""
}

// loopbackHost: host (with or without a port) is a loopback IP or
// localhost.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// started is when this process began serving (for uptime).
var started = time.Now()
