package policy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/policy"
)

func mustChanged(t *testing.T, s *policy.FileStore, want bool, when string) {
	t.Helper()
	got, err := s.Changed(context.Background())
	if err != nil {
		t.Fatalf("%s: Changed: %v", when, err)
	}
	if got != want {
		t.Errorf("%s: Changed = %v, want %v", when, got, want)
	}
}

func TestFileStoreMissingFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "policy.toml")
	s := &policy.FileStore{Path: path}
	mustChanged(t, s, true, "before any Load")
	c, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, &policy.Config{}) {
		t.Errorf("missing file: %+v, want the empty Config", c)
	}
	mustChanged(t, s, false, "still missing")
	if err := os.WriteFile(path, []byte("[gateway]\nlog_bodies = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustChanged(t, s, true, "created")
	c, err = s.Load(ctx)
	if err != nil || !c.Gateway.LogBodies {
		t.Fatalf("Load: %+v, %v", c, err)
	}
	mustChanged(t, s, false, "loaded")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	mustChanged(t, s, true, "removed")
}

func TestFileStoreSaveLoad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.toml")
	s := &policy.FileStore{Path: path}
	want := fullConfig()
	want.Gateway.DisableFederation = false
	if err := s.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	mustChanged(t, s, false, "after Save")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (the file holds the dialback secret)", fi.Mode().Perm())
	}
	got, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load after Save:\n got %+v\nwant %+v", got, want)
	}
	// Save does not keep c.
	want.Partners[0].Domain = "changed.example"
	got2, err := s.Load(ctx)
	if err != nil || got2.Partners[0].Domain != "fabrikam.com" {
		t.Errorf("Save kept the caller's Config: %v %v", got2.Partners[0].Domain, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the policy file (no temporary files left): %v", len(entries), err)
	}

	s2 := &policy.FileStore{Path: filepath.Join(dir, "other.toml"), Perm: 0o640}
	if err := s2.Save(ctx, &policy.Config{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s2.Path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("Perm 0640: got %v, %v", fi.Mode().Perm(), err)
	}
}

func TestFileStoreChangedAfterExternalEdit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "policy.toml")
	orig := []byte("# hand-written\n[[partner]]\ndomain = \"a.example\"\n")
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &policy.FileStore{Path: path}
	if _, err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	mustChanged(t, s, false, "just loaded")

	// Same content, new modification time: not a change.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	mustChanged(t, s, false, "touched")
	mustChanged(t, s, false, "touched, asked again")

	// Same content written through a new inode (an editor's rename).
	tmp := path + ".new"
	if err := os.WriteFile(tmp, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	mustChanged(t, s, false, "same bytes, new inode")

	// Same size, different content.
	edited := bytes.Replace(orig, []byte("a.example"), []byte("b.example"), 1)
	if err := os.WriteFile(path, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	mustChanged(t, s, true, "edited")
	mustChanged(t, s, true, "edited, not loaded yet")
	c, err := s.Load(ctx)
	if err != nil || c.Partners[0].Domain != "b.example" {
		t.Fatalf("Load after edit: %+v %v", c, err)
	}
	mustChanged(t, s, false, "edit loaded")

	// An invalid edit: Load refuses it with the path and line, and
	// Changed does not report it again until the next edit.
	if err := os.WriteFile(path, []byte("[[partner]]\ndomain = \"b.example\"\ntls = \"maybe\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustChanged(t, s, true, "invalid edit")
	_, err = s.Load(ctx)
	var fe *policy.FileError
	if !errors.As(err, &fe) || fe.Path != path || fe.Errors[0].Line != 3 {
		t.Fatalf("invalid file: %v", err)
	}
	mustChanged(t, s, false, "invalid edit seen")
}

func TestFileStoreStrict(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "policy.toml")
	src := "[[partner]]\ndomain = \"a.example\"\ntls = \"not-supported\"\nsasl = \"optional\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&policy.FileStore{Path: path}).Load(ctx); err != nil {
		t.Fatalf("lenient: %v", err)
	}
	_, err := (&policy.FileStore{Path: path, Strict: true}).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), path+":3: partner[a.example].tls, sasl") {
		t.Errorf("strict: %v", err)
	}
}

// TestFileStoreSaveFailureKeepsOldFile: a Save that fails leaves the old
// file as it was and no temporary file behind.
func TestFileStoreSaveFailureKeepsOldFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := []byte("# the old file\n[gateway]\nlog_bodies = true\n")
	newCfg := &policy.Config{Gateway: policy.Gateway{OpenFederation: true}}

	t.Run("temporary file cannot be created", func(t *testing.T) {
		// A name long enough that the temporary name next to it is
		// too long for the file system (root ignores permissions, so a
		// read-only directory would not do).
		path := filepath.Join(dir, strings.Repeat("p", 250))
		if err := os.WriteFile(path, old, 0o600); err != nil {
			t.Fatal(err)
		}
		s := &policy.FileStore{Path: path}
		if err := s.Save(ctx, newCfg); err == nil {
			t.Fatal("Save succeeded")
		}
		checkFile(t, path, old)
	})
	t.Run("rename fails", func(t *testing.T) {
		path := filepath.Join(dir, "isdir")
		if err := os.MkdirAll(filepath.Join(path, "keep"), 0o700); err != nil {
			t.Fatal(err)
		}
		s := &policy.FileStore{Path: path}
		if err := s.Save(ctx, newCfg); err == nil {
			t.Fatal("Save over a non-empty directory succeeded")
		}
		if fi, err := os.Stat(filepath.Join(path, "keep")); err != nil || !fi.IsDir() {
			t.Errorf("directory damaged: %v", err)
		}
		if _, err := s.Load(ctx); err == nil {
			t.Errorf("Load of a directory succeeded")
		}
	})
	t.Run("directory missing", func(t *testing.T) {
		s := &policy.FileStore{Path: filepath.Join(dir, "no", "such", "policy.toml")}
		if err := s.Save(ctx, newCfg); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want ErrNotExist", err)
		}
	})
	t.Run("config the file cannot hold", func(t *testing.T) {
		path := filepath.Join(dir, "policy.toml")
		if err := os.WriteFile(path, old, 0o600); err != nil {
			t.Fatal(err)
		}
		s := &policy.FileStore{Path: path}
		bad := &policy.Config{Partners: []policy.Partner{{Domain: "a.example", Description: "\xff"}}}
		if err := s.Save(ctx, bad); err == nil {
			t.Fatal("Save succeeded")
		}
		checkFile(t, path, old)
	})
	t.Run("canceled context", func(t *testing.T) {
		path := filepath.Join(dir, "policy.toml")
		s := &policy.FileStore{Path: path}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Save(cctx, newCfg); !errors.Is(err, context.Canceled) {
			t.Errorf("Save: %v", err)
		}
		if _, err := s.Load(cctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Load: %v", err)
		}
		if _, err := s.Changed(cctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Changed: %v", err)
		}
		checkFile(t, path, old)
	})
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("file changed:\n%s", got)
	}
}

// TestFileStoreSymlink: Save replaces the file a symbolic link points to,
// not the link.
func TestFileStoreSymlink(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	target := filepath.Join(dir, "real.toml")
	link := filepath.Join(dir, "link.toml")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	s := &policy.FileStore{Path: link}
	if err := s.Save(ctx, &policy.Config{Gateway: policy.Gateway{LogBodies: true}}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v", err)
	}
	c, _, err := policy.ParseFile(target, false)
	if err != nil || !c.Gateway.LogBodies {
		t.Errorf("target not written: %+v %v", c, err)
	}
	mustChanged(t, s, false, "after Save through the link")
}

// TestFileStoreConcurrent: concurrent Saves, Loads and Changed calls are
// safe (run with -race) and every Load sees one whole saved file.
func TestFileStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	s := &policy.FileStore{Path: filepath.Join(t.TempDir(), "policy.toml")}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				c := &policy.Config{Gateway: policy.Gateway{ConnectionLimit: 1000 + w*100 + i, PartnerConnectionLimit: 1}}
				if err := s.Save(ctx, c); err != nil {
					errs <- err
					return
				}
				got, err := s.Load(ctx)
				if err != nil {
					errs <- err
					return
				}
				if got.Gateway.ConnectionLimit < 1000 || got.Gateway.PartnerConnectionLimit != 1 {
					errs <- fmt.Errorf("torn read: %+v", got.Gateway)
					return
				}
				if _, err := s.Changed(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mustChanged(t, s, false, "after the last Load")
}

func ExampleFileStore() {
	dir, err := os.MkdirTemp("", "policy")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store := &policy.FileStore{Path: filepath.Join(dir, "policy.toml")}

	// A missing file is the default configuration.
	c, err := store.Load(ctx)
	fmt.Println(len(c.Partners), err)

	c.Partners = append(c.Partners, policy.Partner{Domain: "fabrikam.com", Type: policy.Federated})
	if err := store.Save(ctx, c); err != nil {
		fmt.Println(err)
		return
	}
	changed, _ := store.Changed(ctx)
	fmt.Println("changed after our own Save:", changed)

	// An operator edits the file.
	edited := "[[partner]]\ndomain = \"fabrikam.com\"\ntype = \"federated\"\ntls = \"sometimes\"\n"
	if err := os.WriteFile(store.Path, []byte(edited), 0o600); err != nil {
		fmt.Println(err)
		return
	}
	changed, _ = store.Changed(ctx)
	fmt.Println("changed after the edit:", changed)
	_, err = store.Load(ctx)
	fmt.Println(strings.TrimPrefix(err.Error(), dir+string(filepath.Separator)))
	// Output:
	// 0 <nil>
	// changed after our own Save: false
	// changed after the edit: true
	// policy.toml:4: partner[fabrikam.com].tls = "sometimes": not a negotiation value: "required", "optional" or "not-supported"
}

// TestFileStoreSecretKeepsComments: saving a generated dialback secret
// into a hand-written file inserts one line and keeps everything else.
func TestFileStoreSecretKeepsComments(t *testing.T) {
	ctx := context.Background()
	example, err := os.ReadFile("../examples/policycheck/partners.toml")
	if err != nil {
		t.Fatal(err)
	}
	secret := policy.NewSecret([]byte("0123456789abcdef0123456789ABCDEF"))
	tests := []struct {
		name     string
		src      string
		preserve bool
	}{
		{"example file", string(example), true},
		{"no gateway table", "# partners only\n[[partner]]\ndomain = \"a.example\"", true},
		{"implicit gateway", "[gateway.default_partner] # comment\ntls = \"optional\"\nsasl = \"not-supported\"\n", true},
		{"gateway header last", "# c\n[gateway]", true},
		{"crlf", "# windows\r\n[gateway]\r\nlog_bodies = true\r\n", true},
		{"empty file", "", true},
		{"not normalized", "[[partner]]\ndomain = \"Fabrikam.COM.\"\n", true},
		{"dotted gateway", "# c\ngateway.log_bodies = true\n", false},
		{"inline gateway", "# c\ngateway = { log_bodies = true }\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy.toml")
			if err := os.WriteFile(path, []byte(tt.src), 0o600); err != nil {
				t.Fatal(err)
			}
			s := &policy.FileStore{Path: path}
			c, err := s.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c.Gateway.DialbackSecret = secret
			if err := s.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			kept := true
			for _, line := range strings.Split(tt.src, "\n") {
				if !bytes.Contains(got, []byte(line)) {
					kept = false
				}
			}
			if kept != tt.preserve {
				t.Errorf("file kept as written: %v, want %v:\n%s", kept, tt.preserve, got)
			}
			if n := bytes.Count(got, []byte("dialback_secret = ")); n != 1 {
				t.Errorf("%d dialback_secret lines:\n%s", n, got)
			}
			back, err := s.Load(ctx)
			if err != nil {
				t.Fatalf("saved file does not load: %v\n%s", err, got)
			}
			if !bytes.Equal(back.Gateway.DialbackSecret.Bytes(), secret.Bytes()) {
				t.Errorf("secret not saved")
			}
			back.Gateway.DialbackSecret = c.Gateway.DialbackSecret
			if !reflect.DeepEqual(back, c) {
				t.Errorf("Load after Save:\n got %+v\nwant %+v", back, c)
			}
		})
	}
}

// TestNewWithFileStore: New generates the dialback secret once, writes it
// into the file without losing the operator's comments, and a second
// start (another node) reads the same secret.
func TestNewWithFileStore(t *testing.T) {
	ctx := context.Background()
	example, err := os.ReadFile("../examples/policycheck/partners.toml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, example, 0o600); err != nil {
		t.Fatal(err)
	}
	p1, err := policy.New(ctx, &policy.FileStore{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(after, example[:bytes.Index(example, []byte("[gateway]"))]) ||
		!bytes.Contains(after, []byte("# The \"Google Talk\" configuration")) {
		t.Errorf("the operator's comments were lost:\n%s", after)
	}
	if len(after)-len(example) > 300 {
		t.Errorf("more than the secret was added: %d bytes", len(after)-len(example))
	}
	p2, err := policy.New(ctx, &policy.FileStore{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := p1.Config().Gateway.DialbackSecret, p2.Config().Gateway.DialbackSecret
	if s1.Len() < 16 || !bytes.Equal(s1.Bytes(), s2.Bytes()) {
		t.Errorf("the two nodes do not share one secret (%d and %d bytes)", s1.Len(), s2.Len())
	}
	again, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(again, after) {
		t.Errorf("the second start rewrote the file: %v", err)
	}
}
