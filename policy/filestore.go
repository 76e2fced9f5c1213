package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sync"
)

// FileStore is a Store that keeps the configuration in a policy file (the
// TOML format of Parse), for operators who edit it by hand and for hosts
// without a database of their own.
//
// Load reads and validates the file; a missing file is an empty Config
// (every default). Save writes Marshal's output atomically: to a temporary
// file in the same directory, synced, then renamed over Path, so that a
// reader sees the old file or the new one, never a part, and a failed Save
// leaves the old file as it was. Save writes the canonical form, so the
// comments and layout of a hand-edited file are lost: it is called only by
// Policy.Apply and, once, by New to persist a generated dialback secret.
// That one case keeps the file as written: when the only difference
// between the file and c is the secret the file lacks, Save inserts the
// dialback_secret line under [gateway] and changes nothing else. Operators
// who edit the file by hand and never call Apply keep their comments. When
// Path is a symbolic link, the file it points to is replaced.
//
// FileStore implements Watcher: Changed stats the file and reports a
// change when its size, modification time or identity (inode) differ from
// what the last Load or Save saw, and the content's hash differs too (an
// editor that rewrites the same bytes is not a change).
//
// Its methods may be called concurrently; set the fields before the
// first call and do not change them afterwards. A FileStore must not be
// copied after first use.
type FileStore struct {
	// Path is the policy file's name.
	Path string
	// Strict validates the file with Config.Validate(true) (the Lync
	// Control Panel's rule) instead of Config.Validate(false).
	Strict bool
	// Perm is the new file's permission bits; zero means 0600 (the file
	// holds the dialback secret).
	Perm fs.FileMode

	mu   sync.Mutex
	seen stamp // what the last Load or Save saw
}

var (
	_ Store   = (*FileStore)(nil)
	_ Watcher = (*FileStore)(nil)
)

// stamp identifies a version of the file.
type stamp struct {
	valid   bool        // a Load or Save happened
	missing bool        // the file did not exist
	info    fs.FileInfo // nil when missing
	sum     [sha256.Size]byte
}

// same reports whether fi looks like the file s saw, without reading it.
// (A rewrite keeping size and modification time is not seen: file
// systems keep nanosecond times nowadays.)
func (s *stamp) same(fi fs.FileInfo) bool {
	return s.info != nil && os.SameFile(s.info, fi) && s.info.Size() == fi.Size() &&
		s.info.ModTime().Equal(fi.ModTime())
}

// Load reads, parses and validates the file. A missing file gives an
// empty Config; an invalid one a *FileError naming every problem with its
// line. Load records what it read, valid or not, for Changed: an invalid
// file is not reported again until it changes.
func (s *FileStore) Load(ctx context.Context) (*Config, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.Open(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		s.seen = stamp{valid: true, missing: true}
		return &Config{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, &FileError{Path: s.Path, Errors: []*FieldError{{Field: "(file)", Reason: "is a directory"}}}
	}
	data, err := readLimited(f, s.Path)
	if err != nil {
		return nil, err
	}
	s.seen = stamp{valid: true, info: fi, sum: sha256.Sum256(data)}
	c, _, err := parse(data, s.Path, s.Strict)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Save writes c to the file atomically (see FileStore). c is not kept.
func (s *FileStore) Save(ctx context.Context, c *Config) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := Marshal(c)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.Path
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	if old, err := os.ReadFile(path); err == nil {
		if kept, ok := withSecret(old, c); ok {
			data = kept
		}
	}
	if err := writeAtomic(path, data, permOr(s.Perm, 0o600)); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	s.seen = stamp{valid: true, info: fi, sum: sha256.Sum256(data)}
	return nil
}

func permOr(p, def fs.FileMode) fs.FileMode {
	if p == 0 {
		return def
	}
	return p.Perm()
}

// writeAtomic writes data to a temporary file next to path, syncs it and
// renames it over path, then syncs the directory. On error path is
// untouched and the temporary file removed.
func writeAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename durable. Not every system can sync a directory:
	// the file itself is already safe, so this error is not returned.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Changed reports whether the file may differ from what the last Load or
// Save saw: it stats the file and, only when the size, modification time
// or inode differ, reads it and compares its hash. Before any Load or
// Save it reports true.
func (s *FileStore) Changed(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.seen.valid {
		return true, nil
	}
	fi, err := os.Stat(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return !s.seen.missing, nil
	}
	if err != nil {
		return false, err
	}
	if s.seen.missing {
		return true, nil
	}
	if s.seen.same(fi) {
		return false, nil
	}
	f, err := os.Open(s.Path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err = f.Stat()
	if err != nil {
		return false, err
	}
	data, err := readLimited(f, s.Path)
	if err != nil {
		return true, nil // too large: Load will say so
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], s.seen.sum[:]) {
		return true, nil
	}
	// The same content, rewritten or touched: remember the new stat so
	// that the next call is cheap again.
	s.seen.info = fi
	return false, nil
}

// withSecret returns old with c's dialback secret inserted under its
// [gateway] header (or a [gateway] table appended), when old is a valid
// file without a secret that is otherwise c, and the result reads back as
// c; false otherwise.
func withSecret(old []byte, c *Config) ([]byte, bool) {
	if c == nil || c.Gateway.DialbackSecret.Len() == 0 || len(old) > MaxFileSize {
		return nil, false
	}
	oc, _, err := parse(old, "", false)
	if err != nil || oc.Gateway.DialbackSecret.Len() != 0 {
		return nil, false
	}
	oc.Gateway.DialbackSecret = c.Gateway.DialbackSecret
	if !sameConfig(oc, c) {
		return nil, false
	}
	d := &decoder{data: old, lines: lineStarts(old)}
	root := d.build()
	if root == nil {
		return nil, false
	}
	nl := "\n"
	if bytes.Contains(old, []byte("\r\n")) {
		nl = "\r\n"
	}
	line := "# The dialback secret, generated at first start and shared by every node" + nl +
		"# reading this file (XEP-0185): keep this file private." + nl +
		"dialback_secret = \"" + base64.StdEncoding.EncodeToString(c.Gateway.DialbackSecret.b) + "\"" + nl
	var out []byte
	switch g := root.get("gateway"); {
	case g != nil && g.kind == tTable && g.def == defHeader:
		// After the header's line.
		at := len(old)
		if g.line < len(d.lines) {
			at = d.lines[g.line]
		}
		out = append(out, old[:at]...)
		if at == len(old) && !bytes.HasSuffix(old, []byte("\n")) {
			out = append(out, nl...)
		}
		out = append(out, line...)
		out = append(out, old[at:]...)
	case g == nil || g.kind == tTable && g.def == defImplicit:
		out = append(out, old...)
		if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n")) {
			out = append(out, nl...)
		}
		out = append(out, nl+"[gateway]"+nl+line...)
	default:
		return nil, false // an inline or dotted gateway: write it anew
	}
	nc, _, err := parse(out, "", false)
	if err != nil || !sameConfig(nc, c) {
		return nil, false
	}
	return out, true
}

// sameConfig reports whether a and b are the same configuration once
// normalized (domains and policy names as New stores them).
func sameConfig(a, b *Config) bool {
	a, b = a.Clone(), b.Clone()
	normalizeConfig(a)
	normalizeConfig(b)
	return reflect.DeepEqual(a, b)
}
