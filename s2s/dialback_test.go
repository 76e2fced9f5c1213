package s2s

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
)

// The XEP-0185 §2 algorithm with the secret and stream id of its example
// (and of XEP-0220's examples): key = HMAC-SHA256(hex(SHA-256(secret)),
// "receiving originating id"). The expected value appears as the dialback
// key in XEP-0220's examples.
func TestDialbackKeyVector(t *testing.T) {
	got := dialbackKey([]byte("s3cr3tf0rd14lb4ck"), "xmpp.example.com", "example.org", "D60000229F")
	const want = "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
	if got != want {
		t.Fatalf("key = %s, want %s", got, want)
	}
	// Every input matters, and order matters.
	for _, k := range []string{
		dialbackKey([]byte("s3cr3tf0rd14lb4cK"), "xmpp.example.com", "example.org", "D60000229F"),
		dialbackKey([]byte("s3cr3tf0rd14lb4ck"), "example.org", "xmpp.example.com", "D60000229F"),
		dialbackKey([]byte("s3cr3tf0rd14lb4ck"), "xmpp.example.com", "example.org", "D60000229E"),
	} {
		if k == want {
			t.Fatal("key does not depend on all inputs")
		}
	}
}

func TestKeyEqual(t *testing.T) {
	if !keyEqual("abc", "abc") || keyEqual("abc", "abd") || keyEqual("", "") || keyEqual("abc", "abcd") {
		t.Fatal("keyEqual")
	}
}

func TestAnswerVerify(t *testing.T) {
	s := &Server{Domains: []string{"b.example"}, Policy: NewPolicy(t, CommonSettings(), func(c *policy.Config) {
		c.Gateway.DialbackSecret = policy.NewSecret([]byte("s3cr3t-of-16-bytes"))
	})}
	s.init()
	var out bytes.Buffer
	st := &stream{srv: s, dir: Inbound, neg: newNegState(), w: wire.NewWriter(&out)}
	defer st.closeNeg(nil)
	good := dialbackKey([]byte("s3cr3t-of-16-bytes"), "a.example", "b.example", "id1")
	for _, tc := range []struct {
		key, id, want string
	}{
		{good, "id1", "type='valid'"},
		{good, "id2", "type='invalid'"}, // key bound to the stream id
		{good + "0", "id1", "type='invalid'"},
		{"", "id1", "type='invalid'"},
	} {
		out.Reset()
		el := parseEl(t, dbElement("verify", "a.example", "b.example", tc.id, "", tc.key, ""))
		if _, err := st.handleElement(context.Background(), el); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(out.Bytes(), []byte(tc.want)) {
			t.Fatalf("%+v: answer %s", tc, out.Bytes())
		}
	}
}

// dbTestStream is an inbound bidi stream of a server for b.example whose
// DNS goes nowhere, with a pending request for (b.example, a.example).
func dbTestStream(t testing.TB, pol *policy.Policy, out *bytes.Buffer) (*stream, *dbWait) {
	s := &Server{
		Domains:  []string{"b.example"},
		Resolver: &dnsdisco.Resolver{Servers: []string{"127.0.0.1:9"}, Timeout: 1, Attempts: 1},
		Policy:   pol,
	}
	s.init()
	st := &stream{srv: s, dir: Inbound, bidi: true, id: "sid", neg: newNegState(), w: wire.NewWriter(out)}
	rem, err := pol.Remote("a.example")
	if err != nil {
		t.Fatal(err)
	}
	st.admit(rem)
	w := newDBWait()
	st.neg.pending = map[pair]*dbWait{{local: "b.example", remote: "a.example"}: w}
	return st, w
}

var verifyValid = regexp.MustCompile(`<db:verify from='([^']*)' to='([^']*)' id='([^']*)' type='valid'`)

// FuzzDialbackElement feeds arbitrary top-level elements to the dialback
// handler of an established stream: it never panics, never authorizes a
// pair to send to us (no key can be verified: DNS goes nowhere and there
// is no TLS), authorizes sending only on a valid answer to the one pair we
// asked about, and answers a db:verify as valid only for the right key.
func FuzzDialbackElement(f *testing.F) {
	f.Add([]byte("<db:result from='a.example' to='b.example'>0123</db:result>"))
	f.Add([]byte("<db:result from='a.example' to='b.example' type='valid'/>"))
	f.Add([]byte("<db:result from='a.example' to='b.example' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>"))
	f.Add([]byte("<db:verify from='a.example' to='b.example' id='sid'>k</db:verify>"))
	f.Add([]byte("<db:verify from='a.example' to='b.example' id='x' type='valid'/>"))
	f.Add([]byte("<db:result from='b.example' to='b.example'>k</db:result>"))
	f.Add([]byte("<db:result xmlns:db='jabber:server:dialback' from='\u00e9.example' to='B.EXAMPLE.'>k</db:result>"))
	f.Add([]byte("<message xmlns='jabber:server'/>"))
	pol := NewPolicy(f, policy.Settings{TLS: policy.Optional, SASL: policy.Optional}, func(c *policy.Config) {
		c.Gateway.DialbackSecret = policy.NewSecret([]byte("s3cr3t-of-16-bytes"))
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := wire.NewReader(bytes.NewReader(append([]byte("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'>"), data...)), wire.Limits{MaxStanzaBytes: 1 << 14})
		if _, err := r.ReadHeader(); err != nil {
			return
		}
		el, err := r.Next()
		if err != nil {
			return
		}
		var out bytes.Buffer
		st, ch := dbTestStream(t, pol, &out)
		_, _ = st.handleElement(context.Background(), el)
		st.closeNeg(nil) // waits for verification goroutines
		if st.recv.len() != 0 {
			t.Fatalf("authorized %v without a verified key: %s", st.recv, data)
		}
		for p := range st.send.all() {
			if p != (pair{local: "b.example", remote: "a.example"}) {
				t.Fatalf("authorized unasked pair %v", p)
			}
			if <-ch.done; ch.err != nil {
				t.Fatalf("send authorized but answer error %v", ch.err)
			}
		}
		for _, m := range verifyValid.FindAllSubmatch(out.Bytes(), -1) {
			// our answer: from=us (to of the request), to=them
			if !keyEqual(dialbackKeyFromRequest(st, el), dialbackKey(st.srv.secret(), string(m[2]), string(m[1]), string(m[3]))) {
				t.Fatalf("valid answer for a wrong key: %s", data)
			}
		}
	})
}

// dialbackKeyFromRequest returns the key text of a db:verify request.
func dialbackKeyFromRequest(_ *stream, el *wire.Element) string {
	f, err := readDB(el)
	if err != nil {
		return ""
	}
	return f.key
}

// FuzzFeatures feeds arbitrary <stream:features> to the initiating side's
// parser and decision, under every settings combination: it never panics
// and never picks a method the settings (or the state) forbid.
func FuzzFeatures(f *testing.F) {
	f.Add([]byte("<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"))
	f.Add([]byte("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback><bidi xmlns='urn:xmpp:features:bidi'/></stream:features>"))
	f.Add([]byte("<stream:features><limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>10000</max-bytes></limits></stream:features>"))
	f.Add([]byte("<stream:features/>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := wire.NewReader(bytes.NewReader(append([]byte("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"), data...)), wire.Limits{MaxStanzaBytes: 1 << 14})
		if _, err := r.ReadHeader(); err != nil {
			return
		}
		el, err := r.Next()
		if err != nil {
			return
		}
		fs, err := parseFeatures(el)
		if err != nil {
			return
		}
		for _, set := range allSettings() {
			for bits := range 16 {
				tlsDone, peerOK, peerDB, extFailed := bits&1 != 0, bits&2 != 0, bits&4 != 0, bits&8 != 0
				act, step, err := chooseOut(fs, set, tlsDone, peerOK, peerDB, extFailed)
				if err != nil {
					if step == "" || act != 0 {
						t.Fatalf("error without step or with action: %v", err)
					}
					continue
				}
				switch act {
				case actStartTLS:
					if tlsDone || set.TLS == policy.NotSupported || !fs.startTLS {
						t.Fatalf("STARTTLS chosen: %+v %+v tls=%v", fs, set, tlsDone)
					}
				case actExternal:
					if !tlsDone || set.SASL == policy.NotSupported || !peerOK || extFailed || !fs.external {
						t.Fatalf("EXTERNAL chosen: %+v %+v bits=%b", fs, set, bits)
					}
				case actDialback:
					if !set.Dialback() || set.SASL == policy.Required || (!tlsDone && set.TLS == policy.Required) || !peerDB {
						t.Fatalf("dialback chosen: %+v %+v bits=%b", fs, set, bits)
					}
				default:
					t.Fatalf("no action and no error")
				}
			}
		}
	})
}

// allSettings returns the effective settings of the 13 valid rows of the
// matrix (3 TLS × 3 SASL × dialback on/off, minus those Validate refuses).
func allSettings() []policy.Settings {
	var out []policy.Settings
	for _, tl := range []policy.Negotiation{policy.Required, policy.Optional, policy.NotSupported} {
		for _, sa := range []policy.Negotiation{policy.Required, policy.Optional, policy.NotSupported} {
			for _, off := range []bool{false, true} {
				s := policy.Settings{TLS: tl, SASL: sa, DisableDialback: off}
				if _, err := s.Validate(false); err == nil {
					out = append(out, s.Effective())
				}
			}
		}
	}
	return out
}

func TestChooseOutPreference(t *testing.T) {
	all := featureSet{startTLS: true, external: true, dialback: true, bidi: true}
	set := CommonSettings().Effective()
	if a, _, _ := chooseOut(all, set, false, false, true, false); a != actStartTLS {
		t.Fatalf("before TLS: %v", a)
	}
	if a, _, _ := chooseOut(all, set, true, true, true, false); a != actExternal {
		t.Fatalf("after TLS: %v", a)
	}
	if a, _, _ := chooseOut(all, set, true, true, true, true); a != actDialback {
		t.Fatalf("EXTERNAL failed: %v", a)
	}
	tcp := policy.Settings{TLS: policy.NotSupported}.Effective()
	if a, _, _ := chooseOut(all, tcp, false, false, true, false); a != actDialback {
		t.Fatalf("TLS not-supported: %v", a)
	}
	// Row 1 (the default): SASL required, so a peer without EXTERNAL
	// leaves no method, dialback included (REFERENCE §5.3 #31).
	if _, step, err := chooseOut(all, policy.Settings{}.Effective(), true, true, true, true); err == nil || step != "sasl" {
		t.Fatalf("row 1 after EXTERNAL failed: step %q err %v", step, err)
	}
}

// XEP-0178 §3 / RFC 6120 §6.4.6: the authzid is empty, "=", or the from
// domain of the stream; anything else is refused with a specific condition.
func TestCheckAuthzid(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"", ""},
		{"=", ""},
		{"YS5leGFtcGxl", ""},                 // base64("a.example")
		{"QS5FWEFNUExF", ""},                 // base64("A.EXAMPLE"): same domain
		{"Yy5leGFtcGxl", saslInvalidAuthzid}, // base64("c.example")
		{"not base64!", saslMalformed},
	} {
		if got := checkAuthzid(tc.text, "a.example"); got != tc.want {
			t.Errorf("checkAuthzid(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}
