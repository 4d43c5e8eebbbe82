package node

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"

	"github.com/ipfs/boxo/ipns"
	"github.com/libp2p/go-libp2p/core/routing"
)

// handleRouting registers the routing endpoints, as Kubo's `ipfs routing
// put|get` for /ipns/ keys: signed IPNS records kept in the cluster's
// metadata.
func (a *api) handleRouting() {
	a.handle("POST /api/v0/routing/put", a.routingPut)
	a.handle("GET /api/v0/routing/get", a.routingGet)
}

// ipnsRecordType is the media type of a marshalled IPNS record.
const ipnsRecordType = "application/vnd.ipfs.ipns-record"

func ipnsArg(r *http.Request) (ipns.Name, error) {
	key := r.URL.Query().Get("arg")
	if key == "" {
		return ipns.Name{}, badRequest("argument \"arg\" (the key, /ipns/<name>) is required")
	}
	return parseIPNSPath(key)
}

// routingPut: POST /api/v0/routing/put?arg=/ipns/NAME[&allow-offline=true]
// with the marshalled record as the body (raw, or the first part of a
// multipart body as Kubo's clients send it). Answers an IPNSPutResult.
func (a *api) routingPut(w http.ResponseWriter, r *http.Request) error {
	name, err := ipnsArg(r)
	if err != nil {
		return err
	}
	allowOffline := false
	if s := r.URL.Query().Get("allow-offline"); s != "" {
		if allowOffline, err = strconv.ParseBool(s); err != nil {
			return badRequest("allow-offline %q: want true or false", s)
		}
	}
	value, err := readIPNSBody(r)
	if err != nil {
		return err
	}
	res, err := a.content.ipns().put(r.Context(), name, value, allowOffline)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// readIPNSBody reads the record from a raw or multipart body, refusing
// more than an IPNS record may hold.
func readIPNSBody(r *http.Request) ([]byte, error) {
	var body io.Reader = r.Body
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil &&
		(mt == "multipart/form-data" || mt == "multipart/mixed") {
		part, err := multipart.NewReader(r.Body, params["boundary"]).NextPart()
		if err != nil {
			return nil, badRequest("routing put: no record in the multipart body: %v", err)
		}
		body = part
	}
	value, err := io.ReadAll(io.LimitReader(body, int64(ipns.MaxRecordSize)+1))
	if err != nil {
		return nil, badRequest("routing put: reading the record: %v", err)
	}
	if len(value) > ipns.MaxRecordSize {
		return nil, badRequest("invalid IPNS record: over the IPNS limit of %d bytes", ipns.MaxRecordSize)
	}
	return value, nil
}

// routingGet: GET /api/v0/routing/get?arg=/ipns/NAME answers the record's
// bytes (application/vnd.ipfs.ipns-record), after catching up with the
// leader so that a put on any node is seen; 404 when the cluster holds no
// record for the name or it expired.
func (a *api) routingGet(w http.ResponseWriter, r *http.Request) error {
	name, err := ipnsArg(r)
	if err != nil {
		return err
	}
	s := a.content.ipns()
	s.cc.catchUp(r.Context())
	value, err := s.get(r.Context(), name)
	if err != nil {
		switch {
		case errors.Is(err, routing.ErrNotFound):
			return httpError{http.StatusNotFound, fmt.Errorf("/ipns/%s: %w (the cluster holds no record for it)", name, err)}
		case errors.Is(err, ipns.ErrExpiredRecord):
			return httpError{http.StatusNotFound, err}
		}
		return err
	}
	w.Header().Set("Content-Type", ipnsRecordType)
	w.Header().Set("Content-Length", strconv.Itoa(len(value)))
	_, err = w.Write(value)
	return err
}
