package translate_test

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// chat200 is an inbound chat message of exactly 200 bytes.
const chat200 = `<message from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat' id='a1b2c3d4e5f6'><body>Wherefore art thou, Romeo? Deny thy father and refuse thy name..... okay</body></message>`

// benchMessage is the value chat200 decodes to.
func benchMessage(tb testing.TB) *translate.Message {
	tb.Helper()
	v, err := translate.Decode([]byte(chat200), nil)
	if err != nil {
		tb.Fatal(err)
	}
	m, ok := v.(*translate.Message)
	if !ok {
		tb.Fatalf("decoded %T", v)
	}
	return m
}

// BenchmarkDecodeMessage measures translate.Decode of a 200-byte chat
// message into a *translate.Message.
func BenchmarkDecodeMessage(b *testing.B) {
	if len(chat200) != 200 {
		b.Fatalf("stanza is %d bytes", len(chat200))
	}
	raw := []byte(chat200)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := translate.Decode(raw, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeFramedMessage measures translate.DecodeFramed of the same
// message, with the addresses s2s parsed: what federation does for every
// inbound stanza.
func BenchmarkDecodeFramedMessage(b *testing.B) {
	raw := []byte(chat200)
	from, to := jid.MustParse("juliet@capulet.example/balcony"), jid.MustParse("romeo@montague.example")
	if _, err := translate.DecodeFramed(raw, from, to, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := translate.DecodeFramed(raw, from, to, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeMessage measures translate.Encode of the same message
// back into stanza bytes.
func BenchmarkEncodeMessage(b *testing.B) {
	m := benchMessage(b)
	raw, err := translate.Encode(m, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := translate.Encode(m, nil, false); err != nil {
			b.Fatal(err)
		}
	}
}

// benchHost accepts everything and keeps nothing.
type benchHost struct{}

func (benchHost) DeliverMessage(context.Context, *translate.Message) error           { return nil }
func (benchHost) DeliverPresence(context.Context, *translate.Presence) error         { return nil }
func (benchHost) DeliverSubscription(context.Context, *translate.Subscription) error { return nil }
func (benchHost) CurrentPresence(_ context.Context, u jid.JID) (*translate.Presence, error) {
	return &translate.Presence{From: u, Availability: translate.Available}, nil
}

// benchGate delivers every request.
type benchGate struct{}

func (benchGate) Inbound(context.Context, policy.Request) (policy.Decision, error) {
	return policy.Decision{Verdict: policy.Deliver}, nil
}

// BenchmarkTranslatorInbound measures Translator.Inbound on the 200-byte
// chat message with a Host, Roster and Gate that cost almost nothing:
// decoding, the gate call and the hand-over to the host.
func BenchmarkTranslatorInbound(b *testing.B) {
	tr := &translate.Translator{Host: benchHost{}, Roster: new(translate.MemRoster), Gate: benchGate{}}
	raw := []byte(chat200)
	ctx := context.Background()
	out, err := tr.Inbound(ctx, raw)
	if err != nil || len(out) != 0 {
		b.Fatalf("Inbound: %d replies, %v", len(out), err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Inbound(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTranslatorInboundFramed is BenchmarkTranslatorInbound through
// InboundFramed, as federation calls it.
func BenchmarkTranslatorInboundFramed(b *testing.B) {
	tr := &translate.Translator{Host: benchHost{}, Roster: new(translate.MemRoster), Gate: benchGate{}}
	raw := []byte(chat200)
	from, to := jid.MustParse("juliet@capulet.example/balcony"), jid.MustParse("romeo@montague.example")
	ctx := context.Background()
	out, err := tr.InboundFramed(ctx, raw, from, to)
	if err != nil || len(out) != 0 {
		b.Fatalf("InboundFramed: %d replies, %v", len(out), err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.InboundFramed(ctx, raw, from, to); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTranslatorOutbound measures Translator.Outbound of the same
// message from a local user: the checks and the encoding.
func BenchmarkTranslatorOutbound(b *testing.B) {
	tr := &translate.Translator{Host: benchHost{}, Roster: new(translate.MemRoster), Gate: benchGate{}}
	m := benchMessage(b)
	m.From, m.To = m.To, m.From
	ctx := context.Background()
	out, err := tr.Outbound(ctx, m)
	if err != nil || len(out) != 1 || !strings.HasPrefix(string(out[0]), "<message") {
		b.Fatalf("Outbound: %q, %v", out, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Outbound(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
