// Package tlscert picks our own certificate for a local domain out of a
// tls.Config, for the client side of a connection (the certificate we
// present when we open a stream), where crypto/tls offers no GetCertificate
// hook keyed by our name; and it shares one configuration derived from our
// base configuration between connections (Shared).
package tlscert
