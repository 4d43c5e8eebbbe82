package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Settings by key, as Kubo's `ipfs config KEY [VALUE]`: a key is a dotted
// path of the config file's JSON names ("gateway.listen",
// "cluster.no_store"), a value is JSON. A map key that holds a dot is
// written in double quotes (gateway.public_gateways."dweb.link".Paths);
// an existing one is also found unquoted. A list element is addressed by
// its index (p2p.listen.0).

// ErrBadSetting marks an unknown key, or a value its key cannot take or
// that leaves the config invalid: the user's input, not the repo, is wrong.
var ErrBadSetting = errors.New("bad setting")

// ErrStringValue marks a string given to a key that takes a number, a
// bool, a list or an object (also an ErrBadSetting): the CLI suggests
// giving JSON.
var ErrStringValue = errors.New("a string for a key that takes another kind of value")

type settingError struct {
	err       error
	strForNon bool // ErrStringValue
}

func (e settingError) Error() string {
	return strings.TrimPrefix(e.err.Error(), "config: ") // Validate's prefix: the key says it
}

func (e settingError) Unwrap() error { return e.err }

func (e settingError) Is(target error) bool {
	return target == ErrBadSetting || e.strForNon && target == ErrStringValue
}

func badSetting(format string, args ...any) error {
	return settingError{err: fmt.Errorf(format, args...)}
}

// keySegment is one step of a key: a field or map key name, or a list
// index. quoted segments are taken literally, never joined with the next.
type keySegment struct {
	name   string
	quoted bool
}

// parseKey splits a key into its segments.
func parseKey(key string) ([]keySegment, error) {
	if key == "" {
		return nil, badSetting("empty key")
	}
	if !utf8.ValidString(key) {
		return nil, badSetting("key %q is not UTF-8", key)
	}
	var segs []keySegment
	for i := 0; ; {
		var seg keySegment
		if key[i] == '"' {
			j := i + 1
			for ; j < len(key) && key[j] != '"'; j++ {
				if key[j] == '\\' {
					j++
				}
			}
			if j >= len(key) {
				return nil, badSetting("key %q: unterminated quote", key)
			}
			if err := json.Unmarshal([]byte(key[i:j+1]), &seg.name); err != nil {
				return nil, badSetting("key %q: bad quoted name %q", key, key[i:j+1])
			}
			seg.quoted = true
			i = j + 1
			if i < len(key) && key[i] != '.' {
				return nil, badSetting("key %q: want a dot after %s", key, key[:i])
			}
		} else {
			j := strings.IndexByte(key[i:], '.')
			if j < 0 {
				j = len(key) - i
			}
			seg.name = key[i : i+j]
			if seg.name == "" {
				return nil, badSetting("key %q: empty name", key)
			}
			if strings.ContainsRune(seg.name, '"') {
				return nil, badSetting("key %q: a quote inside a name (quote whole names: a.\"b.c\")", key)
			}
			i += j
		}
		segs = append(segs, seg)
		if i == len(key) {
			return segs, nil
		}
		i++ // the dot
		if i == len(key) {
			return nil, badSetting("key %q: empty name", key)
		}
	}
}

// formatKey writes segments as a key that parseKey reads back; names that
// need it are quoted.
func formatKey(segs []keySegment) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		if s.name == "" || strings.ContainsAny(s.name, ".\"") || !isPrintable(s.name) {
			q, _ := json.Marshal(s.name)
			b.Write(q)
		} else {
			b.WriteString(s.name)
		}
	}
	return b.String()
}

func isPrintable(s string) bool {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// jsonField finds the struct field that JSON calls name: an exact match,
// else a case-insensitive one (as encoding/json decodes the file).
func jsonField(t reflect.Type, name string) (int, bool) {
	fold := -1
	for i := range t.NumField() {
		fn, ok := jsonName(t.Field(i))
		if !ok {
			continue
		}
		if fn == name {
			return i, true
		}
		if fold < 0 && strings.EqualFold(fn, name) {
			fold = i
		}
	}
	return fold, fold >= 0
}

func jsonName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name, true
	}
	return f.Name, true
}

// fieldNames lists a struct's keys, for error messages.
func fieldNames(t reflect.Type) string {
	var names []string
	for i := range t.NumField() {
		if n, ok := jsonName(t.Field(i)); ok {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

// kindName says what a value of type t is, in JSON's words.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return kindName(t.Elem())
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// mapKey picks the map key that segs[0] (and, unquoted, the segments after
// it joined with dots) names: the longest existing key, else segs[0]. It
// returns the key and how many segments it used.
func mapKey(m reflect.Value, segs []keySegment) (string, int) {
	if !segs[0].quoted && !m.IsNil() {
		for n := len(segs); n > 1; n-- {
			if slicesAnyQuoted(segs[:n]) {
				continue
			}
			name := joinNames(segs[:n])
			if m.MapIndex(reflect.ValueOf(name).Convert(m.Type().Key())).IsValid() {
				return name, n
			}
		}
	}
	return segs[0].name, 1
}

func slicesAnyQuoted(segs []keySegment) bool {
	for _, s := range segs {
		if s.quoted {
			return true
		}
	}
	return false
}

func joinNames(segs []keySegment) string {
	names := make([]string, len(segs))
	for i, s := range segs {
		names[i] = s.name
	}
	return strings.Join(names, ".")
}

// listIndex parses a list index below n.
func listIndex(seg keySegment, n int, at string) (int, error) {
	i, err := strconv.Atoi(seg.name)
	if err != nil || i < 0 || seg.name != strconv.Itoa(i) {
		return 0, badSetting("%s is a list: %q is not an index", at, seg.name)
	}
	if i >= n {
		return 0, badSetting("%s has %d entries: no index %d", at, n, i)
	}
	return i, nil
}

// lookup walks segs from v and returns what they name. done are the
// segments walked so far (for messages).
func lookup(v reflect.Value, done, segs []keySegment) (reflect.Value, error) {
	if len(segs) == 0 {
		return v, nil
	}
	at := formatKey(done)
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return reflect.Value{}, badSetting("%s is not set", at)
		}
		return lookup(v.Elem(), done, segs)
	case reflect.Struct:
		i, ok := jsonField(v.Type(), segs[0].name)
		if !ok {
			return reflect.Value{}, unknownKey(v.Type(), done, segs)
		}
		return lookup(v.Field(i), append(done, segs[0]), segs[1:])
	case reflect.Map:
		name, n := mapKey(v, segs)
		k := keySegment{name: name, quoted: n > 1}
		e := v.MapIndex(reflect.ValueOf(name).Convert(v.Type().Key()))
		if !e.IsValid() {
			return reflect.Value{}, badSetting("%s has no entry %q", at, name)
		}
		v, err := lookup(e, append(done, k), segs[n:])
		return v, mapKeyHint(err, done, segs, n)
	case reflect.Slice:
		i, err := listIndex(segs[0], v.Len(), at)
		if err != nil {
			return reflect.Value{}, err
		}
		return lookup(v.Index(i), append(done, segs[0]), segs[1:])
	}
	return reflect.Value{}, badSetting("%s is %s: it has no key %q", at, kindName(v.Type()), segs[0].name)
}

// unknownKeyError is a key naming no field; depth is its segment count.
type unknownKeyError struct {
	msg   string
	depth int
}

func (e *unknownKeyError) Error() string        { return e.msg }
func (e *unknownKeyError) Is(target error) bool { return target == ErrBadSetting }

func unknownKey(t reflect.Type, done, segs []keySegment) error {
	key := formatKey(append(done[:len(done):len(done)], segs[0]))
	of := "the config"
	if len(done) > 0 {
		of = formatKey(done)
	}
	return &unknownKeyError{fmt.Sprintf("unknown key %q (%s has: %s)", key, of, fieldNames(t)), len(done) + 1}
}

// mapKeyHint explains an unknown key right below an unquoted map key,
// which was probably a name with a dot cut in two (example.com).
func mapKeyHint(err error, done, segs []keySegment, n int) error {
	var ue *unknownKeyError
	if n != 1 || len(segs) < 2 || segs[0].quoted || !errors.As(err, &ue) || ue.depth != len(done)+2 {
		return err
	}
	joined := append(done[:len(done):len(done)], keySegment{name: segs[0].name + "." + segs[1].name, quoted: true})
	return &unknownKeyError{fmt.Sprintf("%s; quote map keys that hold dots: %s", ue.msg, formatKey(joined)), ue.depth}
}

// set walks segs from v, which must be settable, and sets what they name
// to value. JSON null on a map entry deletes it.
func set(v reflect.Value, done, segs []keySegment, value json.RawMessage) error {
	if len(segs) == 0 {
		return decodeValue(v, formatKey(done), value)
	}
	at := formatKey(done)
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return set(v.Elem(), done, segs, value)
	case reflect.Struct:
		i, ok := jsonField(v.Type(), segs[0].name)
		if !ok {
			return unknownKey(v.Type(), done, segs)
		}
		return set(v.Field(i), append(done, segs[0]), segs[1:], value)
	case reflect.Map:
		name, n := mapKey(v, segs)
		k := reflect.ValueOf(name).Convert(v.Type().Key())
		if n == len(segs) && bytes.Equal(bytes.TrimSpace(value), []byte("null")) {
			if !v.IsNil() {
				v.SetMapIndex(k, reflect.Value{})
			}
			return nil
		}
		// map entries are not settable: change a copy, put it back
		e := reflect.New(v.Type().Elem()).Elem()
		if old := v.MapIndex(k); old.IsValid() {
			e.Set(old)
		}
		if err := set(e, append(done, keySegment{name: name, quoted: n > 1}), segs[n:], value); err != nil {
			return mapKeyHint(err, done, segs, n)
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		v.SetMapIndex(k, e)
		return nil
	case reflect.Slice:
		i, err := listIndex(segs[0], v.Len(), at)
		if err != nil {
			return err
		}
		return set(v.Index(i), append(done, segs[0]), segs[1:], value)
	}
	return badSetting("%s is %s: it has no key %q", at, kindName(v.Type()), segs[0].name)
}

// decodeValue replaces v with value, decoded strictly (an object's unknown
// fields are an error). Like Kubo, a value replaces the whole subtree.
func decodeValue(v reflect.Value, at string, value json.RawMessage) error {
	nv := reflect.New(v.Type())
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	err := dec.Decode(nv.Interface())
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if n, ok := strings.CutPrefix(te.Value, "number "); ok {
				return badSetting("%s: %s is out of range", at, n)
			}
			if te.Field == "" {
				return settingError{fmt.Errorf("%s is %s, not a %s", at, kindName(v.Type()), te.Value), te.Value == "string"}
			}
			return badSetting("%s: %s is %s, not a %s", at, te.Field, kindName(te.Type), te.Value)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return badSetting("%s: bad JSON value: %v", at, err)
		}
		return badSetting("%s: %v", at, strings.TrimPrefix(err.Error(), "json: "))
	}
	v.Set(nv.Elem())
	return nil
}

// Value returns the setting at key as JSON.
func (c Config) Value(key string) (json.RawMessage, error) {
	segs, err := parseKey(key)
	if err != nil {
		return nil, err
	}
	v, err := lookup(reflect.ValueOf(c), nil, segs)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v.Interface())
}

// SetValue sets the setting at key to value (JSON). It does not validate
// the whole config: the caller does, once all its changes are made.
func (c *Config) SetValue(key string, value json.RawMessage) error {
	segs, err := parseKey(key)
	if err != nil {
		return err
	}
	if !json.Valid(value) {
		return badSetting("%s: the value is not JSON", key)
	}
	// change a copy: a failed set leaves c as it was
	cp := reflect.New(reflect.TypeOf(*c))
	if err := cloneInto(cp.Interface(), *c); err != nil {
		return err
	}
	if err := set(cp.Elem(), nil, segs, value); err != nil {
		return err
	}
	*c = cp.Elem().Interface().(Config)
	return nil
}

// cloneInto deep-copies src into dst through JSON (the config's maps and
// slices must not be shared with the original).
func cloneInto(dst any, src Config) error {
	b, err := json.Marshal(src)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

// readConfigFile reads the repo's config without validating it, so that
// `fungi config` can still read and repair a config that is invalid
// (readConfig validates). Unknown fields are refused: a misspelt setting
// must not be silently ignored.
func readConfigFile(path string) (Config, error) {
	b, err := os.ReadFile(filepath.Join(path, configFile))
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("%s: %w", path, ErrNoRepo)
	}
	if err != nil {
		return Config{}, err
	}
	cfg := DefaultConfig()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("%s: %v", filepath.Join(path, configFile), err)
	}
	return cfg, nil
}

// ShowConfig returns the config file of the repo at path with every
// default filled in, as `fungi config show` prints it (it need not be
// valid).
func ShowConfig(path string) ([]byte, error) {
	cfg, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	return configJSON(cfg), nil
}

// GetConfigValue returns the setting key of the repo at path, as JSON.
func GetConfigValue(path, key string) (json.RawMessage, error) {
	cfg, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	return cfg.Value(key)
}

// SetConfigValue sets the setting key of the repo at path to value (JSON)
// and writes the config atomically, if the result is valid. A daemon
// running on the repo keeps its config until it restarts.
func SetConfigValue(path, key string, value json.RawMessage) error {
	cfg, err := readConfigFile(path)
	if err != nil {
		return err
	}
	if err := cfg.SetValue(key, value); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return settingError{err: err}
	}
	return writeFileAtomic(filepath.Join(path, configFile), configJSON(cfg), 0o644)
}
