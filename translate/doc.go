// Package translate maps XMPP instant messages, presence and subscriptions
// to a small protocol-neutral model and back. (Overview to be written.)
package translate
