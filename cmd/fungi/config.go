package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/fungistor/fungistor/node"
)

func runConfig(args []string) error {
	fs := newFlagSet("fungi config")
	asJSON := fs.Bool("json", false, "VALUE is JSON (and a value read is printed as JSON, strings quoted)")
	asBool := fs.Bool("bool", false, "VALUE is a bool (true or false)")
	setUsage(fs, "usage: fungi config [--json | --bool] KEY [VALUE]\n"+
		"       fungi config show\n\n"+
		"Reads or sets a setting of the repo in $FUNGI_PATH, as Kubo's `ipfs config`.\n"+
		"KEY is a dotted path of config.json's names: gateway.listen, cluster.domain,\n"+
		"cluster.no_store, p2p.listen (p2p.listen.0 for one entry); quote map keys that\n"+
		"hold dots: gateway.public_gateways.'\"dweb.link\"'.UseSubdomains. Without VALUE\n"+
		"it prints the setting (a string bare, anything else as JSON). VALUE is a string\n"+
		"unless --json or --bool; JSON null deletes a map entry. The new config must be\n"+
		"valid. A running daemon uses a change once it restarts.\n\nflags:\n")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *asJSON && *asBool {
		return usagef("--json and --bool exclude each other")
	}
	path := node.RepoPath()
	if len(rest) == 1 && rest[0] == "show" {
		if *asJSON || *asBool {
			return usagef("config show takes no flags")
		}
		b, err := node.ShowConfig(path)
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(b)
		return err
	}
	switch len(rest) {
	case 1:
		v, err := node.GetConfigValue(path, rest[0])
		if err != nil {
			return settingErr(err)
		}
		return printSetting(v, *asJSON)
	case 2:
		var value json.RawMessage
		switch {
		case *asJSON:
			value = json.RawMessage(rest[1])
			if !json.Valid(value) {
				return usagef("--json: %q is not JSON", rest[1])
			}
		case *asBool:
			b, err := strconv.ParseBool(rest[1])
			if err != nil {
				return usagef("--bool: %q is not true or false", rest[1])
			}
			value, _ = json.Marshal(b)
		default:
			value, _ = json.Marshal(rest[1])
		}
		if err := node.SetConfigValue(path, rest[0], value); err != nil {
			if errors.Is(err, node.ErrStringValue) {
				return usagef("%v (use --json or --bool for other values)", err)
			}
			return settingErr(err)
		}
		if node.APIAddr(path) != "" {
			fmt.Fprintf(os.Stderr, "fungi config: a daemon runs on %s: restart it for the change to apply\n", path)
		}
		return nil
	case 0:
		return usagef("name a KEY (fungi config KEY [VALUE], or fungi config show)")
	}
	return usagef("unexpected argument %q (quote a VALUE with spaces)", rest[2])
}

// settingErr makes a bad key or value a usage error (exit status 2).
func settingErr(err error) error {
	if errors.Is(err, node.ErrBadSetting) {
		return usagef("%v", err)
	}
	return err
}

// printSetting prints a value: a string bare (unless asJSON), anything
// else as indented JSON.
func printSetting(v json.RawMessage, asJSON bool) error {
	var s string
	if !asJSON && json.Unmarshal(v, &s) == nil {
		fmt.Println(s)
		return nil
	}
	var out bytes.Buffer
	if err := json.Indent(&out, v, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := os.Stdout.Write(out.Bytes())
	return err
}
