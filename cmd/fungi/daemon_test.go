package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The daemon serves the content commands through its API: the CLI finds it
// through $FUNGI_PATH/api, and results equal a direct repo's.
func TestDaemon(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	env := append(os.Environ(), "FUNGI_PATH="+repo)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(fungiBin, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return errb.String(), err
		}
		return out.String(), nil
	}
	if out, err := run("init", "--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1"); err != nil {
		t.Fatalf("init: %v %s", err, out)
	}
	d := exec.Command(fungiBin, "daemon", "--api", "127.0.0.1:0", "--gateway", "127.0.0.1:0")
	d.Env = env
	var dlog bytes.Buffer
	d.Stderr = &dlog
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Process.Kill()
	var api string
	for i := 0; i < 100 && api == ""; i++ {
		b, _ := os.ReadFile(filepath.Join(repo, "api"))
		api = strings.TrimSpace(string(b))
		time.Sleep(50 * time.Millisecond)
	}
	if api == "" {
		t.Fatalf("daemon did not write its api file:\n%s", dlog.String())
	}
	file := filepath.Join(t.TempDir(), "f.bin")
	data := vectorContent("fungi-b", 3145733)
	os.WriteFile(file, data, 0o644)
	out, err := run("add", "-q", file)
	if err != nil || strings.TrimSpace(out) != "bafybeihdn6ilhibetsbhz73vogklwdfsupf7glils36qadbu7wt7agpxki" {
		t.Fatalf("add through the daemon = %q, %v", out, err)
	}
	c := strings.TrimSpace(out)
	if out, err = run("cat", c); err != nil || out != string(data) {
		t.Fatalf("cat: %d bytes, %v", len(out), err)
	}
	if out, err = run("cat", "--offset", "3145700", c); err != nil || out != string(data[3145700:]) {
		t.Fatalf("cat tail: %q %v", out, err)
	}
	tree := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(filepath.Join(tree, "sub", "empty"), 0o755)
	os.WriteFile(filepath.Join(tree, "sub", "ünï"), []byte("x"), 0o644)
	os.Symlink("sub/ünï", filepath.Join(tree, "link"))
	dc, err := run("add", "-q", tree)
	if err != nil {
		t.Fatal(err)
	}
	dc = strings.TrimSpace(dc)
	want, _ := run("add", "-n", "-q", tree)
	if dc != strings.TrimSpace(want) {
		t.Fatalf("directory through the daemon %s, only-hash %s", dc, want)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if out, err := run("get", dc, "-o", dst, "-q"); err != nil {
		t.Fatalf("get: %v %s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "sub", "ünï")); string(b) != "x" {
		t.Fatal("get through the daemon lost a file")
	}
	if l, _ := os.Readlink(filepath.Join(dst, "link")); l != "sub/ünï" {
		t.Fatalf("symlink %q", l)
	}
	if out, err := run("ls", dc); err != nil || !strings.Contains(out, "sub/") {
		t.Fatalf("ls: %q %v", out, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cat", "bafkreifvzgs7jaus4p54dnftzvev25wpnbuxvublv4e4c5ang4sq653fte"}, "not found"},
		{[]string{"cat", dc}, "is a directory"},
		{[]string{"cat", "--offset", "99999999", c}, "range outside the content"},
		{[]string{"get", c, "-o", dst}, "already exists"},
	} {
		out, err := run(tc.args...)
		if err == nil || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") > 0 {
			t.Errorf("%v: %q %v; want one line with %q", tc.args, out, err, tc.want)
		}
	}
	// the API refuses bad bodies with a clear error
	resp, err := http.Post("http://"+api+"/api/v0/add", "text/plain", strings.NewReader("not multipart"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "multipart") {
		t.Fatalf("bad add body: %d %s", resp.StatusCode, b)
	}
	// a failure after the progress stream began: in the trailer and, for
	// browsers, as the last line
	mp := "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\naaa\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\n\r\nbbb\r\n--b--\r\n"
	resp, err = http.Post("http://"+api+"/api/v0/add", "multipart/form-data; boundary=b", strings.NewReader(mp))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if want := "one file or directory per request"; !strings.Contains(resp.Trailer.Get("X-Stream-Error"), want) || !strings.Contains(lines[len(lines)-1], `"error":`) || !strings.Contains(lines[len(lines)-1], want) {
		t.Fatalf("two files in one add: trailer %q, stream %q", resp.Trailer.Get("X-Stream-Error"), b)
	}
	// the web console, and the guard that keeps other sites' pages out
	resp, err = http.Get("http://" + api + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/webui/" || !strings.Contains(string(b), "app.js") {
		t.Fatalf("/: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	req, _ := http.NewRequest("POST", "http://"+api+"/api/v0/add", strings.NewReader(mp))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an add from another site's page: %d, want 403", resp.StatusCode)
	}
	resp, err = http.Get("http://" + api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "fungi_added_bytes_total") {
		t.Fatal("metrics missing")
	}
	d.Process.Signal(syscall.SIGTERM)
	if err := d.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, dlog.String())
	}
	if _, err := os.Stat(filepath.Join(repo, "api")); !os.IsNotExist(err) {
		t.Fatal("api file left behind")
	}
	// without the daemon the same commands open the repo directly
	if out, err := run("cat", c); err != nil || out != string(data) {
		t.Fatalf("cat after the daemon stopped: %d bytes, %v: %s", len(out), err, out)
	}
}
