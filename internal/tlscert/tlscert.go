package tlscert

import (
	"crypto/tls"
	"sync"
)

// For returns the certificate cfg would serve for domain: what
// GetCertificate returns for that server name, else the first of
// Certificates, else nil (no certificate: only dialback can authenticate
// us).
func For(cfg *tls.Config, domain string) *tls.Certificate {
	if cfg == nil {
		return nil
	}
	if cfg.GetCertificate != nil {
		c, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: domain})
		if err == nil && c != nil {
			return c
		}
	}
	if len(cfg.Certificates) > 0 {
		return &cfg.Certificates[0]
	}
	return nil
}

// Shared hands out one configuration derived from a base tls.Config to
// every connection, instead of a clone per connection (a tls.Conn keeps
// its configuration for its whole life: about 470 bytes each). The
// derived configuration is built again when the base's certificate source
// changes: another base, or another Certificates slice. A GetCertificate
// function (certs.Reloader) is called by the derived configuration at
// every handshake, so reloaded certificates apply without a rebuild. The
// zero value is ready; a Shared must not be copied after first use.
type Shared struct {
	mu  sync.Mutex
	key sourceKey
	cfg *tls.Config
}

// sourceKey identifies a base configuration's certificate source.
type sourceKey struct {
	base  *tls.Config
	first *tls.Certificate // &base.Certificates[0], nil if none
	n     int              // len(base.Certificates)
}

func keyOf(base *tls.Config) sourceKey {
	k := sourceKey{base: base}
	if base != nil && len(base.Certificates) > 0 {
		k.first, k.n = &base.Certificates[0], len(base.Certificates)
	}
	return k
}

// Get returns the configuration derive made from base, calling derive
// only when there is none yet for base's current certificate source. The
// result is shared: callers must not modify it.
func (s *Shared) Get(base *tls.Config, derive func(base *tls.Config) *tls.Config) *tls.Config {
	k := keyOf(base)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil || s.key != k {
		s.cfg, s.key = derive(base), k
	}
	return s.cfg
}
