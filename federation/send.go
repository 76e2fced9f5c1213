package federation

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// Send hands an outbound value from a local user to the XMPP world: an IM
// (*translate.Message), a presence update (*translate.Presence, broadcast
// to authorized watchers when To is empty), a subscription request or
// answer (*translate.Subscription) or a probe. It returns once the policy
// allowed it and the outbound pool took every resulting stanza (or with
// the refusal: a *policy.Denial, a translate error); a later failure goes
// to Backend.Bounce. ctx bounds only the call.
//
// The remote domain is checked against the policy before anything else
// (a refused one changes no subscription state); a broadcast presence
// goes to every watcher the Translator selects, and Send returns the
// errors of the stanzas the pool did not take, joined (errors.As finds a
// *policy.Denial among them).
func (s *Server) Send(ctx context.Context, v translate.Stanza) error {
	if err := s.ready(); err != nil {
		return err
	}
	if s.isClosed() {
		return ErrServerClosed
	}
	if err := s.precheck(ctx, v); err != nil {
		s.countDenied(err)
		return err
	}
	var buf [1]translate.Encoded // one stanza but for a presence broadcast
	out, err := s.run.tr.OutboundEncoded(ctx, buf[:0], v)
	if err != nil {
		s.countDenied(err)
		return err
	}
	var errs []error
	for _, e := range out {
		if err := s.sendEncoded(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	if m := s.Metrics; m != nil {
		m.QueueDepth(s.run.s2s.Queued())
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// precheck refuses a value addressed to a domain the policy does not
// admit, or to one of our own domains, before the Translator changes any
// subscription state for it; and a subscription stanza from a local user
// without XMPP access (REFERENCE §5.6 #59).
func (s *Server) precheck(ctx context.Context, v translate.Stanza) error {
	var from, to jid.JID
	switch v := v.(type) {
	case *translate.Message:
		if v != nil {
			from, to = v.From, v.To
		}
	case *translate.Presence:
		if v != nil {
			from, to = v.From, v.To
		}
	case *translate.Subscription:
		if v != nil {
			from, to = v.From, v.To
			if s.Policy != nil && from.Localpart() != "" {
				if err := s.Policy.CheckUser(ctx, from.Bare()); err != nil {
					return err
				}
			}
		}
	case *translate.Probe:
		if v != nil {
			from, to = v.From, v.To
		}
	}
	if from.Domainpart() != "" && !s.isLocalJID(from) {
		return fmt.Errorf("federation: Send: from %q is not one of our domains", from.String())
	}
	d := to.Domainpart()
	if d == "" {
		return nil // a broadcast presence, or a value the Translator refuses
	}
	if s.isLocal(d) {
		return fmt.Errorf("federation: Send: to %q is one of our own domains; deliver it locally", to.String())
	}
	if s.Policy == nil {
		return &policy.Denial{Rule: policy.RuleNotPartner, Domain: d}
	}
	return s.Policy.Admit(d)
}

// isLocalJID is isLocal for j's domain, without allocating the domain
// string when it is one of ours as it stands (the map look-up does not
// keep it).
func (s *Server) isLocalJID(j jid.JID) bool {
	if s.run.domains[j.Domainpart()] {
		return true
	}
	return s.isLocal(j.Domainpart())
}

// isLocal reports whether domain is one of Server.Domains.
func (s *Server) isLocal(domain string) bool {
	if s.run.domains[domain] {
		return true // already an A-label, as JID domainparts of ASCII names are
	}
	a, err := certs.NormalizeDomain(domain)
	return err == nil && s.run.domains[a]
}

// sendRaw queues one encoded stanza in the s2s pool, parsing it first:
// for stanzas that are not only translate.Encode's work (the Translator's
// replies to inbound stanzas, which may quote them).
func (s *Server) sendRaw(ctx context.Context, raw []byte) error {
	st, err := s2s.ParseStanza(raw)
	if err != nil {
		return err
	}
	return s.sendStanza(ctx, st)
}

// sendEncoded queues one stanza that translate encoded from a typed value
// in the s2s pool without parsing it again: its addresses come with it
// (s2s.TrustedStanza's contract), and s2s.Server.Send still checks the
// from domain, the user's access and the policy.
func (s *Server) sendEncoded(ctx context.Context, e translate.Encoded) error {
	st, err := s2s.TrustedStanza(e.Kind, e.From, e.To, e.ID, e.Type, e.Raw)
	if err != nil {
		return err
	}
	return s.sendStanza(ctx, st)
}

// sendStanza queues st in the s2s pool and counts it.
func (s *Server) sendStanza(ctx context.Context, st *s2s.Stanza) error {
	if err := s.run.s2s.Send(ctx, st); err != nil {
		s.countDenied(err)
		return mapClosed(err)
	}
	if m := s.Metrics; m != nil {
		m.Stanza("out", s.partnerOf(st.RecipientDomain()))
	}
	return nil
}

// countDenied counts a policy refusal.
func (s *Server) countDenied(err error) {
	var d *policy.Denial
	if m := s.Metrics; m != nil && errors.As(err, &d) {
		m.Denied(d.Rule.String())
	}
}

// partnerOf is the metrics label of a remote domain: its partner's main
// domain, or the domain itself.
func (s *Server) partnerOf(domain string) string {
	if s.Policy != nil {
		if rem, err := s.Policy.Remote(domain); err == nil && rem.Partner != "" {
			return rem.Partner
		}
	}
	return domain
}

// bounce is the s2s.Server's Bounce hook: a stanza the pool accepted but
// could not deliver goes back to the host as the value it came from. An
// iq of ours (sendIQ) fails its request instead.
func (s *Server) bounce(ctx context.Context, st *s2s.Stanza, e stanza.Error) {
	r := &s.run
	defer s.guard(ctx, "Bounce")
	if m := s.Metrics; m != nil {
		m.Bounced(string(e.Condition))
	}
	if st.Kind == "iq" {
		if !s.answerPending(st.ID, func(*pendingIQ) (iqAnswer, bool) { return iqAnswer{err: e}, true }) {
			r.log.LogAttrs(ctx, slog.LevelDebug, "federation: undeliverable iq dropped",
				slog.String("to", st.To.String()), slog.String("id", st.ID), slog.String("condition", string(e.Condition)))
		}
		return
	}
	v, err := translate.Decode(st.Raw(), r.presence)
	if err != nil {
		// Our own stanzas always decode; log rather than lose it silently.
		r.log.LogAttrs(ctx, slog.LevelWarn, "federation: undeliverable stanza not decoded",
			slog.String("from", st.From.String()), slog.String("to", st.To.String()), slog.String("kind", st.Kind),
			slog.String("condition", string(e.Condition)), slog.Any("err", err))
		return
	}
	s.Backend.Bounce(ctx, v, e)
}

// randomID returns a fresh random stanza id.
func randomID() string { return rand.Text() }
