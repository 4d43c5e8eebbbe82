package fungistor_test

// The one-way dependencies of docs/architecture.md, enforced: a package may
// import only the layers listed for it.

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/fungistor/fungistor"

// allowed maps a top-level folder to the top-level folders it may import.
var allowed = map[string][]string{
	"fungi":     {},
	"store":     {"fungi"},
	"p2p":       {"fungi"},
	"consensus": {"fungi"},
	"node":      {"fungi", "store", "p2p", "consensus"},
	"testnet":   {"node"},
	"cmd":       {"node", "testnet"},
}

// capabilities are node's packages of their own (a gateway, a mount, ...):
// each sees the node only through the small interface it declares, and
// may import only these of ours (never node itself, nor one another).
var capabilities = map[string][]string{
	"node/gateway": {"fungi"},
	"node/mount":   {"fungi"},
	"node/repair":  {"fungi"},
	"node/webui":   {},
}

func TestLayering(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module (tools), not ours
			}
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || !strings.Contains(path, "/") {
			return nil
		}
		layer := strings.Split(filepath.ToSlash(path), "/")[0]
		ok, known := allowed[layer]
		if !known {
			t.Errorf("%s: folder %q is not a layer of docs/architecture.md", path, layer)
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p != module && !strings.HasPrefix(p, module+"/") {
				continue
			}
			rel := strings.TrimPrefix(p, module+"/")
			if capOK, isCap := capabilities[filepath.ToSlash(filepath.Dir(path))]; isCap {
				permitted := false
				for _, a := range capOK {
					permitted = permitted || rel == a || strings.HasPrefix(rel, a+"/")
				}
				if !permitted {
					t.Errorf("%s imports %s: a node capability may import only %v", path, p, capOK)
				}
				continue
			}
			target := strings.Split(rel, "/")[0]
			if target == layer {
				continue
			}
			permitted := false
			for _, a := range ok {
				permitted = permitted || a == target
			}
			if !permitted {
				t.Errorf("%s imports %s: %s may not depend on %s", path, p, layer, target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("only %d files checked; is the test running at the module root?", checked)
	}
}
