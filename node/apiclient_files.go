package node

import (
	"context"
	"net/url"
)

// The shared tree and the mounts, through the daemon's API.

func (a *APIClient) FilesLs(ctx context.Context, p string) ([]FilesEntry, error) {
	var out struct {
		Entries []FilesEntry `json:"entries"`
	}
	return out.Entries, a.doJSON(ctx, "GET", "files/ls", url.Values{"arg": {p}}, &out)
}

// FilesStat describes p; hash computes a tree directory's CID too.
func (a *APIClient) FilesStat(ctx context.Context, p string, hash bool) (*FilesEntry, error) {
	q := url.Values{"arg": {p}}
	if hash {
		q.Set("hash", "true")
	}
	var out FilesEntry
	return &out, a.doJSON(ctx, "GET", "files/stat", q, &out)
}

func (a *APIClient) filesChange(ctx context.Context, op string, q url.Values) (*FilesResult, error) {
	var out FilesResult
	return &out, a.doJSON(ctx, "POST", "files/"+op, q, &out)
}

func setFlag(q url.Values, name string, on bool) url.Values {
	if on {
		q.Set(name, "true")
	}
	return q
}

func (a *APIClient) FilesMkdir(ctx context.Context, p string, parents bool) (*FilesResult, error) {
	return a.filesChange(ctx, "mkdir", setFlag(url.Values{"arg": {p}}, "parents", parents))
}

// FilesCp links src (/ipfs/CID/... or a tree path naming linked content)
// at dst.
func (a *APIClient) FilesCp(ctx context.Context, src, dst string, parents bool) (*FilesResult, error) {
	return a.filesChange(ctx, "cp", setFlag(url.Values{"arg": {src, dst}}, "parents", parents))
}

func (a *APIClient) FilesMv(ctx context.Context, src, dst string) (*FilesResult, error) {
	return a.filesChange(ctx, "mv", url.Values{"arg": {src, dst}})
}

func (a *APIClient) FilesRm(ctx context.Context, recursive bool, ps ...string) (*FilesResult, error) {
	return a.filesChange(ctx, "rm", setFlag(url.Values{"arg": ps}, "recursive", recursive))
}

// Mount asks the daemon to mount the shared tree at dir (absolute); it
// returns once the mount is live.
func (a *APIClient) Mount(ctx context.Context, dir string) (string, error) {
	var out struct {
		Dir string `json:"dir"`
	}
	return out.Dir, a.doJSON(ctx, "POST", "mount", url.Values{"arg": {dir}}, &out)
}

func (a *APIClient) Unmount(ctx context.Context, dir string) error {
	var out struct{}
	return a.doJSON(ctx, "POST", "unmount", url.Values{"arg": {dir}}, &out)
}

func (a *APIClient) Mounts(ctx context.Context) ([]string, error) {
	var out []string
	return out, a.getJSON(ctx, "mount/ls", &out)
}
