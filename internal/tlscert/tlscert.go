// Package tlscert picks our own certificate for a local domain out of a
// tls.Config, for the client side of a connection (the certificate we
// present when we open a stream), where crypto/tls offers no GetCertificate
// hook keyed by our name.
package tlscert

import "crypto/tls"

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
