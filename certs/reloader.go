package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Reloader serves certificate/key pairs to tls.Config.GetCertificate and
// reloads them when their files change, so a renewed certificate is used
// without a restart. The zero value is ready to use; call Add before serving.
// Its methods are safe for concurrent use. Do not copy a Reloader after
// first use.
type Reloader struct {
	// CheckInterval is how often GetCertificate looks at the files.
	// Zero means one minute; negative means never (only Reload reloads).
	CheckInterval time.Duration
	// Logger receives a Warn record when a changed pair fails to load.
	// Nil means silent.
	Logger *slog.Logger

	reloadMu sync.Mutex // serialises reloads (file reads) without blocking handshakes

	mu        sync.Mutex
	pairs     []*pair
	lastCheck time.Time
	now       func() time.Time // tests replace it; nil means time.Now
}

// pair is one loaded certificate/key pair.
type pair struct {
	certFile, keyFile string
	sum               [sha256.Size]byte // of cert file then key file contents
	cert              *tls.Certificate
	names             []string // lower-case DNS names of the leaf
	loadErr           error    // why the current file contents did not load (old cert kept)
}

// loadPair reads and parses a pair; the error names the file and reason.
func loadPair(certFile, keyFile string) (*pair, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certs: certificate file %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: key file %s: %w", keyFile, err)
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	p := &pair{certFile: certFile, keyFile: keyFile}
	h.Sum(p.sum[:0])
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return p, fmt.Errorf("certs: pair %s / %s: %w", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return p, fmt.Errorf("certs: certificate file %s: %w", certFile, err)
		}
	}
	p.cert = &c
	for _, n := range c.Leaf.DNSNames {
		p.names = append(p.names, presentedDNS(n))
	}
	return p, nil
}

func (r *Reloader) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

func (r *Reloader) interval() time.Duration {
	if r.CheckInterval == 0 {
		return time.Minute
	}
	return r.CheckInterval
}

// Add loads a certificate file (PEM, leaf first) and its key file now. The
// first pair added is the default for clients without a matching SNI. The
// error names the file and the reason.
func (r *Reloader) Add(certFile, keyFile string) error {
	if certFile == "" || keyFile == "" {
		return fmt.Errorf("certs: Reloader.Add: empty file name (cert %q, key %q)", certFile, keyFile)
	}
	p, err := loadPair(certFile, keyFile)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pairs) == 0 {
		r.lastCheck = r.clock()
	}
	r.pairs = append(r.pairs, p)
	return nil
}

// Reload re-reads every pair and swaps in those whose files changed. A pair
// that fails to load keeps its old certificate serving; the returned error
// (errors.Join of all failures) names each file and why. Failures are also
// logged at Warn.
func (r *Reloader) Reload() error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	r.mu.Lock()
	old := slices.Clone(r.pairs)
	r.lastCheck = r.clock()
	r.mu.Unlock()

	var errs []error
	for _, p := range old {
		np, err := loadPair(p.certFile, p.keyFile)
		if np != nil && np.sum == p.sum {
			if p.loadErr != nil {
				errs = append(errs, p.loadErr) // still broken: say so again, log once
			}
			continue
		}
		if err != nil {
			errs = append(errs, err)
			if r.Logger != nil {
				r.Logger.LogAttrs(context.Background(), slog.LevelWarn, "certs: renewed certificate not loaded; still serving the old one",
					slog.String("cert_file", p.certFile), slog.String("key_file", p.keyFile), slog.Any("err", err))
			}
			if np == nil {
				continue
			}
			// Remember the broken content so it is reported once, not
			// every interval; keep serving the old certificate.
			np.cert, np.names, np.loadErr = p.cert, p.names, err
		}
		r.mu.Lock()
		for i := range r.pairs {
			if r.pairs[i] == p {
				r.pairs[i] = np
			}
		}
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

// GetCertificate implements tls.Config.GetCertificate. It picks the pair
// whose DNS names match the SNI name exactly, else one whose one-label
// wildcard covers it, else the first pair added. At most once per
// CheckInterval it first reloads changed files (see Reload).
func (r *Reloader) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	due := false
	if iv := r.interval(); iv > 0 && len(r.pairs) > 0 {
		if now := r.clock(); now.Sub(r.lastCheck) >= iv {
			r.lastCheck = now
			due = true
		}
	}
	r.mu.Unlock()
	if due {
		_ = r.Reload() // failures are logged; the old pairs keep serving
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pairs) == 0 {
		return nil, errors.New("certs: Reloader has no certificate; call Add first")
	}
	name := ""
	if hello != nil {
		name = presentedDNS(hello.ServerName)
	}
	if name != "" {
		for _, p := range r.pairs {
			if slices.Contains(p.names, name) {
				return p.cert, nil
			}
		}
		if _, rest, ok := strings.Cut(name, "."); ok && rest != "" {
			wild := "*." + rest
			for _, p := range r.pairs {
				if slices.Contains(p.names, wild) {
					return p.cert, nil
				}
			}
		}
	}
	return r.pairs[0].cert, nil
}

// Domains returns the sorted DNS names covered by the loaded pairs.
func (r *Reloader) Domains() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.pairs {
		out = append(out, p.names...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
