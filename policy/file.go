package policy

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2/unstable"
)

// MaxFileSize is the largest policy file Parse, ParseFile and FileStore
// accept, in bytes.
const MaxFileSize = 16 << 20

// maxFileErrors caps FileError.Errors; the rest are counted in Omitted.
const maxFileErrors = 100

// FileError is a policy file that was refused. It lists every problem
// found (up to 100; Omitted counts the rest), each a *FieldError with its
// Line set, sorted by line. errors.As finds the *FieldError values through
// Unwrap.
type FileError struct {
	// Path is the file's name; "" when the data did not come from a file
	// (Parse).
	Path string
	// Errors are the problems, in line order.
	Errors []*FieldError
	// Omitted counts the problems left out of Errors after the first 100.
	Omitted int
}

// Error returns one line per problem, "path:line: field = "value":
// reason" ("line N: ..." when Path is empty).
func (e *FileError) Error() string {
	var b strings.Builder
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		switch {
		case e.Path != "" && fe.Line > 0:
			fmt.Fprintf(&b, "%s:%d: ", e.Path, fe.Line)
		case e.Path != "":
			b.WriteString(e.Path + ": ")
		case fe.Line > 0:
			fmt.Fprintf(&b, "line %d: ", fe.Line)
		}
		b.WriteString(fe.Field)
		if fe.Value != "" {
			b.WriteString(" = ")
			b.WriteString(strconv.Quote(fe.Value))
		}
		b.WriteString(": ")
		b.WriteString(fe.Reason)
	}
	if e.Omitted > 0 {
		if len(e.Errors) > 0 {
			b.WriteByte('\n')
		}
		if e.Path != "" {
			b.WriteString(e.Path + ": ")
		}
		fmt.Fprintf(&b, "and %d more problems", e.Omitted)
	}
	if b.Len() == 0 {
		return "policy: invalid policy file"
	}
	return b.String()
}

// Unwrap returns the *FieldError values, for errors.As and errors.Is.
func (e *FileError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

// Parse parses a policy file: TOML (https://toml.io/en/v1.0.0) with the
// schema below. TOML was chosen over YAML and JSON because its types are
// unambiguous (a bare no is an error, not the boolean false, and "0600"
// stays a string), it has comments, and it has one obvious way to write a
// list of records ([[partner]]).
//
// Every key is optional, and an absent key or table means the default
// (the zero value of the Go field, see Gateway, Partner and AccessPolicy).
// Unknown keys are errors, so that a misspelt setting never goes
// unnoticed.
//
//	[gateway]                          # optional; at most one
//	identity = "global"                # optional; "global" is the only value
//	connection_limit = 1000            # integer; 0 = 1000, negative = no limit
//	partner_connection_limit = 20      # integer; 0 = 20, negative = no limit
//	keepalive_interval = 300           # whole seconds, or a Go duration such as "5m"
//	stream_establishment_timeout = 60  # seconds or duration; negative = none
//	stream_inactivity_timeout = 600    # seconds or duration; negative = never
//	subscription_refresh_interval = "8h"
//	log_bodies = false
//	dialback_secret = "base64..."      # standard base64; omitted: generated at first start and written here
//	max_stanza_bytes = 524288          # integer; 0 = 512 KiB
//	stanzas_per_second = 1000          # number, per partner; 0 = 1000, negative = unlimited
//	open_federation = false            # admit non-partners with default_partner's settings
//	disable_federation = false         # stop all XMPP federation
//	deny_unverified_subscriptions = false
//	blocked = ["spam.example", "*.bad.example"]
//
//	[gateway.default_partner]          # settings for domains admitted by open federation:
//	type = "public-unverified"         # every [[partner]] key but domain and additional_domains
//
//	[[partner]]                        # one table per partner
//	domain = "fabrikam.com"            # required
//	additional_domains = ["chat.fabrikam.com"]
//	type = "federated"                 # federated | public-verified | public-unverified (default)
//	tls = "required"                   # required (default) | optional | not-supported
//	sasl = "required"                  # required (default) | optional | not-supported
//	dialback = true                    # default true
//	keepalive = true                   # default true
//	connection_limit = 10              # 0 or absent = the gateway's partner_connection_limit
//	proxy_fqdn = "xmpp.fabrikam.com"   # or "host:port"
//	stanzas_per_second = 500           # 0 = the gateway's; negative = unlimited
//	description = "..."
//
//	[[policy]]                         # one table per access policy
//	name = "global"                    # global | site:NAME | NAME (per-user; tag:NAME accepted)
//	enable_xmpp_access = false
//	enable_federation_access = false
//	description = ""
//
// The tables can also be written inline (gateway = {...}, partner = [{...}])
// and keys dotted, as TOML allows. Strings are stored as written: domain
// normalization is Config.Validate's and Policy's business.
//
// The error is a *FileError listing every problem with its line: TOML
// syntax (after which parsing stops), unknown and duplicate keys, wrong
// types, bad enum spellings and durations, a second [gateway] or an
// identity other than "global" (the gateway is a singleton, REFERENCE §2.2),
// and every problem Config.Validate(false) finds. The dialback secret's
// value is never part of an error.
func Parse(data []byte) (*Config, error) {
	c, _, err := parse(data, "", false)
	return c, err
}

// ParseFile reads the policy file at path and parses it as Parse does,
// validating it with Config.Validate(strict). The warnings (which are not
// errors) start their Text with "line N: ", N being where the setting they
// concern is.
func ParseFile(path string, strict bool) (*Config, []Warning, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err := readLimited(f, path)
	if err != nil {
		return nil, nil, err
	}
	return parse(data, path, strict)
}

// ParseFS is ParseFile for a file of fsys, such as an embed.FS holding a
// default policy.
func ParseFS(fsys fs.FS, name string, strict bool) (*Config, []Warning, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err := readLimited(f, name)
	if err != nil {
		return nil, nil, err
	}
	return parse(data, name, strict)
}

// readLimited reads r to its end, refusing more than MaxFileSize bytes.
func readLimited(r io.Reader, path string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, &FileError{Path: path, Errors: []*FieldError{{
			Field: "(file)", Reason: fmt.Sprintf("larger than %d bytes", MaxFileSize)}}}
	}
	return data, nil
}

// parse is Parse with a path for the errors and a strictness for the
// validation.
func parse(data []byte, path string, strict bool) (*Config, []Warning, error) {
	if len(data) > MaxFileSize {
		return nil, nil, &FileError{Path: path, Errors: []*FieldError{{
			Field: "(file)", Reason: fmt.Sprintf("larger than %d bytes", MaxFileSize)}}}
	}
	// A copy whose capacity is its length: the parser locates its slices
	// by capacity, and the caller's buffer must not be retained.
	data = bytes.Clone(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	d := &decoder{data: data, lines: lineStarts(data)}
	root := d.build()
	c := &Config{}
	if root != nil {
		d.config(root, c)
	}
	ws := d.validate(c, strict)
	if len(d.errs) > 0 {
		return nil, nil, d.fileError(path)
	}
	return c, ws, nil
}

// --- the document tree ----------------------------------------------------

// tkind is the type of a tree node.
type tkind uint8

const (
	tTable tkind = iota + 1
	tArray
	tString
	tInteger
	tFloat
	tBool
	tDateTime
)

// String names the kind as error messages do.
func (k tkind) String() string {
	switch k {
	case tTable:
		return "a table"
	case tArray:
		return "an array"
	case tString:
		return "a string"
	case tInteger:
		return "an integer"
	case tFloat:
		return "a float"
	case tBool:
		return "a boolean"
	}
	return "a date-time"
}

// tdef says how a table came to be, which decides how it may be extended
// (TOML v1.0.0 "Table", "Inline Table", "Array of Tables").
type tdef uint8

const (
	defImplicit tdef = iota // a parent created by a header such as [a.b]
	defHeader               // [a]
	defDotted               // a.b = 1 creates table a
	defInline               // {...}: complete, cannot be extended
	defElement              // an element of [[a]]
)

// tnode is a value of the document, with where it was written.
type tnode struct {
	kind tkind
	line int    // where the value (or the table's header or key) starts
	text string // a string's value; the source text of other scalars
	i    int64
	f    float64
	b    bool

	// tables
	def    tdef
	fields []*tfield
	index  map[string]*tfield

	// arrays
	elems []*tnode
	aot   bool // an array of tables made by [[...]]

	// where the node hangs: parent table and key, or parent array and
	// element index
	parent *tnode
	key    string
	elem   int
}

// tfield is one key of a table.
type tfield struct {
	key  string
	line int
	val  *tnode
}

func newTable(def tdef, line int, parent *tnode, key string, elem int) *tnode {
	return &tnode{kind: tTable, def: def, line: line, index: map[string]*tfield{},
		parent: parent, key: key, elem: elem}
}

func (t *tnode) add(key string, line int, v *tnode) {
	v.parent, v.key, v.elem = t, key, -1
	f := &tfield{key: key, line: line, val: v}
	t.fields = append(t.fields, f)
	t.index[key] = f
}

// get returns the value of key in table t, or nil.
func (t *tnode) get(key string) *tnode {
	if t == nil || t.kind != tTable {
		return nil
	}
	if f := t.index[key]; f != nil {
		return f.val
	}
	return nil
}

// perr is a problem found while decoding, named once the whole file is
// read (a partner's label needs its domain, which may come later).
type perr struct {
	at     *tnode // the table or array the problem is in
	key    string // relative dotted key in at, or ""
	elem   int    // element index in at when at is an array, else -1
	field  string // the full field name, when known already
	value  string
	reason string
	line   int
}

// decoder turns the document into a Config, collecting problems.
type decoder struct {
	data    []byte
	lines   []int // offsets where lines start
	p       unstable.Parser
	tree    *tnode // the document, once built without syntax errors
	errs    []*perr
	dropped int // problems beyond maxRecorded
	nesting int // arrays and inline tables being decoded
	// labels indexes the elements of the partner and policy arrays by
	// domain or name, for lineOfField.
	labels map[*tnode]map[string]*tnode
	// remaps are lists some elements of which were left out of the
	// Config (wrong type): Validate's indexes are translated back.
	remaps []remap
	byName map[string][]int // remaps by the list's field name
}

// remap maps the 1-based indexes Validate gives elements of a list in the
// Config to their 1-based position in the file's array arr.
type remap struct {
	arr *tnode
	pos []int
}

// lineStarts returns the offset of each line's first byte.
func lineStarts(data []byte) []int {
	ls := []int{0}
	for i, c := range data {
		if c == '\n' {
			ls = append(ls, i+1)
		}
	}
	return ls
}

// pos returns the 1-based line and column (in characters) of offset.
func (d *decoder) pos(offset int) (line, col int) {
	offset = max(0, min(offset, len(d.data)))
	line = d.line(offset)
	return line, utf8.RuneCount(d.data[d.lines[line-1]:offset]) + 1
}

// line returns the 1-based line of offset.
func (d *decoder) line(offset int) int {
	i := sort.Search(len(d.lines), func(i int) bool { return d.lines[i] > offset }) - 1
	return max(i, 0) + 1
}

// lineOf returns the line of an AST node with a source range, or def.
func (d *decoder) lineOf(n *unstable.Node, def int) int {
	if n == nil || n.Raw.Length == 0 {
		return def
	}
	return d.line(int(n.Raw.Offset))
}

func (d *decoder) fail(at *tnode, key string, line int, value, reason string) {
	d.add(&perr{at: at, key: key, elem: -1, line: line, value: value, reason: reason})
}

// maxKeyParts and maxNesting bound how deep a document goes, far beyond
// what the schema uses, so that naming a problem stays cheap.
const (
	maxKeyParts = 8
	maxNesting  = 8
)

// maxRecorded bounds the problems kept while decoding, so that a huge,
// broken file costs little; the others are only counted.
const maxRecorded = 10 * maxFileErrors

func (d *decoder) add(e *perr) {
	if len(d.errs) >= maxRecorded {
		d.dropped++
		return
	}
	d.errs = append(d.errs, e)
}

// build reads the TOML document into a tree, applying TOML's rules on
// tables and keys. It returns nil after a syntax error.
func (d *decoder) build() *tnode {
	root := newTable(defHeader, 0, nil, "", -1)
	cur := root
	d.p.Reset(d.data)
	for d.p.NextExpression() {
		e := d.p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			d.keyValue(cur, e)
		case unstable.Table, unstable.ArrayTable:
			cur = d.header(root, e)
		}
	}
	if err := d.p.Error(); err != nil {
		d.syntax(err)
		return nil
	}
	d.tree = root
	return root
}

// syntax records a TOML syntax error with its line and column.
func (d *decoder) syntax(err error) {
	var pe *unstable.ParserError
	if !errors.As(err, &pe) {
		d.add(&perr{field: "syntax error", elem: -1, reason: err.Error()})
		return
	}
	offset := cap(d.data) - cap(pe.Highlight)
	if pe.Highlight == nil || offset < 0 || offset > len(d.data) {
		offset = len(d.data)
	}
	line, col := d.pos(offset)
	d.add(&perr{field: "syntax error", elem: -1, line: line,
		reason: fmt.Sprintf("column %d: %s", col, pe.Message)})
}

// keys returns the parts of a dotted key and the line of its first part.
func (d *decoder) keys(it unstable.Iterator) ([]string, int) {
	var ks []string
	line := 0
	for it.Next() {
		n := it.Node()
		if line == 0 {
			line = d.lineOf(n, 0)
		}
		ks = append(ks, string(n.Data))
	}
	return ks, line
}

// header handles [a.b] and [[a.b]] and returns the table that the
// following keys go into (a detached one after an error).
func (d *decoder) header(root *tnode, e *unstable.Node) *tnode {
	ks, line := d.keys(e.Key())
	aot := e.Kind == unstable.ArrayTable
	name := displayKey(ks...)
	detached := newTable(defHeader, line, nil, "", -1)
	if len(ks) > maxKeyParts {
		d.fail(root, name, line, "", fmt.Sprintf("a key of more than %d parts", maxKeyParts))
		return detached
	}
	t := root
	for i, k := range ks {
		last := i == len(ks)-1
		f := t.index[k]
		if f == nil {
			switch {
			case !last:
				nt := newTable(defImplicit, line, nil, "", -1)
				t.add(k, line, nt)
				t = nt
			case aot:
				arr := &tnode{kind: tArray, aot: true, line: line}
				t.add(k, line, arr)
				el := newTable(defElement, line, arr, k, 0)
				arr.elems = append(arr.elems, el)
				return el
			default:
				nt := newTable(defHeader, line, nil, "", -1)
				t.add(k, line, nt)
				return nt
			}
			continue
		}
		v := f.val
		switch {
		case v.kind == tTable && v.def == defInline:
			d.fail(t, displayKey(k), line, "", fmt.Sprintf("[%s] extends an inline table, which is complete where it is written (line %d)", name, f.line))
			return detached
		case v.kind == tTable && !last:
			t = v
		case v.kind == tTable && aot:
			d.fail(t, displayKey(k), line, "", fmt.Sprintf("[[%s]]: %s is a table (line %d), not an array of tables", name, name, f.line))
			return detached
		case v.kind == tTable && v.def == defImplicit:
			v.def, v.line = defHeader, line
			return v
		case v.kind == tTable:
			reason := fmt.Sprintf("table [%s] is defined twice (first on line %d)", name, v.line)
			if name == "gateway" {
				reason = fmt.Sprintf("a second [gateway] table (the first is on line %d): there is exactly one gateway (REFERENCE §2.2)", v.line)
			}
			d.fail(t, displayKey(k), line, "", reason)
			return detached
		case v.kind == tArray && v.aot && last && aot:
			el := newTable(defElement, line, v, k, len(v.elems))
			v.elems = append(v.elems, el)
			return el
		case v.kind == tArray && v.aot && !last:
			t = v.elems[len(v.elems)-1]
		case v.kind == tArray && v.aot:
			d.fail(t, displayKey(k), line, "", fmt.Sprintf("[%s]: %s is an array of tables (line %d): write [[%s]]", name, name, f.line, name))
			return detached
		default:
			d.fail(t, displayKey(k), line, "", fmt.Sprintf("[%s]: key %s already has a value (line %d)", name, displayKey(ks[:i+1]...), f.line))
			return detached
		}
	}
	return detached
}

// keyValue handles key = value in table t.
func (d *decoder) keyValue(t *tnode, e *unstable.Node) {
	ks, line := d.keys(e.Key())
	if len(ks) > maxKeyParts {
		d.fail(t, displayKey(ks...), line, "", fmt.Sprintf("a key of more than %d parts", maxKeyParts))
		return
	}
	for i, k := range ks {
		rel := displayKey(ks[:i+1]...)
		f := t.index[k]
		if i == len(ks)-1 {
			if f != nil {
				d.fail(t, rel, line, "", fmt.Sprintf("duplicate key (first set on line %d)", f.line))
				return
			}
			v, reason := d.value(e.Value(), line)
			if v == nil {
				d.fail(t, rel, line, clip(string(e.Value().Data)), reason)
				return
			}
			t.add(k, line, v)
			return
		}
		if f == nil {
			def := defDotted
			if t.def == defInline {
				def = defInline
			}
			nt := newTable(def, line, nil, "", -1)
			t.add(k, line, nt)
			t = nt
			continue
		}
		v := f.val
		switch {
		case v.kind == tTable && v.def == defDotted:
			t = v
		case v.kind == tTable && v.def == defInline:
			d.fail(t, rel, line, "", fmt.Sprintf("extends an inline table, which is complete where it is written (line %d)", f.line))
			return
		case v.kind == tTable:
			d.fail(t, rel, line, "", fmt.Sprintf("a dotted key cannot add to table [%s], defined on line %d", rel, v.line))
			return
		default:
			d.fail(t, rel, line, "", fmt.Sprintf("key already has a value (line %d)", f.line))
			return
		}
	}
}

// value converts an AST value. line is the key's line, used for values
// with no source range (arrays). It returns nil and the reason when the
// value cannot be represented; problems inside arrays and inline tables
// are recorded against them and the rest of the value kept.
func (d *decoder) value(n *unstable.Node, line int) (*tnode, string) {
	vl := d.lineOf(n, line)
	if n.Kind == unstable.Array || n.Kind == unstable.InlineTable {
		if d.nesting >= maxNesting {
			return nil, fmt.Sprintf("arrays and inline tables nested more than %d levels deep", maxNesting)
		}
		d.nesting++
		defer func() { d.nesting-- }()
	}
	switch n.Kind {
	case unstable.String:
		return &tnode{kind: tString, line: vl, text: string(n.Data)}, ""
	case unstable.Bool:
		return &tnode{kind: tBool, line: vl, text: string(n.Data), b: string(n.Data) == "true"}, ""
	case unstable.Integer:
		i, err := parseInt(string(n.Data))
		if err != nil {
			return nil, "integer out of range (64 bits)"
		}
		return &tnode{kind: tInteger, line: vl, text: string(n.Data), i: i}, ""
	case unstable.Float:
		f, err := parseFloat(string(n.Data))
		if err != nil {
			return nil, "float out of range"
		}
		return &tnode{kind: tFloat, line: vl, text: string(n.Data), f: f}, ""
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return &tnode{kind: tDateTime, line: vl, text: string(n.Data)}, ""
	case unstable.Array:
		arr := &tnode{kind: tArray, line: line}
		it := n.Children()
		for it.Next() {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			el, reason := d.value(c, line)
			if el == nil {
				d.add(&perr{at: arr, elem: len(arr.elems), line: d.lineOf(c, line),
					value: clip(string(c.Data)), reason: reason})
				el = &tnode{kind: tDateTime, line: d.lineOf(c, line)} // a placeholder keeps the indexes
			}
			el.parent, el.elem = arr, len(arr.elems)
			arr.elems = append(arr.elems, el)
		}
		return arr, ""
	case unstable.InlineTable:
		t := newTable(defInline, vl, nil, "", -1)
		it := n.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				d.keyValue(t, c)
			}
		}
		return t, ""
	}
	return nil, "unsupported value"
}

// parseInt parses a TOML integer the scanner has already checked:
// decimal with optional sign and underscores, or 0x, 0o, 0b.
func parseInt(s string) (int64, error) {
	s = strings.ReplaceAll(s, "_", "")
	if len(s) > 2 && s[0] == '0' {
		switch s[1] {
		case 'x':
			return parseUnsigned(s[2:], 16)
		case 'o':
			return parseUnsigned(s[2:], 8)
		case 'b':
			return parseUnsigned(s[2:], 2)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func parseUnsigned(s string, base int) (int64, error) {
	u, err := strconv.ParseUint(s, base, 63)
	return int64(u), err
}

// parseFloat parses a TOML float the scanner has already checked.
func parseFloat(s string) (float64, error) {
	s = strings.ReplaceAll(s, "_", "")
	switch strings.TrimLeft(s, "+-") {
	case "nan":
		return math.NaN(), nil
	case "inf":
		if s[0] == '-' {
			return math.Inf(-1), nil
		}
		return math.Inf(1), nil
	}
	return strconv.ParseFloat(s, 64)
}

// --- from the tree to a Config ---------------------------------------------

// setter decodes one key's value into its destination.
type setter func(t *tnode, f *tfield)

// table decodes the keys of t with the setters in spec, and reports the
// keys it does not know.
func (d *decoder) table(t *tnode, spec map[string]setter, unknown func(key string) string) {
	for _, f := range t.fields {
		if s := spec[f.key]; s != nil {
			s(t, f)
			continue
		}
		reason := ""
		if unknown != nil {
			reason = unknown(f.key)
		}
		if reason == "" {
			reason = "unknown key" + suggest(f.key, spec)
		}
		// The value is not shown: it could be a misspelt secret.
		d.fail(t, displayKey(f.key), f.line, "", reason)
	}
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// or "".
func suggest(key string, spec map[string]setter) string {
	best, bestD := "", 3
	for k := range spec {
		if dist := editDistance(strings.ToLower(key), k); dist < bestD || dist == bestD && k < best {
			best, bestD = k, dist
		}
	}
	if best == "" || bestD > 2 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// shown returns how a value appears in an error: a string's text, another
// scalar's source, nothing for tables and arrays; at most 80 characters.
func shown(v *tnode) string {
	if v.kind == tTable || v.kind == tArray {
		return ""
	}
	return clip(v.text)
}

// clip shortens s to at most 80 characters for an error message.
func clip(s string) string {
	if len(s) <= 80 || utf8.RuneCountInString(s) <= 80 {
		return s
	}
	return string([]rune(s)[:77]) + "..."
}

func (d *decoder) wrongType(t *tnode, f *tfield, want string) {
	d.fail(t, f.key, f.val.line, shown(f.val), "must be "+want+", not "+f.val.kind.String())
}

func (d *decoder) str(dst *string) setter {
	return func(t *tnode, f *tfield) {
		if f.val.kind != tString {
			d.wrongType(t, f, "a string")
			return
		}
		*dst = f.val.text
	}
}

func (d *decoder) boolean(dst *bool, negate bool) setter {
	return func(t *tnode, f *tfield) {
		if f.val.kind != tBool {
			d.wrongType(t, f, "a boolean (true or false, unquoted)")
			return
		}
		*dst = f.val.b != negate
	}
}

func (d *decoder) integer(dst *int) setter {
	return func(t *tnode, f *tfield) {
		if f.val.kind != tInteger {
			d.wrongType(t, f, "an integer")
			return
		}
		if int64(int(f.val.i)) != f.val.i {
			d.fail(t, f.key, f.val.line, shown(f.val), "integer out of range")
			return
		}
		*dst = int(f.val.i)
	}
}

func (d *decoder) number(dst *float64) setter {
	return func(t *tnode, f *tfield) {
		switch f.val.kind {
		case tInteger:
			*dst = float64(f.val.i)
		case tFloat:
			if math.IsNaN(f.val.f) || math.IsInf(f.val.f, 0) {
				d.fail(t, f.key, f.val.line, shown(f.val), "must be a finite number (negative means unlimited)")
				return
			}
			*dst = f.val.f
		default:
			d.wrongType(t, f, "a number")
		}
	}
}

// maxSeconds is the longest duration in whole seconds time.Duration holds.
const maxSeconds = math.MaxInt64 / int64(time.Second)

func (d *decoder) duration(dst *time.Duration) setter {
	return func(t *tnode, f *tfield) {
		switch f.val.kind {
		case tInteger:
			if f.val.i > maxSeconds || f.val.i < -maxSeconds {
				d.fail(t, f.key, f.val.line, shown(f.val), "duration out of range")
				return
			}
			*dst = time.Duration(f.val.i) * time.Second
		case tString:
			v, err := time.ParseDuration(f.val.text)
			if err != nil {
				d.fail(t, f.key, f.val.line, shown(f.val), `not a duration: write whole seconds (300) or a Go duration string ("5m", "1h30m")`)
				return
			}
			*dst = v
		default:
			d.wrongType(t, f, `whole seconds (300) or a duration string ("5m")`)
		}
	}
}

func (d *decoder) negotiation(dst *Negotiation) setter {
	return func(t *tnode, f *tfield) {
		if f.val.kind != tString {
			d.wrongType(t, f, `a string ("required", "optional" or "not-supported")`)
			return
		}
		if err := dst.UnmarshalText([]byte(f.val.text)); err != nil {
			d.fail(t, f.key, f.val.line, shown(f.val), `not a negotiation value: "required", "optional" or "not-supported"`)
		}
	}
}

func (d *decoder) partnerType(dst *PartnerType) setter {
	return func(t *tnode, f *tfield) {
		if f.val.kind != tString {
			d.wrongType(t, f, `a string ("federated", "public-verified" or "public-unverified")`)
			return
		}
		if err := dst.UnmarshalText([]byte(f.val.text)); err != nil {
			d.fail(t, f.key, f.val.line, shown(f.val), `not a partner type: "federated", "public-verified" or "public-unverified"`)
		}
	}
}

func (d *decoder) strings(dst *[]string) setter {
	return func(t *tnode, f *tfield) {
		if f.val.kind != tArray || f.val.aot {
			d.wrongType(t, f, "an array of strings")
			return
		}
		var out []string
		var pos []int
		for _, el := range f.val.elems {
			if el.kind != tString {
				d.add(&perr{at: f.val, elem: el.elem, line: el.line, value: shown(el),
					reason: "must be a string, not " + el.kind.String()})
				continue
			}
			out = append(out, el.text)
			pos = append(pos, el.elem+1)
		}
		if len(out) < len(f.val.elems) {
			d.remaps = append(d.remaps, remap{f.val, pos})
		}
		*dst = out
	}
}

func (d *decoder) secret(dst *Secret) setter {
	return func(t *tnode, f *tfield) {
		// Never show the value: it is (or was meant to be) the secret.
		if f.val.kind != tString {
			d.fail(t, f.key, f.val.line, "", "must be a string (standard base64), not "+f.val.kind.String())
			return
		}
		b, err := base64.StdEncoding.DecodeString(f.val.text)
		if err != nil {
			d.fail(t, f.key, f.val.line, "", "not valid standard base64 (A-Z a-z 0-9 + /, padded with =)")
			return
		}
		*dst = NewSecret(b)
	}
}

// tableOrArray returns the tables of a value that must be an array of
// tables ([[name]] or name = [{...}]), or reports it.
func (d *decoder) tables(t *tnode, f *tfield, name string) []*tnode {
	if f.val.kind != tArray {
		d.fail(t, f.key, f.val.line, shown(f.val), fmt.Sprintf("must be an array of tables: write [[%s]] for each", name))
		return nil
	}
	var ts []*tnode
	var pos []int
	for _, el := range f.val.elems {
		if el.kind != tTable {
			d.add(&perr{at: f.val, elem: el.elem, line: el.line, value: shown(el),
				reason: "must be a table, not " + el.kind.String()})
			continue
		}
		ts = append(ts, el)
		pos = append(pos, el.elem+1)
	}
	if len(ts) < len(f.val.elems) {
		d.remaps = append(d.remaps, remap{f.val, pos})
	}
	return ts
}

func (d *decoder) config(root *tnode, c *Config) {
	d.table(root, map[string]setter{
		"gateway": func(t *tnode, f *tfield) {
			if f.val.kind != tTable {
				d.fail(t, f.key, f.val.line, shown(f.val), "must be a table: write [gateway] (there is exactly one gateway)")
				return
			}
			d.gateway(f.val, &c.Gateway)
		},
		"partner": func(t *tnode, f *tfield) {
			for _, pt := range d.tables(t, f, "partner") {
				var p Partner
				d.partner(pt, &p, false)
				c.Partners = append(c.Partners, p)
			}
		},
		"policy": func(t *tnode, f *tfield) {
			for _, pt := range d.tables(t, f, "policy") {
				var ap AccessPolicy
				d.policy(pt, &ap)
				c.Policies = append(c.Policies, ap)
			}
		},
	}, nil)
}

func (d *decoder) gateway(t *tnode, g *Gateway) {
	d.table(t, map[string]setter{
		"identity": func(t *tnode, f *tfield) {
			if f.val.kind != tString {
				d.wrongType(t, f, `the string "global"`)
				return
			}
			if f.val.text != "global" {
				d.fail(t, f.key, f.val.line, shown(f.val), `the gateway is a singleton: its identity can only be "global" (REFERENCE §2.2)`)
			}
		},
		"connection_limit":              d.integer(&g.ConnectionLimit),
		"partner_connection_limit":      d.integer(&g.PartnerConnectionLimit),
		"keepalive_interval":            d.duration(&g.KeepAliveInterval),
		"stream_establishment_timeout":  d.duration(&g.StreamEstablishmentTimeout),
		"stream_inactivity_timeout":     d.duration(&g.StreamInactivityTimeout),
		"subscription_refresh_interval": d.duration(&g.SubscriptionRefreshInterval),
		"log_bodies":                    d.boolean(&g.LogBodies, false),
		"dialback_secret":               d.secret(&g.DialbackSecret),
		"max_stanza_bytes":              d.integer(&g.MaxStanzaBytes),
		"stanzas_per_second":            d.number(&g.StanzasPerSecond),
		"open_federation":               d.boolean(&g.OpenFederation, false),
		"disable_federation":            d.boolean(&g.DisableFederation, false),
		"deny_unverified_subscriptions": d.boolean(&g.DenyUnverifiedSubscriptions, false),
		"blocked":                       d.strings(&g.Blocked),
		"default_partner": func(t *tnode, f *tfield) {
			if f.val.kind != tTable {
				d.wrongType(t, f, "a table ([gateway.default_partner])")
				return
			}
			d.partner(f.val, &g.DefaultPartner, true)
		},
	}, nil)
}

func (d *decoder) partner(t *tnode, p *Partner, isDefault bool) {
	spec := map[string]setter{
		"type":               d.partnerType(&p.Type),
		"tls":                d.negotiation(&p.TLS),
		"sasl":               d.negotiation(&p.SASL),
		"dialback":           d.boolean(&p.DisableDialback, true),
		"keepalive":          d.boolean(&p.DisableKeepAlive, true),
		"connection_limit":   d.integer(&p.ConnectionLimit),
		"proxy_fqdn":         d.str(&p.ProxyFQDN),
		"stanzas_per_second": d.number(&p.StanzasPerSecond),
		"description":        d.str(&p.Description),
	}
	var unknown func(string) string
	if isDefault {
		unknown = func(key string) string {
			if key == "domain" || key == "additional_domains" {
				return "not allowed in [gateway.default_partner], which applies to any domain open federation admits"
			}
			return ""
		}
	} else {
		spec["domain"] = d.str(&p.Domain)
		spec["additional_domains"] = d.strings(&p.AdditionalDomains)
	}
	d.table(t, spec, unknown)
}

func (d *decoder) policy(t *tnode, ap *AccessPolicy) {
	d.table(t, map[string]setter{
		"name":                     d.str(&ap.Name),
		"enable_xmpp_access":       d.boolean(&ap.EnableXMPPAccess, false),
		"enable_federation_access": d.boolean(&ap.EnableFederationAccess, false),
		"description":              d.str(&ap.Description),
	}, nil)
}

// --- names and lines ------------------------------------------------------

// label returns how an element of the partner or policy list is named,
// as Config.Validate names it: its domain or name as written when valid,
// else "#N" (1-based).
func label(el *tnode, key string) string {
	if v := el.get(key); v != nil && v.kind == tString {
		if key == "domain" && checkDomain(v.text) == "" || key == "name" && checkPolicyName(v.text) == "" {
			return v.text
		}
	}
	return "#" + strconv.Itoa(el.elem+1)
}

// name returns the field name of node n (a table or array) as errors
// spell it: "gateway.default_partner", "partner[fabrikam.com]",
// "partner[#2].additional_domains".
func name(n *tnode) string {
	if n == nil || n.parent == nil {
		return ""
	}
	if n.parent.kind == tArray {
		arr := n.parent
		base := name(arr)
		if arr.parent != nil && arr.parent.parent == nil && (arr.key == "partner" || arr.key == "policy") && n.kind == tTable {
			k := "domain"
			if arr.key == "policy" {
				k = "name"
			}
			return base + "[" + label(n, k) + "]"
		}
		return base + "[" + strconv.Itoa(n.elem+1) + "]"
	}
	base := name(n.parent)
	if base == "" {
		return displayKey(n.key)
	}
	return base + "." + displayKey(n.key)
}

// displayKey joins the parts of a dotted key as TOML writes them, quoting
// the parts that are not bare keys.
func displayKey(parts ...string) string {
	var b strings.Builder
	more := len(parts) > maxKeyParts
	if more {
		parts = parts[:maxKeyParts]
	}
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		bare := p != ""
		for _, r := range p {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				bare = false
				break
			}
		}
		p = clip(p)
		if bare {
			b.WriteString(p)
		} else {
			b.WriteString(strconv.Quote(p))
		}
	}
	if more {
		b.WriteString("...")
	}
	return b.String()
}

func (e *perr) fieldName() string {
	if e.field != "" {
		return e.field
	}
	base := name(e.at)
	switch {
	case e.elem >= 0:
		return base + "[" + strconv.Itoa(e.elem+1) + "]"
	case base == "":
		return e.key
	case e.key == "":
		return base
	}
	return base + "." + e.key
}

// fileError names the problems and sorts them by line.
func (d *decoder) fileError(path string) *FileError {
	fes := make([]*FieldError, 0, len(d.errs))
	for _, e := range d.errs {
		fe := &FieldError{Field: e.fieldName(), Value: e.value, Reason: e.reason, Line: e.line}
		if strings.Contains(fe.Field, "dialback_secret") {
			fe.Value = ""
		}
		fes = append(fes, fe)
	}
	slices.SortStableFunc(fes, func(a, b *FieldError) int {
		if (a.Line == 0) != (b.Line == 0) {
			return cmp.Compare(b.Line, a.Line) // line 0 last
		}
		return cmp.Compare(a.Line, b.Line)
	})
	fe := &FileError{Path: path, Errors: fes, Omitted: d.dropped}
	if len(fes) > maxFileErrors {
		fe.Errors, fe.Omitted = fes[:maxFileErrors:maxFileErrors], len(fes)-maxFileErrors+d.dropped
	}
	return fe
}

// validate runs Config.Validate and maps its problems back to lines.
// Problems on fields that already have a decoding error are dropped: they
// are consequences of it.
func (d *decoder) validate(c *Config, strict bool) []Warning {
	ws, err := c.Validate(strict)
	bad := map[string]bool{}
	for _, e := range d.errs {
		bad[e.fieldName()] = true
	}
	root := d.tree
	fes := FieldErrors(err)
	for _, fe := range fes {
		field := d.translate(fe.Field)
		if bad[field] {
			continue
		}
		value := fe.Value
		if strings.Contains(field, "dialback_secret") {
			value = ""
		}
		d.add(&perr{field: field, elem: -1, value: value, reason: fe.Reason,
			line: cmp.Or(fe.Line, d.lineOfField(root, field))})
	}
	if err != nil && len(fes) == 0 {
		d.add(&perr{field: "(config)", elem: -1, reason: err.Error()})
	}
	for i, w := range ws {
		if l := d.lineOfField(root, d.translate(w.Field)); l > 0 {
			ws[i].Text = "line " + strconv.Itoa(l) + ": " + w.Text
		}
	}
	return ws
}

// translate rewrites the indexes Validate gives elements of lists that
// lost elements in decoding ("gateway.blocked[2]", "partner[#2].tls") to
// their positions in the file.
func (d *decoder) translate(field string) string {
	if len(d.remaps) == 0 {
		return field
	}
	if d.byName == nil {
		d.byName = make(map[string][]int, len(d.remaps))
		for _, r := range d.remaps {
			d.byName[name(r.arr)] = r.pos
		}
	}
	for i := 0; i < len(field); i++ {
		if field[i] != '[' {
			continue
		}
		pos, ok := d.byName[field[:i]]
		if !ok {
			continue
		}
		rest := field[i+1:]
		hash := strings.HasPrefix(rest, "#")
		rest = strings.TrimPrefix(rest, "#")
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return field
		}
		n, err := strconv.Atoi(rest[:end])
		if err != nil || n < 1 || n > len(pos) {
			return field
		}
		idx := strconv.Itoa(pos[n-1])
		if hash {
			idx = "#" + idx
		}
		return field[:i+1] + idx + rest[end:]
	}
	return field
}

// lineOfField returns the line of the setting a Validate field name
// designates ("gateway.connection_limit", "partner[x].tls, sasl",
// "partner[#3].additional_domains[1]"), or the line of its table when the
// key is absent, or 0.
func (d *decoder) lineOfField(root *tnode, field string) int {
	if root == nil || field == "" {
		return 0
	}
	t := root
	line := 0
	rest := field
	for rest != "" {
		// The next segment: up to '.', '[' or ", ".
		var seg string
		seg, rest = nextSegment(rest)
		switch {
		case strings.HasPrefix(seg, "["):
			if t == nil || t.kind != tArray {
				return line
			}
			idx := strings.TrimSuffix(seg[1:], "]")
			el := d.findElement(t, idx)
			if el == nil {
				return line
			}
			t, line = el, cmp.Or(el.line, line)
		case strings.HasPrefix(seg, ","):
			return line
		default:
			if t == nil || t.kind != tTable {
				return line
			}
			// "tls, sasl, dialback": the first of the keys present.
			keys := []string{seg}
			if strings.HasPrefix(rest, ",") {
				for _, k := range strings.Split(rest[1:], ",") {
					keys = append(keys, strings.TrimSpace(k))
				}
				rest = ""
			}
			var f *tfield
			for _, k := range keys {
				if f = t.index[k]; f != nil {
					break
				}
			}
			if f == nil {
				return line
			}
			t, line = f.val, f.line
			if f.val.kind != tTable && f.val.kind != tArray {
				return line
			}
		}
	}
	return line
}

// nextSegment splits "a.b[c].d" into "a" and ".b[c].d" minus the dot.
func nextSegment(s string) (seg, rest string) {
	s = strings.TrimPrefix(s, ".")
	if strings.HasPrefix(s, "[") {
		if i := strings.LastIndex(s, "]"); i > 0 {
			// Labels may hold dots ("partner[a.example]"): take up to the
			// "]" that is followed by ".", "[" , "," or the end.
			for j := 1; j < len(s); j++ {
				if s[j] == ']' && (j+1 == len(s) || strings.ContainsRune(".[,", rune(s[j+1]))) {
					return s[:j+1], s[j+1:]
				}
			}
			return s[:i+1], s[i+1:]
		}
		return s, ""
	}
	if strings.HasPrefix(s, ",") {
		return s, ""
	}
	if i := strings.IndexAny(s, ".[,"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// findElement finds the element of array arr that idx designates: "N" or
// "#N" (1-based), or a partner's domain or a policy's name (the last
// element with it: a duplicate is reported on the second one).
func (d *decoder) findElement(arr *tnode, idx string) *tnode {
	n, hash := strings.CutPrefix(idx, "#")
	if i, err := strconv.Atoi(n); err == nil && (hash || !isListOfTables(arr)) {
		if i >= 1 && i <= len(arr.elems) {
			return arr.elems[i-1]
		}
		return nil
	}
	m := d.labels[arr]
	if m == nil {
		m = map[string]*tnode{}
		for _, el := range arr.elems {
			for _, k := range []string{"domain", "name"} {
				if v := el.get(k); v != nil && v.kind == tString {
					m[v.text] = el
				}
			}
		}
		if d.labels == nil {
			d.labels = map[*tnode]map[string]*tnode{}
		}
		d.labels[arr] = m
	}
	return m[idx]
}

func isListOfTables(arr *tnode) bool {
	return len(arr.elems) > 0 && arr.elems[0].kind == tTable
}

// --- Marshal --------------------------------------------------------------

// fileHeader starts every file Marshal writes.
const fileHeader = `# xmppfed policy file (TOML). The schema is in the documentation of
# policy.Parse; absent keys mean the defaults.
#
# This file was written by the policy package: comments and formatting
# added by hand are lost the next time the configuration is changed
# through the API.
`

// Marshal encodes c as a policy file in canonical form: a header comment,
// then [gateway], [gateway.default_partner], the [[partner]] tables and
// the [[policy]] tables, in c's order, each with only the keys whose
// value is not the default (zero values, dialback and keepalive true).
// Durations are written in whole seconds when they are, else as Go
// duration strings. Parse(Marshal(c)) equals c for every c that Parse can
// return. The dialback secret is written in standard base64 as
// gateway.dialback_secret: this is the one place it is ever revealed, so
// that every node reading the file shares it. DefaultPartner's Domain and
// AdditionalDomains are not written (they are ignored).
//
// Marshal refuses, with *FieldError values joined, what the file cannot
// hold: strings that are not valid UTF-8, unknown enum values, and
// non-finite rates. A nil c is an empty Config.
func Marshal(c *Config) ([]byte, error) {
	if c == nil {
		c = &Config{}
	}
	w := &writer{}
	w.b.WriteString(fileHeader)
	g := &c.Gateway
	w.b.WriteString("\n[gateway]\n")
	w.int("gateway.", "connection_limit", g.ConnectionLimit)
	w.int("gateway.", "partner_connection_limit", g.PartnerConnectionLimit)
	w.duration("gateway.", "keepalive_interval", g.KeepAliveInterval)
	w.duration("gateway.", "stream_establishment_timeout", g.StreamEstablishmentTimeout)
	w.duration("gateway.", "stream_inactivity_timeout", g.StreamInactivityTimeout)
	w.duration("gateway.", "subscription_refresh_interval", g.SubscriptionRefreshInterval)
	w.bool("gateway.", "log_bodies", g.LogBodies)
	if g.DialbackSecret.Len() > 0 {
		w.b.WriteString("# The dialback secret, shared by every node: keep this file private.\n")
		w.b.WriteString("dialback_secret = \"" + base64.StdEncoding.EncodeToString(g.DialbackSecret.b) + "\"\n")
	}
	w.int("gateway.", "max_stanza_bytes", g.MaxStanzaBytes)
	w.number("gateway.", "stanzas_per_second", g.StanzasPerSecond)
	w.bool("gateway.", "open_federation", g.OpenFederation)
	w.bool("gateway.", "disable_federation", g.DisableFederation)
	w.bool("gateway.", "deny_unverified_subscriptions", g.DenyUnverifiedSubscriptions)
	w.strings("gateway.", "blocked", g.Blocked)
	dp := g.DefaultPartner
	dp.Domain, dp.AdditionalDomains = "", nil
	if !isZeroPartner(dp) {
		w.b.WriteString("\n[gateway.default_partner]\n")
		w.partner("gateway.default_partner.", dp)
	}
	for i, p := range c.Partners {
		w.b.WriteString("\n[[partner]]\n")
		prefix := "partner[#" + strconv.Itoa(i+1) + "]."
		if checkDomain(p.Domain) == "" {
			prefix = "partner[" + p.Domain + "]."
		}
		w.string(prefix, "domain", p.Domain, false)
		w.strings(prefix, "additional_domains", p.AdditionalDomains)
		w.partner(prefix, p)
	}
	for i, ap := range c.Policies {
		w.b.WriteString("\n[[policy]]\n")
		prefix := "policy[#" + strconv.Itoa(i+1) + "]."
		if checkPolicyName(ap.Name) == "" {
			prefix = "policy[" + ap.Name + "]."
		}
		w.string(prefix, "name", ap.Name, false)
		w.bool(prefix, "enable_xmpp_access", ap.EnableXMPPAccess)
		w.bool(prefix, "enable_federation_access", ap.EnableFederationAccess)
		w.string(prefix, "description", ap.Description, true)
	}
	if len(w.errs) > 0 {
		return nil, errors.Join(w.errs...)
	}
	return w.b.Bytes(), nil
}

func isZeroPartner(p Partner) bool {
	return p.Domain == "" && len(p.AdditionalDomains) == 0 && p.Type == PublicUnverified &&
		p.Settings == (Settings{}) && p.ConnectionLimit == 0 && !p.DisableKeepAlive &&
		p.ProxyFQDN == "" && p.StanzasPerSecond == 0 && p.Description == ""
}

// writer accumulates the TOML text and the problems.
type writer struct {
	b    bytes.Buffer
	errs []error
}

func (w *writer) fail(prefix, key, value, reason string) {
	w.errs = append(w.errs, &FieldError{Field: prefix + key, Value: value, Reason: reason})
}

func (w *writer) partner(prefix string, p Partner) {
	if p.Type != PublicUnverified {
		w.text(prefix, "type", p.Type)
	}
	if p.TLS != Required {
		w.text(prefix, "tls", p.TLS)
	}
	if p.SASL != Required {
		w.text(prefix, "sasl", p.SASL)
	}
	w.bool(prefix, "dialback", p.DisableDialback) // written as dialback = false
	w.bool(prefix, "keepalive", p.DisableKeepAlive)
	w.int(prefix, "connection_limit", p.ConnectionLimit)
	w.string(prefix, "proxy_fqdn", p.ProxyFQDN, true)
	w.number(prefix, "stanzas_per_second", p.StanzasPerSecond)
	w.string(prefix, "description", p.Description, true)
}

func (w *writer) text(prefix, key string, v interface{ MarshalText() ([]byte, error) }) {
	b, err := v.MarshalText()
	if err != nil {
		w.fail(prefix, key, "", "unknown value")
		return
	}
	w.b.WriteString(key + " = \"" + string(b) + "\"\n")
}

func (w *writer) int(prefix, key string, v int) {
	if v != 0 {
		w.b.WriteString(key + " = " + strconv.Itoa(v) + "\n")
	}
}

// bool writes key = true, or, for the negated keys dialback and keepalive
// (whose fields are Disable...), key = false.
func (w *writer) bool(prefix, key string, v bool) {
	if !v {
		return
	}
	if key == "dialback" || key == "keepalive" {
		w.b.WriteString(key + " = false\n")
		return
	}
	w.b.WriteString(key + " = true\n")
}

func (w *writer) duration(prefix, key string, d time.Duration) {
	switch {
	case d == 0:
	case d%time.Second == 0:
		w.b.WriteString(key + " = " + strconv.FormatInt(int64(d/time.Second), 10) + "\n")
	default:
		w.b.WriteString(key + " = \"" + d.String() + "\"\n")
	}
}

func (w *writer) number(prefix, key string, f float64) {
	switch {
	case f == 0:
	case math.IsNaN(f) || math.IsInf(f, 0):
		w.fail(prefix, key, strconv.FormatFloat(f, 'g', -1, 64), "must be a finite number")
	case f == math.Trunc(f) && math.Abs(f) < 1<<53:
		w.b.WriteString(key + " = " + strconv.FormatInt(int64(f), 10) + "\n")
	default:
		w.b.WriteString(key + " = " + strconv.FormatFloat(f, 'g', -1, 64) + "\n")
	}
}

func (w *writer) string(prefix, key, s string, omitEmpty bool) {
	if s == "" && omitEmpty {
		return
	}
	q, ok := quote(s)
	if !ok {
		w.fail(prefix, key, "", "not valid UTF-8")
		return
	}
	w.b.WriteString(key + " = " + q + "\n")
}

func (w *writer) strings(prefix, key string, ss []string) {
	if len(ss) == 0 {
		return
	}
	w.b.WriteString(key + " = [")
	for i, s := range ss {
		if i > 0 {
			w.b.WriteString(", ")
		}
		q, ok := quote(s)
		if !ok {
			w.fail(prefix, key+"["+strconv.Itoa(i+1)+"]", "", "not valid UTF-8")
			q = `""`
		}
		w.b.WriteString(q)
	}
	w.b.WriteString("]\n")
}

// quote returns s as a TOML basic string, escaping what TOML requires
// (quote, backslash, control characters including DEL); false when s is
// not valid UTF-8, which TOML cannot hold.
func quote(s string) (string, bool) {
	if !utf8.ValidString(s) {
		return "", false
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), true
}
