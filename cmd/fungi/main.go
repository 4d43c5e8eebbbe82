// Command fungi is FungiStor's single binary: the node, its tools and the
// standalone ZDB server. Each subcommand parses its flags into a config and
// calls a package; nothing here holds logic worth testing on its own.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/fungistor/fungistor/node"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name, summary string
	run           func(args []string) error
}

func commands() []command {
	return []command{
		{"init", "create the repo in $FUNGI_PATH (default ~/.fungi)", runInit},
		{"add", "add a file or directory; print its IPFS CID (--only-hash: store nothing)", runAdd},
		{"cat", "write a file's bytes to stdout (--offset/--length for a range)", runCat},
		{"get", "save a file or directory tree (-o PATH)", runGet},
		{"ls", "list a directory", runLs},
		{"stat", "show how content is stored and what it survives (--verify, --json)", runStat},
		{"bench", "measure this machine: bench codec [--size] [--ec K/M] [--cores] [--json]", runBench},
		{"zdb", "run a standalone 0-db compatible ZDB server (zdb check|compact: offline tools)", runZDB},
		{"daemon", "run the node: embedded ZDB and the HTTP API (--api ADDR)", runDaemon},
		{"id", "print this node's peer ID (and addresses, with a daemon)", runID},
		{"cluster", "cluster status|peers|join|leave [--json]: the cluster as this node sees it", runCluster},
		{"pin", "pin add|rm CID... | pin ls: the cluster's pins", runPin},
		{"repair", "repair CID...|--all [--dry-run]: re-create lost or corrupt fragments now (--rate: cap)", runRepair},
		{"check", "check CID...|--all: verify every fragment cluster-wide; report damage for repair", runCheck},
		{"repo", "repo stat | repo gc [--min-age D]: this node's ZDB, orphan collection", runRepo},
		{"config", "read or set a repo setting: config [--json] KEY [VALUE] | config show", runConfig},
		{"files", "files ls|stat|mkdir|cp|mv|rm|write: the cluster's shared file tree (QSFS)", runFiles},
		{"mount", "mount the shared tree read-only at DIR through the daemon (FUSE)", runMount},
		{"unmount", "end the daemon's mount at DIR", runUnmount},
		{"dag", "dag import FILE.car... | dag export CID: IPLD DAGs as CAR files", runDag},
		{"block", "block get|stat CID: single blocks of any codec", runBlock},
		{"routing", "routing put|get /ipns/NAME: signed IPNS records in the cluster", runRouting},
		{"testnet", "local multi-node cluster: up|status|stop|start|down --dir DIR", runTestnet},
		{"version", "print the version", func([]string) error { fmt.Println("fungi", version); return nil }},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: fungi <command> [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'fungi <command> --help' for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	if path := os.Getenv("FUNGI_CPUPROFILE"); path != "" {
		// for developers: profile a whole run
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	node.Version = version
	code := run()
	pprof.StopCPUProfile()
	os.Exit(code)
}

func run() int {
	for _, c := range commands() {
		if c.name == os.Args[1] {
			if err := c.run(os.Args[2:]); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return 0
				}
				fmt.Fprintf(os.Stderr, "fungi %s: %v\n", c.name, err)
				return exitCode(err)
			}
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "fungi: unknown command %q (see 'fungi help')\n", os.Args[1])
	return 2
}

// groupHelp answers a command group (fungi cluster, dag, ...) called with
// no command, or -h/--help: help goes to stderr and, with no command, the
// error is a usage error naming the group's commands (subs). done reports
// whether it answered.
func groupHelp(args []string, group, subs, help string) (done bool, err error) {
	if len(args) > 0 && args[0] != "-h" && args[0] != "--help" {
		return false, nil
	}
	fmt.Fprint(os.Stderr, help)
	if len(args) == 0 {
		return true, usagef("name a %s command (%s)", group, subs)
	}
	return true, nil
}

// usageError marks bad command-line input (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// newFlagSet returns a flag set that reports errors as one line.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// setUsage makes -help print text, then the flags.
func setUsage(fs *flag.FlagSet, text string) {
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), text)
		fs.PrintDefaults()
	}
}

// parseFlags parses args and turns flag errors into usage errors; the flag
// package has already printed the usage for -help.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(discardUnlessHelp{})
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(os.Stderr)
		fs.Usage()
		return err
	}
	if err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

type discardUnlessHelp struct{}

func (discardUnlessHelp) Write(p []byte) (int, error) { return len(p), nil }
