package federation

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/s2s"
)

// SendIQ exposes sendIQ to the tests.
func SendIQ(s *Server, ctx context.Context, from, to jid.JID, payload []byte) (*s2s.Stanza, error) {
	return s.sendIQ(ctx, from, to, payload)
}

// Handle runs the Server's s2s Handler on st.
func Handle(s *Server, ctx context.Context, st *s2s.Stanza) error {
	s.init()
	return s.handle(ctx, st)
}

// DomainAnswer returns the Server's answer to an iq to one of its domains
// (what the Handler sends).
func DomainAnswer(s *Server, st *s2s.Stanza) (*s2s.Stanza, error) {
	s.init()
	return s.domainAnswer(st)
}

// S2S returns the Server's s2s.Server.
func S2S(s *Server) *s2s.Server {
	s.init()
	return s.run.s2s
}
